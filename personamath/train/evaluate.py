"""Evaluate a model on GSM8K / MATH test sets: generate once, grade every time.

Generations are stored in the ArtifactStore under `evaluate/{generation fp}/
generations/` as committed shards of rows keyed by (benchmark, question id). A run
reads every committed shard first and generates only what is missing, in shards of
`shard_size`, each committed as soon as it is done: a rerun regenerates nothing, a
crash loses at most one shard, and a larger `limit` later reuses the smaller run's
work. Grading (cheap, and versioned separately) runs on every call, so a grader
upgrade re-scores stored generations without touching the model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from personamath.grading import GRADER_VERSION, Verdict, verify
from personamath.schema import Question
from personamath.sources import load_questions
from personamath.train.backends import Generation, Generator, make_generator
from personamath.train.modelio import model_id, resolve_model
from personamath.train.report import accuracy_tables, plot_accuracy, render_report
from personamath.train.settings import EvalSettings
from personamath.train.template import format_prompt
from storage.store import ArtifactStore

BENCHMARKS: dict[str, tuple[str, str]] = {  # name -> (grader dataset, source URI)
    "gsm8k": ("gsm8k", "builtin:gsm8k/test"),
    "math": ("math", "builtin:math/test"),
    "math500": ("math", "builtin:math/math500"),
}

GEN_SCHEMA = pa.schema([
    ("benchmark", pa.string()), ("question_id", pa.string()), ("response", pa.string()),
    ("finish_reason", pa.string()), ("completion_tokens", pa.int64()),
])

RESULT_SCHEMA = pa.schema([
    ("benchmark", pa.string()), ("question_id", pa.string()), ("question", pa.string()),
    ("gold", pa.string()), ("level", pa.string()), ("subject", pa.string()),
    ("response", pa.string()), ("finish_reason", pa.string()),
    ("completion_tokens", pa.int64()), ("extracted", pa.string()), ("verdict", pa.string()),
    ("correct", pa.bool_()), ("reason", pa.string()),
])


@dataclass
class EvalResult:
    """Small and JSON-able: what a Prefect task returns and the CLI prints."""

    model: str
    generation_fingerprint: str
    questions: int
    generated: int
    reused: int
    accuracy: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    results_uri: str = ""
    report_uri: str = ""
    plot_uri: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_benchmark(name: str, limit: int | None = None) -> list[Question]:
    dataset, uri = BENCHMARKS[name]
    return load_questions(dataset, uri, split="test", limit=limit).questions


# -- the generation store -------------------------------------------------------------
def stored_generations(store: ArtifactStore, step: str) -> dict[tuple[str, str], dict]:
    """Every committed generation of this step, by (benchmark, question id)."""
    out: dict[tuple[str, str], dict] = {}
    for shard in store.done_shards(step):
        manifest = store.load_manifest(step, shard, verify=False)  # read_shard verifies
        if manifest is None:
            continue
        for row in store.read_shard(manifest, "generations").to_pylist():
            out[(row["benchmark"], row["question_id"])] = row
    return out


def generate_missing(store: ArtifactStore, step: str, todo: list[tuple[str, Question]],
                     generator: Generator, settings: EvalSettings,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Generate `todo` shard by shard, committing each shard as it completes."""
    done = store.done_shards(step)
    next_shard = (max(done) + 1) if done else 0
    rows: list[dict] = []
    for start in range(0, len(todo), settings.shard_size):
        chunk = todo[start:start + settings.shard_size]
        shard_rows = []
        for b in range(0, len(chunk), settings.batch_size):
            batch = chunk[b:b + settings.batch_size]
            gens = generator.generate([format_prompt(q.question) for _, q in batch])
            shard_rows += [_gen_row(bench, q, g) for (bench, q), g in zip(batch, gens, strict=True)]
        store.commit_shard(step, next_shard, {"generations": pa.Table.from_pylist(
            shard_rows, schema=GEN_SCHEMA)}, {"rows": len(shard_rows)})
        next_shard += 1
        rows += shard_rows
        if progress:
            progress(start + len(chunk), len(todo))
    return rows


