"""Read what the store wrote, as Arrow, from a URI: for notebooks, the build step and
other tools (pandas, pyarrow.dataset, Hugging Face datasets).

A step folder holds committed shards *and* files nothing committed: orphans of a crashed
writer, the losing copy of two writers of one shard. Reading the folder blindly would
count those rows twice, so where manifests exist only the files they name are read.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from storage.backends import call_with_retries
from storage.s3 import resolve_s3_config
from storage.store import ShardCorrupt, StoreError, sha256

MANIFEST = re.compile(r"^shard-\d{5}\.manifest\.json$")


def storage_options(uri: str | None = None) -> dict[str, Any]:
    """fsspec options for the current S3 settings (AWS environment or the prefect-aws
    block), for `pandas.read_parquet(uri, storage_options=...)` and
    `datasets.load_dataset("parquet", data_files=..., storage_options=...)`.
    Empty for a local URI. Contains the credentials: do not log it."""
    if uri is not None and not uri.startswith("s3://"):
        return {}
    return resolve_s3_config().storage_options()


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path in it) for a file:// path, a plain path or an s3:// URI,
    e.g. for `pyarrow.dataset.dataset(path, filesystem=fs)`. Creates nothing."""
    if uri.startswith("s3://"):
        return resolve_s3_config().filesystem(), uri[len("s3://"):].strip("/")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def dataset_files(uri: str, name: str | None = None) -> list[str]:
    """URIs of the Parquet files that make up the dataset at `uri`: the files named by
    the shard manifests (file `name` of each; optional when shards hold one file), or,
    where there are no manifests, every .parquet below `uri`. For
    `datasets.load_dataset("parquet", data_files=dataset_files(uri))`."""
    fs, path = filesystem(uri)
    scheme = "s3://" if uri.startswith("s3://") else "file://"
    with _store_errors(uri):
        return [scheme + p for p, _ in _resolve(fs, path, uri, name)]


def read_dataset(uri: str, name: str | None = None, verify: bool = True) -> pa.Table:
    """The whole dataset at `uri` (a .parquet file, a step folder with manifests, or a
    folder of Parquet files) as one Arrow table, shards in order. With `verify`, each
    committed file is checked against its manifest checksum (ShardCorrupt if not)."""
    fs, path = filesystem(uri)
    with _store_errors(uri):
        tables = [_read_one(fs, p, digest if verify else None)
                  for p, digest in _resolve(fs, path, uri, name)]
    return pa.concat_tables(tables, promote_options="permissive")


@contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """Storage failures left after retries become StoreError naming the URI and, for
    S3, the endpoint; a missing file stays FileNotFoundError."""
    try:
        yield
    except (FileNotFoundError, StoreError):
        raise
    except OSError as err:
        where = uri
        if uri.startswith("s3://"):
            config = resolve_s3_config()
            where = f"{uri} at {config.endpoint_label}"
            raise StoreError(config.redact(f"reading {where} failed: {err}")) from None
        raise StoreError(f"reading {where} failed: {err}") from None


def _read_one(fs: pafs.FileSystem, path: str, digest: str | None) -> pa.Table:
    try:
        data = call_with_retries(lambda: _read_bytes(fs, path))
    except FileNotFoundError:
        if digest is None:
            raise
        raise ShardCorrupt(f"{path} is named by a manifest but missing") from None
    if digest is not None and sha256(data) != digest:
        raise ShardCorrupt(f"{path} does not match the checksum in its manifest")
    return pq.read_table(io.BytesIO(data))


def _read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def _resolve(fs: pafs.FileSystem, path: str, uri: str,
             name: str | None) -> list[tuple[str, str | None]]:
    """(path, expected sha256 or None) of each file to read, in shard order."""
    if path.endswith(".parquet"):
        return [(path, None)]
    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    files = sorted(i.path for i in call_with_retries(lambda: fs.get_file_info(sel))
                   if i.type == pafs.FileType.File)
    manifests = [f for f in files if MANIFEST.match(f.rsplit("/", 1)[-1])]
    if manifests:
        return _committed(fs, manifests, uri, name)
    found = [(f, None) for f in files if f.endswith(".parquet") and ".tmp-" not in f]
    if not found:
        raise FileNotFoundError(f"no Parquet files under {uri}")
    return found


def _committed(fs: pafs.FileSystem, manifests: list[str], uri: str,
               name: str | None) -> list[tuple[str, str | None]]:
    steps = sorted({m.rsplit("/", 1)[0] for m in manifests})
    if len(steps) > 1:
        raise ValueError(f"{uri} holds the shards of several steps ({', '.join(steps)}): "
                         "point at one step folder")
    loaded = [(m, json.loads(call_with_retries(lambda m=m: _read_bytes(fs, m))))
              for m in manifests]
    names = sorted({n for _, doc in loaded for n in doc["files"]})
    if name is None:
        if len(names) != 1:
            raise ValueError(f"shards under {uri} hold several files ({', '.join(names)}): "
                             "pass name=")
        name = names[0]
    if name not in names:
        raise ValueError(f"no shard under {uri} has a file {name!r} (have: {', '.join(names)})")
    # Data files sit next to their manifest; the manifest's key is relative to the store
    # root, which need not be `uri`, so only its last component is used.
    return [(f"{m.rsplit('/', 1)[0]}/{doc['files'][name]['key'].rsplit('/', 1)[-1]}",
             doc["files"][name]["sha256"])
            for m, doc in loaded if name in doc["files"]]
