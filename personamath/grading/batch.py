"""Batch grading for ``personamath grade --cases FILE.jsonl [--workers N]``.

Each input line is ``{"pred": ..., "gold": ..., "dataset": ...}``; each output line
is ``{"verdict", "correct", "reason", "extracted"}`` in input order. A malformed line
yields an ``error`` verdict naming its line number instead of stopping the batch.
Parallelism uses processes (chunks of lines), never signals.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from personamath.grading.verify import verify

CHUNK = 256


def _error_row(reason: str) -> dict[str, object]:
    return {"verdict": "error", "correct": False, "reason": reason, "extracted": None}


def grade_line(lineno: int, line: str) -> dict[str, object]:
    """Grade one JSONL line; any problem with the line itself becomes an error row."""
    try:
        case = json.loads(line)
    except json.JSONDecodeError as exc:
        return _error_row(f"line {lineno}: invalid JSON ({exc.msg})")
    if not isinstance(case, dict) or "pred" not in case or "gold" not in case:
        return _error_row(f"line {lineno}: expected an object with 'pred' and 'gold'")
    pred, gold, dataset = case["pred"], case["gold"], case.get("dataset")
    if pred is None or gold is None:
        return _error_row(f"line {lineno}: 'pred' and 'gold' must not be null")
    if dataset is not None and not isinstance(dataset, str):
        return _error_row(f"line {lineno}: 'dataset' must be a string")
    try:
        verdict = verify(str(gold), str(pred), dataset)
    except Exception as exc:  # noqa: BLE001 - one bad case must not stop a batch
        return _error_row(f"line {lineno}: grader failure: {type(exc).__name__}: {exc}")
    return {
        "verdict": verdict.status,
        "correct": verdict.correct,
        "reason": verdict.reason,
        "extracted": verdict.extracted,
    }


def _grade_chunk(chunk: list[tuple[int, str]]) -> list[dict[str, object]]:
    return [grade_line(n, line) for n, line in chunk]


def _chunks(lines: list[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


def grade_cases_cli(path: Path, workers: int = 1) -> int:
    """Grade every case in ``path``, writing one JSON line per case to stdout.

    Returns 0 when the file was read (even if some lines were bad), 2 when it could
    not be read at all.
    """
    try:
        raw = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 2
    lines = [(n, line) for n, line in enumerate(raw, start=1) if line.strip()]
    out = sys.stdout
    if workers <= 1 or len(lines) <= CHUNK:
        results = (grade_line(n, line) for n, line in lines)
        for row in results:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for rows in pool.map(_grade_chunk, _chunks(lines, CHUNK)):
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
    return 0