def _gen_row(bench: str, q: Question, g: Generation) -> dict:
    return {"benchmark": bench, "question_id": q.id, "response": g.text,
            "finish_reason": g.finish_reason, "completion_tokens": g.completion_tokens}


# -- grading ----------------------------------------------------------------------------
def grade(bench: str, q: Question, gen: dict) -> dict:
    """One per-question record. A truncated generation is graded like any other (its
    answer may still be there); a grader failure is an `error`, never `incorrect`."""
    try:
        verdict = verify(q.gold, gen["response"], BENCHMARKS[bench][0])
    except Exception as err:  # noqa: BLE001 - one bad case must not stop the report
        verdict = Verdict("error", f"grader failure: {type(err).__name__}: {err}",
                          None, None, None)
    return {"benchmark": bench, "question_id": q.id, "question": q.question, "gold": q.gold,
            "level": q.level, "subject": q.subject, "response": gen["response"],
            "finish_reason": gen["finish_reason"], "completion_tokens": gen["completion_tokens"],
            "extracted": verdict.extracted, "verdict": verdict.status,
            "correct": verdict.correct, "reason": verdict.reason}


# -- the run ----------------------------------------------------------------------------
def run_evaluation(settings: EvalSettings, generator: Generator | None = None,
                   progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Generate what is missing, grade everything, write the per-question Parquet,
    metrics, plot and Markdown report; the model is loaded only if something is missing."""
    start = time.monotonic()
    store = ArtifactStore(settings.store)
    gfp = settings.generation_fingerprint(model_id(settings.model))
    step = f"evaluate/{gfp}/generations"
    wanted = [(b, q) for b in settings.benchmarks for q in load_benchmark(b, settings.limit)]
    have = stored_generations(store, step)
    todo = [(b, q) for b, q in wanted if (b, q.id) not in have]
    if todo:
        gen = generator or make_generator(resolve_model(settings.model), settings)
        for row in generate_missing(store, step, todo, gen, settings, progress):
            have[(row["benchmark"], row["question_id"])] = row
    records = [grade(b, q, have[(b, q.id)]) for b, q in wanted]
    result = _write_outputs(settings, store, gfp, records)
    result.generated, result.reused = len(todo), len(wanted) - len(todo)
    result.seconds = round(time.monotonic() - start, 2)
    store.write_json(f"evaluate/requests/{settings.request_key()}.json", result.to_dict())
    return result


def _run_key(settings: EvalSettings, gfp: str) -> str:
    tag = hashlib.sha256(json.dumps([settings.benchmarks, settings.limit, GRADER_VERSION])
                         .encode()).hexdigest()[:10]
    return f"evaluate/{gfp}/runs/{tag}"


def _write_outputs(settings: EvalSettings, store: ArtifactStore, gfp: str,
                   records: list[dict]) -> EvalResult:
    key = _run_key(settings, gfp)
    label = settings.label or settings.model
    metrics = accuracy_tables(records)
    metrics.update({"model": settings.model, "label": label, "backend": settings.backend,
                    "grader_version": GRADER_VERSION, "generation_fingerprint": gfp,
                    "max_new_tokens": settings.max_new_tokens})
    store.write_table(f"{key}/questions.parquet", pa.Table.from_pylist(records,
                                                                        schema=RESULT_SCHEMA))
    store.write_json(f"{key}/metrics.json", metrics)
    store.write_bytes(f"{key}/accuracy.png", plot_accuracy(metrics, label))
    store.write_bytes(f"{key}/report.md", render_report(metrics).encode())
    return EvalResult(
        model=settings.model, generation_fingerprint=gfp, questions=len(records),
        generated=0, reused=0,
        accuracy={b: m["accuracy"] for b, m in metrics["by_benchmark"].items()},
        metrics=metrics, results_uri=store.uri_for(f"{key}/questions.parquet"),
        report_uri=store.uri_for(f"{key}/report.md"), plot_uri=store.uri_for(f"{key}/accuracy.png"),
    )
