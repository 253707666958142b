"""Read an SFT dataset (the pipeline's output) from a file, a folder or a store URI.

The dataset's content, not its URI, identifies it: the digest of its (problem,
response) pairs goes into the fine-tuning fingerprint, so a rebuilt dataset at the
same URI trains a new model instead of resuming an old one's checkpoints.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from personamath.train.modelio import split_store_uri


@dataclass(frozen=True)
class SftRows:
    problems: list[str]
    responses: list[str]
    digest: str

    def __len__(self) -> int:
        return len(self.problems)


def _table_from_bytes(name: str, data: bytes) -> pa.Table:
    if name.endswith(".gz"):
        data, name = gzip.decompress(data), name[:-3]
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data))
    if name.endswith(".jsonl") or name.endswith(".json"):
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        return pa.Table.from_pylist(rows)
    raise ValueError(f"{name}: unknown dataset format (use .parquet, .jsonl or .jsonl.gz)")


def read_table_uri(uri: str) -> pa.Table:
    """One table from a file, or from every .parquet file below a folder (sorted, so the
    row order and hence the digest are stable)."""
    store, key = split_store_uri(uri)
    if store.fs.get_file_info(store._full(key)).type == pafs.FileType.File:
        return _table_from_bytes(key, store.read_bytes(key))
    parts = [k for k in store.list(key) if k.endswith(".parquet")]
    if not parts:
        raise FileNotFoundError(f"no dataset at {uri} (no file, no .parquet files below it)")
    return pa.concat_tables([store.read_table(k) for k in parts], promote_options="default")


def load_sft_rows(uri: str, limit: int | None = None) -> SftRows:
    """The (problem, response) pairs at `uri`; other (lineage) columns are ignored."""
    table = read_table_uri(uri)
    missing = {"problem", "response"} - set(table.column_names)
    if missing:
        raise ValueError(f"{uri}: the dataset lacks column(s) {sorted(missing)}")
    problems = [str(p) for p in table.column("problem").to_pylist()]
    responses = [str(r) for r in table.column("response").to_pylist()]
    if limit is not None:
        problems, responses = problems[:limit], responses[:limit]
    h = hashlib.sha256()
    for p, r in zip(problems, responses, strict=True):
        h.update(p.encode() + b"\x00" + r.encode() + b"\x01")
    return SftRows(problems, responses, h.hexdigest()[:16])
