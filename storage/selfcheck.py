"""The store's contract, as checks that run against any backend.

The same checks run in the tests for a local folder, moto and Ceph RadosGW, and against a
deployment's real bucket before a long run:

    python -m storage.selfcheck s3://bucket/some/scratch/prefix

Each check works under its own fresh prefix of the given URI and raises AssertionError
(or the store's own error) when the backend breaks the contract.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable

import pyarrow as pa

from storage.reading import dataset_files, read_dataset, storage_options
from storage.store import ArtifactStore, ShardCorrupt


def _fresh(base_uri: str, name: str) -> str:
    return f"{base_uri.rstrip('/')}/{name}-{uuid.uuid4().hex[:8]}"


def _rows(tag: str, n: int) -> pa.Table:
    return pa.table({"problem": [f"{tag}-{i}" for i in range(n)], "n": list(range(n))})


def check_roundtrip(base_uri: str) -> None:
    """Objects, tables and a committed shard read back as written."""
    store = ArtifactStore(_fresh(base_uri, "roundtrip"))
    store.write_json("run.json", {"a": 1})
    assert store.read_json("run.json") == {"a": 1}
    info = store.write_table("t/x.parquet", _rows("t", 3))
    assert info["rows"] == 3 and store.read_table("t/x.parquet").equals(_rows("t", 3))
    manifest = store.commit_shard("step", 1, {"rows": _rows("a", 5), "rejects": _rows("r", 2)},
                                  {"accepted": 5, "rejected": 2})
    loaded = store.load_manifest("step", 1, verify=True)
    assert loaded is not None and loaded.files == manifest.files
    assert loaded.counts == {"accepted": 5, "rejected": 2}
    assert store.read_shard(loaded, "rows").equals(_rows("a", 5))
    assert store.done_shards("step") == [1]
    assert store.load_manifest("step", 2) is None
    assert store.exists("run.json") and not store.exists("missing.json")
    assert "run.json" in store.list("")
    store.delete("run.json")
    assert not store.exists("run.json")


def check_corruption_detected(base_uri: str) -> None:
    """A data file that changed or vanished after commit is ShardCorrupt, not data."""
    store = ArtifactStore(_fresh(base_uri, "corrupt"))
    manifest = store.commit_shard("step", 0, {"rows": _rows("a", 4)})
    key = manifest.files["rows"]["key"]
    store.write_table(key, _rows("b", 4))  # same shape, different bytes
    assert store.load_manifest("step", 0, verify=False) is not None
    _expect_corrupt(lambda: store.load_manifest("step", 0, verify=True))
    _expect_corrupt(lambda: read_dataset(store.uri_for("step")))
    store.delete(key)
    _expect_corrupt(lambda: store.load_manifest("step", 0, verify=True))


def _expect_corrupt(fn: Callable[[], object]) -> None:
    try:
        fn()
    except ShardCorrupt:
        return
    raise AssertionError("a corrupt shard was not detected")


def check_orphans_ignored(base_uri: str) -> None:
    """Files of a writer that died before its manifest are not shards and not rows."""
    store = ArtifactStore(_fresh(base_uri, "orphans"))
    store.commit_shard("step", 0, {"rows": _rows("a", 3)})
    store.write_bytes("step/shard-00001.rows.0123456789ab.parquet", b"PAR1\x00trunc")
    store.write_bytes("step/shard-00002.manifest.json.tmp-1234abcd", b'{"step": "st')
    assert store.done_shards("step") == [0]
    assert store.load_manifest("step", 1) is None
    assert read_dataset(store.uri_for("step")).num_rows == 3
    orphans = store.orphans("step", older_than=0)
    assert orphans == ["step/shard-00001.rows.0123456789ab.parquet",
                       "step/shard-00002.manifest.json.tmp-1234abcd"], orphans
    assert store.orphans("step", older_than=3600) == []
    for key in orphans:
        store.delete(key)
    assert read_dataset(store.uri_for("step")).num_rows == 3


def check_concurrent_commits(base_uri: str, writers: int = 2) -> None:
    """Writers of the same shard at once (a retried task racing its stuck original)
    leave one complete, verifiable shard: one writer's rows, never a mix."""
    uri = _fresh(base_uri, "concurrent")
    tables = [_rows(f"w{i}", 50 + i) for i in range(writers)]
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            store = ArtifactStore(uri)
            barrier.wait(timeout=30)
            store.commit_shard("step", 7, {"rows": tables[i]}, {"writer": i})
        except BaseException as err:  # reported below, in the calling thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, f"a concurrent writer failed: {errors[0]!r}"
    store = ArtifactStore(uri)
    manifest = store.load_manifest("step", 7, verify=True)
    assert manifest is not None and store.done_shards("step") == [7]
    winner = manifest.counts["writer"]
    assert store.read_shard(manifest, "rows").equals(tables[winner])
    assert read_dataset(store.uri_for("step")).equals(tables[winner])


def check_readers(base_uri: str, with_datasets: bool = True,
                  cache_dir: str | None = None) -> None:
    """Committed shards load with read_dataset, pandas, pyarrow.dataset and (optionally)
    Hugging Face datasets, with the same rows."""
    import pandas as pd
    import pyarrow.dataset as ds

    from storage.reading import filesystem

    store = ArtifactStore(_fresh(base_uri, "readers"))
    for i in range(3):
        store.commit_shard("build", i, {"rows": _rows(f"s{i}", 4)})
    uri = store.uri_for("build")
    expected = pa.concat_tables([_rows(f"s{i}", 4) for i in range(3)])
    assert read_dataset(uri).equals(expected)
    files = dataset_files(uri)
    assert len(files) == 3
    opts = storage_options(uri)
    frame = pd.concat([pd.read_parquet(f, storage_options=opts) for f in files])
    assert frame["problem"].tolist() == expected["problem"].to_pylist()
    fs, _ = filesystem(uri)
    paths = [filesystem(f)[1] for f in files]
    assert ds.dataset(paths, filesystem=fs, format="parquet").to_table().num_rows == 12
    if with_datasets:
        import datasets

        loaded = datasets.load_dataset("parquet", data_files=files, storage_options=opts,
                                       split="train", cache_dir=cache_dir)
        assert sorted(loaded["problem"]) == sorted(expected["problem"].to_pylist())


CHECKS: dict[str, Callable[[str], None]] = {
    "roundtrip": check_roundtrip,
    "corruption": check_corruption_detected,
    "orphans": check_orphans_ignored,
    "concurrent": check_concurrent_commits,
    "readers": lambda uri: check_readers(uri, with_datasets=False),
}


def main(argv: list[str]) -> int:
    """Run every check against a scratch URI; leaves the scratch objects behind."""
    if len(argv) != 1:
        print("usage: python -m storage.selfcheck <file://...|s3://bucket/prefix>")
        return 2
    failed = 0
    for name, check in CHECKS.items():
        start = time.monotonic()
        try:
            check(argv[0])
            print(f"ok    {name} ({time.monotonic() - start:.2f} s)")
        except Exception as err:  # report every check, then fail
            failed += 1
            print(f"FAIL  {name}: {type(err).__name__}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
