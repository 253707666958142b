"""ArtifactStore on a local folder: the commit protocol and reading datasets back."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import (
    ArtifactStore,
    ShardCorrupt,
    dataset_files,
    read_dataset,
    selfcheck,
    storage_options,
)

REPO = Path(__file__).resolve().parents[2]


def rows(tag: str, n: int) -> pa.Table:
    return pa.table({"problem": [f"{tag}-{i}" for i in range(n)], "n": list(range(n))})


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.mark.parametrize("check", ["roundtrip", "corruption", "orphans", "concurrent"])
def test_contract(uri: str, check: str) -> None:
    selfcheck.CHECKS[check](uri)


def test_readers_pandas_pyarrow_datasets(uri: str, tmp_path: Path) -> None:
    selfcheck.check_readers(uri, with_datasets=True, cache_dir=str(tmp_path / "hf"))


def test_truncated_shard_file_without_manifest_is_not_done(uri: str) -> None:
    """A writer killed mid-upload leaves a partial data file: the shard is still to do."""
    store = ArtifactStore(uri)
    good = store.commit_shard("solve", 0, {"rows": rows("a", 20)})
    data = store.read_bytes(good.files["rows"]["key"])
    store.write_bytes("solve/shard-00001.rows.feedfacecafe.parquet", data[: len(data) // 2])
    assert store.done_shards("solve") == [0]
    assert store.load_manifest("solve", 1) is None
    assert read_dataset(store.uri_for("solve")).equals(rows("a", 20))


def test_unreadable_manifest_is_corrupt(uri: str) -> None:
    store = ArtifactStore(uri)
    store.write_bytes(store.manifest_key("solve", 3), b'{"step": "solve", "sha')
    with pytest.raises(ShardCorrupt, match="unreadable manifest"):
        store.load_manifest("solve", 3)


def test_many_threads_one_store_one_shard(uri: str) -> None:
    """Eight writers sharing one store object, twice over: the shard always verifies and
    holds exactly one writer's rows."""
    store = ArtifactStore(uri)
    for round_ in range(2):
        tables = [rows(f"r{round_}w{i}", 10 + i) for i in range(8)]
        barrier = threading.Barrier(8)

        def write(i: int, tables: list[pa.Table] = tables,
                  barrier: threading.Barrier = barrier) -> None:
            barrier.wait(timeout=10)
            store.commit_shard("solve", 0, {"rows": tables[i]}, {"writer": i})

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        manifest = store.load_manifest("solve", 0, verify=True)
        assert manifest is not None
        assert store.read_shard(manifest, "rows").equals(tables[manifest.counts["writer"]])
    assert not [k for k in store.list("solve") if ".tmp-" in k]


def test_rerun_of_a_committed_shard_replaces_it(uri: str) -> None:
    store = ArtifactStore(uri)
    store.commit_shard("solve", 0, {"rows": rows("old", 2)})
    store.commit_shard("solve", 0, {"rows": rows("new", 3)})
    assert read_dataset(store.uri_for("solve")).equals(rows("new", 3))


def test_read_dataset_needs_a_name_when_shards_hold_several_files(uri: str) -> None:
    store = ArtifactStore(uri)
    store.commit_shard("solve", 0, {"rows": rows("a", 2), "rejects": rows("r", 1)})
    store.commit_shard("solve", 1, {"rows": rows("b", 2)})
    with pytest.raises(ValueError, match="pass name="):
        read_dataset(store.uri_for("solve"))
    assert read_dataset(store.uri_for("solve"), name="rows").num_rows == 4
    assert read_dataset(store.uri_for("solve"), name="rejects").num_rows == 1
    assert len(dataset_files(store.uri_for("solve"), name="rows")) == 2


def test_read_dataset_refuses_to_mix_steps(uri: str) -> None:
    store = ArtifactStore(uri)
    store.commit_shard("solve", 0, {"rows": rows("a", 1)})
    store.commit_shard("rewrite", 0, {"rows": rows("b", 1)})
    with pytest.raises(ValueError, match="several steps"):
        read_dataset(uri)


def test_read_dataset_plain_files_and_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    pq.write_table(rows("a", 2), folder / "part-0.parquet")
    pq.write_table(rows("b", 3), folder / "part-1.parquet")
    (folder / "part-2.parquet.tmp-0000").write_bytes(b"partial")
    assert read_dataset(str(folder)).num_rows == 5
    assert read_dataset(f"file://{folder}/part-1.parquet").equals(rows("b", 3))
    with pytest.raises(FileNotFoundError):
        read_dataset(str(tmp_path / "empty"))


def test_read_dataset_missing_committed_file_is_corrupt(uri: str) -> None:
    store = ArtifactStore(uri)
    manifest = store.commit_shard("solve", 0, {"rows": rows("a", 2)})
    store.delete(manifest.files["rows"]["key"])
    with pytest.raises(ShardCorrupt, match="missing"):
        read_dataset(store.uri_for("solve"))


def test_local_uri_has_no_storage_options(uri: str) -> None:
    assert storage_options(uri) == {}


def test_relative_file_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore("file://./artifacts")
    store.write_json("a.json", [1])
    assert (tmp_path / "artifacts" / "a.json").exists()


def test_storage_imports_no_prefect() -> None:
    """storage must stay usable without Prefect (DESIGN.md §2); prefect_aws is imported
    only when a credentials block is configured."""
    code = ("import sys, storage, storage.selfcheck; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('prefect', 'prefect_aws')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
