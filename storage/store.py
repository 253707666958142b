"""ArtifactStore: one API over a local folder and S3-compatible object storage.

A shard is committed by its manifest, written last: data files go to keys that carry
a unique token, and only the manifest names them. A crash before the manifest leaves
orphans that nothing reads; two writers of the same shard each commit a complete,
consistent set (last manifest wins). That works the same on S3, where there is no
atomic rename, and on a local disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from storage.backends import OPEN_POLICY, RetryPolicy, call_with_retries, make_location
from storage.s3 import S3Config, S3ConfigError


class StoreError(RuntimeError):
    """The store cannot be used (unreachable endpoint, missing bucket, bad credentials)."""


class ShardCorrupt(StoreError):
    """A shard's files do not match its manifest (missing file or checksum mismatch)."""


@dataclass
class Manifest:
    """The commit record of one shard."""

    step: str
    shard: int
    files: dict[str, dict[str, Any]]  # name -> {"key", "sha256", "rows", "bytes"}
    counts: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    writer: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class ArtifactStore:
    """Keys are '/'-separated paths relative to the store root.

    Opening an s3:// store checks the bucket once (one HEAD request) so that a wrong
    endpoint, a missing bucket or bad credentials fail here, with a message naming the
    bucket and the endpoint, rather than in the middle of a run. `check=False` skips it.
    """

    def __init__(self, uri: str, check: bool = True) -> None:
        self.uri = uri.rstrip("/")
        try:
            loc = make_location(self.uri)
        except S3ConfigError as err:
            raise StoreError(f"cannot open store {self.uri}: {err}") from None
        self.fs, self.root, self.s3 = loc.fs, loc.root, loc.s3
        if self.s3 is not None and check:
            self._check_bucket(self.s3)

    def storage_options(self) -> dict[str, Any]:
        """fsspec options to read this store's files with pandas or datasets."""
        return self.s3.storage_options() if self.s3 else {}

    # -- plain objects -------------------------------------------------------------
    def _full(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}" if key else self.root

    def uri_for(self, key: str) -> str:
        return f"{self.uri}/{key.lstrip('/')}"

    def exists(self, key: str) -> bool:
        info = self._call("stat", key, lambda: self.fs.get_file_info(self._full(key)))
        return info.type != pafs.FileType.NotFound

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object. Local writes go through a temporary file and a rename;
        an S3 PUT is atomic by itself."""
        full = self._full(key)
        parent = full.rsplit("/", 1)[0]

        def _do() -> None:
            if isinstance(self.fs, pafs.LocalFileSystem):
                self.fs.create_dir(parent, recursive=True)  # S3 has no folders to create
                tmp = f"{full}.tmp-{uuid.uuid4().hex[:8]}"
                with self.fs.open_output_stream(tmp) as out:
                    out.write(data)
                self.fs.move(tmp, full)
            else:
                with self.fs.open_output_stream(full) as out:
                    out.write(data)

        self._call("write", key, _do)

    def read_bytes(self, key: str) -> bytes:
        def _do() -> bytes:
            with self.fs.open_input_stream(self._full(key)) as f:
                return f.read()

        return self._call("read", key, _do)

    def write_json(self, key: str, obj: Any) -> None:
        self.write_bytes(key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_table(self, key: str, table: pa.Table) -> dict[str, Any]:
        data = table_to_parquet_bytes(table)
        self.write_bytes(key, data)
        return {"key": key, "sha256": sha256(data), "rows": table.num_rows, "bytes": len(data)}

    def read_table(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.read_bytes(key)))

    def list(self, prefix: str) -> list[str]:
        """Keys of the files below `prefix` (relative to the root), sorted."""
        sel = pafs.FileSelector(self._full(prefix), recursive=True, allow_not_found=True)
        infos = self._call("list", prefix, lambda: self.fs.get_file_info(sel))
        base = len(self.root) + 1
        return sorted(i.path[base:] for i in infos if i.type == pafs.FileType.File)

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self.fs.delete_file(self._full(key)))

    # -- shards --------------------------------------------------------------------
    @staticmethod
    def manifest_key(step: str, shard: int) -> str:
        return f"{step}/shard-{shard:05d}.manifest.json"

    def commit_shard(self, step: str, shard: int, tables: dict[str, pa.Table],
                     counts: dict[str, Any] | None = None) -> Manifest:
        """Write the shard's tables under fresh keys, then the manifest that commits them."""
        token = uuid.uuid4().hex[:12]
        files = {
            name: self.write_table(f"{step}/shard-{shard:05d}.{name}.{token}.parquet", table)
            for name, table in tables.items()
        }
        manifest = Manifest(step=step, shard=shard, files=files, counts=counts or {},
                            created_at=time.time(), writer=token)
        self.write_bytes(self.manifest_key(step, shard), manifest.to_json().encode())
        return manifest

    def load_manifest(self, step: str, shard: int, verify: bool = True) -> Manifest | None:
        """The shard's manifest, or None when the shard is not committed. With `verify`,
        every file is read back and checked against its checksum: ShardCorrupt if not."""
        key = self.manifest_key(step, shard)
        if not self.exists(key):
            return None
        try:
            manifest = Manifest.from_json(self.read_bytes(key).decode())
        except (ValueError, TypeError) as err:
            raise ShardCorrupt(f"shard {step}/{shard:05d}: unreadable manifest ({err})") from None
        if verify:
            for name, info in manifest.files.items():
                if not self.exists(info["key"]):
                    raise ShardCorrupt(f"shard {step}/{shard:05d}: file {name} is missing")
                if sha256(self.read_bytes(info["key"])) != info["sha256"]:
                    raise ShardCorrupt(
                        f"shard {step}/{shard:05d}: file {name} does not match its checksum"
                    )
        return manifest

    def read_shard(self, manifest: Manifest, name: str) -> pa.Table:
        """One file of a committed shard, checked against the manifest's checksum as it
        is read (one read, so callers that read every file need no separate verify)."""
        info = manifest.files[name]
        try:
            data = self.read_bytes(info["key"])
        except FileNotFoundError:
            raise ShardCorrupt(f"shard {manifest.step}/{manifest.shard:05d}: file {name} "
                               "is missing") from None
        if sha256(data) != info["sha256"]:
            raise ShardCorrupt(f"shard {manifest.step}/{manifest.shard:05d}: file {name} "
                               "does not match its checksum")
        return pq.read_table(io.BytesIO(data))

    def done_shards(self, step: str) -> list[int]:
        """Indices of the shards of `step` that have a manifest."""
        out = []
        for key in self.list(step):
            leaf = key.rsplit("/", 1)[-1]
            if leaf.startswith("shard-") and leaf.endswith(".manifest.json"):
                out.append(int(leaf[6:11]))
        return sorted(out)

    def orphans(self, step: str, older_than: float = 3600.0) -> list[str]:
        """Keys of `step` files that no manifest names (left by a writer that died, or
        that lost a race to commit the same shard) and that are older than
        `older_than` seconds. Younger files may belong to a writer still at work, so
        they are never listed. Safe to delete(); nothing reads them."""
        sel = pafs.FileSelector(self._full(step), recursive=True, allow_not_found=True)
        infos = self._call("list", step, lambda: self.fs.get_file_info(sel))
        named: set[str] = set()
        for shard in self.done_shards(step):
            manifest = self.load_manifest(step, shard, verify=False)
            named.update(i["key"].rsplit("/", 1)[-1] for i in manifest.files.values())
        cutoff = time.time() - older_than
        base = len(self.root) + 1
        return sorted(
            i.path[base:] for i in infos
            if i.type == pafs.FileType.File and _is_shard_data(i.base_name)
            and i.base_name not in named and i.mtime is not None
            and _utc_timestamp(i.mtime) < cutoff
        )

    # -- errors --------------------------------------------------------------------
    def _call(self, op: str, key: str, fn: Any, policy: RetryPolicy | None = None) -> Any:
        """Run one storage call with retries on transient errors; turn what remains into
        a StoreError naming the object and the endpoint (never a credential)."""
        start = time.monotonic()
        try:
            return call_with_retries(fn, policy)
        except FileNotFoundError:
            raise
        except StoreError:
            raise
        except OSError as err:
            took = time.monotonic() - start
            endpoint = f" at {self.s3.endpoint_label}" if self.s3 else ""
            msg = f"{op} {self.uri_for(key)}{endpoint} failed after {took:.1f} s: {err}"
            raise StoreError(self._redact(msg)) from None

    def _redact(self, text: str) -> str:
        return self.s3.redact(text) if self.s3 else text

    def _check_bucket(self, s3: S3Config) -> None:
        """One HEAD on the bucket: NotFound -> missing bucket; ACCESS_DENIED -> bad
        credentials (or someone else's bucket); network errors -> unreachable endpoint."""
        bucket = self.root.split("/", 1)[0]
        try:
            info = call_with_retries(lambda: self.fs.get_file_info(bucket), OPEN_POLICY)
        except OSError as err:
            if self._prefix_readable(bucket, err):
                return
            raise StoreError(self._redact(self._bucket_error(s3, bucket, err))) from None
        if info.type == pafs.FileType.NotFound:
            raise StoreError(
                f"bucket {bucket!r} does not exist at {s3.endpoint_label} (store {self.uri}); "
                f"create it first, e.g. `aws s3 mb s3://{bucket}` (with --endpoint-url "
                f"for MinIO/Ceph)"
            )

    def _prefix_readable(self, bucket: str, err: OSError) -> bool:
        """IAM policies may allow a prefix but not HEAD on the bucket: then the store
        is usable if its own prefix can be listed."""
        if self.root == bucket or not _is_access_denied(str(err)):
            return False
        try:
            call_with_retries(lambda: self.fs.get_file_info(self.root), OPEN_POLICY)
        except OSError:
            return False
        return True

    def _bucket_error(self, s3: S3Config, bucket: str, err: OSError) -> str:
        text = str(err)
        if _is_access_denied(text):
            return (f"access denied to bucket {bucket!r} at {s3.endpoint_label} "
                    f"(store {self.uri}): check the credentials ({s3.credentials_label()}) "
                    f"or the bucket's permissions")
        return (f"cannot reach S3 endpoint {s3.endpoint_label} for bucket {bucket!r} "
                f"(store {self.uri}): {text}")


def _utc_timestamp(when: datetime) -> float:
    """pyarrow gives UTC times, tz-aware or not: never let a naive one be read as local."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _is_shard_data(leaf: str) -> bool:
    """A shard's data file or a temporary file of any shard object (not a manifest)."""
    return leaf.startswith("shard-") and (leaf.endswith(".parquet") or ".tmp-" in leaf)


def _is_access_denied(text: str) -> bool:
    return bool(re.search(r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|"
                          r"SignatureDoesNotMatch|\b403\b|Forbidden", text))


def open_store(uri: str) -> ArtifactStore:
    return ArtifactStore(uri)
