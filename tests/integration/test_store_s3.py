"""ArtifactStore against a real S3 server (Ceph RadosGW): the commit protocol, the
errors a user sees, and radosgw going away in the middle of a run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from storage import ArtifactStore, StoreError, read_dataset, selfcheck
from tests.integration.s3_server import TEST_SECRET_KEY, CephS3Server, S3Bucket

pytestmark = [pytest.mark.s3, pytest.mark.timeout(180)]


def test_server_is_small_and_quick(s3_server: CephS3Server) -> None:
    """The numbers DESIGN.md §8 relies on: up in well under a minute, a few hundred MB."""
    print(f"ceph startup {s3_server.startup_s:.1f} s, RSS {s3_server.rss_mb():.0f} MB")
    assert s3_server.startup_s < 60
    assert s3_server.rss_mb() < 500


@pytest.mark.parametrize("check", ["roundtrip", "corruption", "orphans", "concurrent"])
def test_contract(s3_bucket: S3Bucket, check: str) -> None:
    selfcheck.CHECKS[check](s3_bucket.uri())


def test_readers_pandas_pyarrow_datasets(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    selfcheck.check_readers(s3_bucket.uri(), with_datasets=True,
                            cache_dir=str(tmp_path / "hf-cache"))


def test_multipart_upload_works_without_checksum_setting(
        s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """RadosGW answers HTTP 411 to checksummed multipart parts; the store must set the
    AWS_REQUEST_CHECKSUM_CALCULATION default itself (DESIGN.md §8)."""
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION")
    monkeypatch.delenv("AWS_RESPONSE_CHECKSUM_VALIDATION")
    store = ArtifactStore(s3_bucket.uri())
    blob = bytes(range(256)) * (48 * 1024)  # 12 MiB: pyarrow uploads it in parts
    store.write_bytes("big.bin", blob)
    assert store.read_bytes("big.bin") == blob


def test_missing_bucket_names_bucket_and_endpoint(s3_bucket: S3Bucket) -> None:
    with pytest.raises(StoreError) as info:
        ArtifactStore("s3://no-such-bucket-pm/prefix")
    msg = str(info.value)
    assert "no-such-bucket-pm" in msg and s3_bucket.server.endpoint in msg
    assert "does not exist" in msg and TEST_SECRET_KEY not in msg


@pytest.mark.parametrize("var,value", [("AWS_SECRET_ACCESS_KEY", "wrong-secret-123456"),
                                       ("AWS_ACCESS_KEY_ID", "UNKNOWNKEY0000000000")])
def test_bad_credentials_are_a_clear_error(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch,
                                           var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(StoreError) as info:
        ArtifactStore(s3_bucket.uri())
    msg = str(info.value)
    assert "access denied" in msg and s3_bucket.name in msg
    assert s3_bucket.server.endpoint in msg
    assert "wrong-secret-123456" not in msg and TEST_SECRET_KEY not in msg


def test_radosgw_stopped_mid_run_then_restarted(s3_bucket: S3Bucket) -> None:
    """S3 disappears between two shards: the next write fails in bounded time with the
    endpoint named; after radosgw is back, committed shards are intact and work resumes."""
    server = s3_bucket.server
    store = ArtifactStore(s3_bucket.uri())
    store.commit_shard("step", 0, {"rows": pa.table({"x": [1, 2]})})
    server.stop_rgw()
    try:
        start = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.commit_shard("step", 1, {"rows": pa.table({"x": [3]})})
        took = time.monotonic() - start
        assert took < 30 and server.endpoint in str(info.value)
        start = time.monotonic()
        with pytest.raises(StoreError, match="cannot reach S3 endpoint"):
            ArtifactStore(s3_bucket.uri())
        assert time.monotonic() - start < 30
    finally:
        server.start_rgw()
    assert store.done_shards("step") == [0]
    assert store.load_manifest("step", 0, verify=True) is not None
    store.commit_shard("step", 1, {"rows": pa.table({"x": [3]})})
    assert read_dataset(store.uri_for("step"))["x"].to_pylist() == [1, 2, 3]


def test_radosgw_killed_during_an_upload(s3_bucket: S3Bucket) -> None:
    """radosgw crashes while a shard's data file is uploading: the commit fails with a
    StoreError, the shard stays absent (never half there), and after the restart
    committing it again works."""
    server = s3_bucket.server
    client = server.client()
    store = ArtifactStore(s3_bucket.uri())
    big = pa.table({"blob": pa.array([os.urandom(1024) for _ in range(48 * 1024)])})
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            store.commit_shard("step", 0, {"rows": big})
            outcome.append(None)
        except BaseException as err:  # checked below
            outcome.append(err)

    thread = threading.Thread(target=commit)
    thread.start()
    deadline = time.monotonic() + 30
    while not client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads"):
        assert time.monotonic() < deadline and thread.is_alive(), "upload never started"
        time.sleep(0.01)
    server.kill_rgw()
    thread.join(timeout=60)
    assert outcome and isinstance(outcome[0], StoreError), outcome
    assert server.endpoint in str(outcome[0])
    server.start_rgw()
    assert store.load_manifest("step", 0) is None and store.done_shards("step") == []
    store.commit_shard("step", 0, {"rows": big})
    assert read_dataset(store.uri_for("step")).num_rows == big.num_rows
