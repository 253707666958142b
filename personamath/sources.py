"""Load GSM8K and MATH questions into the common `Question` schema.

Inputs can be JSONL or Parquet files (local or s3://), the Hugging Face hub
(`hf://<repo>[:<config>]`, only when asked; needs `datasets`), or the copies shipped
in the package (`builtin:gsm8k/test`, `builtin:math/test`, `builtin:math/math500`,
`builtin:demo/gsm8k`, `builtin:demo/math`). A malformed row is never dropped
silently: it becomes an `InputRejection` naming the row and the reason.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from personamath.grading.extract import last_box
from personamath.schema import InputRejection, Question, RejectReason

BUILTIN = {
    "gsm8k/test": "gsm8k_test.jsonl.gz",
    "math/test": "math_test.jsonl.gz",
    "math/math500": "math_math500.jsonl.gz",
    "demo/gsm8k": "demo_gsm8k.jsonl",
    "demo/math": "demo_math.jsonl",
}

_GSM8K_NUM = re.compile(r"^-?[\d,]*\.?\d+$")


class SourceError(ValueError):
    """An input cannot be read at all (missing file, unknown format)."""


@dataclass
class LoadResult:
    questions: list[Question] = field(default_factory=list)
    rejections: list[InputRejection] = field(default_factory=list)


def load_questions(dataset: str, uri: str, split: str = "train",
                   limit: int | None = None) -> LoadResult:
    """Read raw rows from `uri` and normalise them; `limit` takes the first N rows."""
    rows = read_rows(uri)
    if limit is not None:
        rows = rows[:limit]
    result = LoadResult()
    seen: set[str] = set()
    for i, raw in enumerate(rows):
        q_or_err = normalise_row(dataset, split, i, raw)
        if isinstance(q_or_err, Question) and q_or_err.id in seen:
            q_or_err = InputRejection(q_or_err.id, dataset, RejectReason.INVALID_INPUT,
                                      "duplicate id in the input")
        if isinstance(q_or_err, Question):
            seen.add(q_or_err.id)
            result.questions.append(q_or_err)
        else:
            result.rejections.append(q_or_err)
    return result


def load_source(src: Any) -> LoadResult:
    """Load one `SourceSettings`."""
    return load_questions(src.dataset, src.uri, src.split, src.limit)


# -- reading ------------------------------------------------------------------------
def read_rows(uri: str) -> list[dict[str, Any]]:
    if uri.startswith("builtin:"):
        return _read_builtin(uri[len("builtin:"):])
    if uri.startswith("hf://"):
        return _read_hf(uri[len("hf://"):])
    data = _read_bytes(uri)
    if uri.endswith(".gz"):
        data = gzip.decompress(data)
        uri = uri[:-3]
    if uri.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    if uri.endswith(".jsonl") or uri.endswith(".json"):
        return _parse_jsonl(data.decode("utf-8"), uri)
    raise SourceError(f"{uri}: unknown format (use .jsonl, .jsonl.gz or .parquet)")


def _read_builtin(name: str) -> list[dict[str, Any]]:
    if name not in BUILTIN:
        raise SourceError(f"builtin:{name} does not exist; choose from {sorted(BUILTIN)}")
    data = resources.files("personamath.data").joinpath(BUILTIN[name]).read_bytes()
    if BUILTIN[name].endswith(".gz"):
        data = gzip.decompress(data)
    return _parse_jsonl(data.decode("utf-8"), f"builtin:{name}")


def _read_bytes(uri: str) -> bytes:
    if uri.startswith("s3://"):
        from storage.backends import s3_filesystem

        with s3_filesystem().open_input_stream(uri[len("s3://"):]) as f:
            return f.read()
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"input file not found: {path}") from None


def _parse_jsonl(text: str, where: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            obj = {"__error__": f"line {n} of {where} is not valid JSON ({err.msg})"}
        if not isinstance(obj, dict):
            obj = {"__error__": f"line {n} of {where} is not a JSON object"}
        rows.append(obj)
    return rows


def _read_hf(spec: str) -> list[dict[str, Any]]:
    """hf://openai/gsm8k:main@train -> datasets.load_dataset('openai/gsm8k', 'main',
    split='train'). Used only when asked: the hub is a network dependency."""
    try:
        import datasets
    except ImportError:
        raise SourceError("hf:// sources need `pip install personamath[hf]`") from None
    repo, _, split = spec.partition("@")
    repo, _, config = repo.partition(":")
    ds = datasets.load_dataset(repo, config or None, split=split or "train")
    return [dict(r) for r in ds]


# -- normalising --------------------------------------------------------------------
def normalise_row(dataset: str, split: str, index: int,
                  raw: dict[str, Any]) -> Question | InputRejection:
    rid = str(raw.get("id") or raw.get("unique_id") or f"{dataset}-{split}-{index:05d}")
    if dataset == "math" and raw.get("unique_id") and not raw.get("id"):
        rid = f"math-{split}-{index:05d}"  # MATH unique_ids are not unique across splits
    if "__error__" in raw:
        return InputRejection(rid, dataset, RejectReason.INVALID_INPUT, raw["__error__"])
    question = str(raw.get("question") or raw.get("problem") or "").strip()
    if not question:
        return InputRejection(rid, dataset, RejectReason.INVALID_INPUT, "empty question")
    try:
        gold = gsm8k_gold(raw) if dataset == "gsm8k" else math_gold(raw)
    except ValueError as err:
        return InputRejection(rid, dataset, RejectReason.INVALID_INPUT, str(err))
    level = raw.get("level")
    subject = raw.get("subject") or raw.get("type")
    return Question(rid, dataset, split, question, gold,
                    str(level) if level is not None else None,
                    str(subject) if subject is not None else None)


def gsm8k_gold(raw: dict[str, Any]) -> str:
    """GSM8K's gold is the number after the last '####' of the reference answer."""
    ans = raw.get("answer")
    if ans is None or not str(ans).strip():
        raise ValueError("missing answer")
    text = str(ans)
    tail = text.rsplit("####", 1)[1].strip() if "####" in text else text.strip()
    tail = tail.replace(",", "").replace("$", "").strip()
    if not _GSM8K_NUM.match(tail):
        raise ValueError(f"unparsable GSM8K gold answer {tail[:40]!r} (expected a number)")
    return tail


def math_gold(raw: dict[str, Any]) -> str:
    """MATH's gold: the `answer` field, else the last \\boxed{} of the solution."""
    ans = raw.get("answer")
    if ans is not None and str(ans).strip():
        return str(ans).strip()
    sol = raw.get("solution")
    if not sol:
        raise ValueError("missing answer (no `answer` field and no `solution`)")
    boxed = last_box(str(sol))
    if boxed is None or not boxed.strip():
        raise ValueError("unparsable gold: no \\boxed{} answer in the solution")
    return boxed.strip()
