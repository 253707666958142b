"""Shard-level steps: ingest, one Stage 1 shard, one Stage 2 shard, and their layout.

Pure glue between `generate` (the method), `storage` (the store) and `llm` (the
engine). Prefect tasks call these functions and nothing else, so the same steps run
from a notebook, a test or a flow. Every step is idempotent: a shard with a valid
manifest is returned as it is, without a single request to the teacher.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from personamath.generate import Failure, ShardResult, stage1_shard, stage2_shard
from personamath.ledger import StoreLedger
from personamath.llm import make_engine
from personamath.prompts import versions
from personamath.schema import (
    OUTCOME_SCHEMA,
    QUESTION_SCHEMA,
    REJECTION_SCHEMA,
    ROW_SCHEMA,
    Question,
    questions_from_table,
    to_table,
)
from personamath.settings import Settings
from personamath.sources import load_source
from storage import ArtifactStore, ShardCorrupt, open_store

log = logging.getLogger("personamath")

STEP_INGEST = "ingest"
STEP_STAGE1 = "stage1"
STEP_STAGE2 = "stage2"


@dataclass(frozen=True)
class RunContext:
    """Where a run's outputs live: `{store}/{dataset_name}/{fingerprint}/`."""

    settings: Settings
    fingerprint: str

    @classmethod
    def create(cls, settings: Settings) -> RunContext:
        return cls(settings, settings.fingerprint(versions()))

    @property
    def base(self) -> str:
        return f"{self.settings.dataset_name}/{self.fingerprint}"

    def step(self, name: str) -> str:
        return f"{self.base}/{name}"

    def store(self) -> ArtifactStore:
        return open_store(self.settings.store)

    @property
    def uri(self) -> str:
        """Absolute URI of the run's folder (a relative file:// store is resolved, so the
        URI printed in summaries works from any directory)."""
        store = self.settings.store.rstrip("/")
        if store.startswith("file://"):
            store = "file://" + str(Path(store[len("file://"):]).expanduser().resolve())
        return f"{store}/{self.base}"


def valid_manifest(store: ArtifactStore, step: str, shard: int) -> Any:
    """The shard's manifest if it is committed and intact; None otherwise. A corrupt
    shard is reported and treated as not done, so it is rewritten."""
    try:
        return store.load_manifest(step, shard)
    except ShardCorrupt as err:
        log.warning("%s; the shard will be rewritten", err)
        return None


# -- ingest -------------------------------------------------------------------------
def ingest(ctx: RunContext) -> dict[str, Any]:
    """Load every source into one table of questions (stable order: dataset, id) and a
    table of rejected input rows; committed as shard 0 of step 'ingest'."""
    store = ctx.store()
    step = ctx.step(STEP_INGEST)
    manifest = valid_manifest(store, step, 0)
    if manifest is None:
        questions, rejections = [], []
        for src in ctx.settings.sources:
            res = load_source(src)
            questions.extend(res.questions)
            rejections.extend(res.rejections)
        questions = _dedupe_ids(questions)
        questions.sort(key=lambda q: (q.dataset, q.id))
        counts = {"questions": len(questions), "rejected": len(rejections)}
        manifest = store.commit_shard(step, 0, {
            "questions": to_table(questions, QUESTION_SCHEMA),
            "rejections": to_table(rejections, REJECTION_SCHEMA),
        }, counts)
    n = manifest.counts["questions"]
    return {**manifest.counts, "shards": num_shards(n, ctx.settings.shard_size)}


def _dedupe_ids(questions: list[Question]) -> list[Question]:
    """Two sources may use the same id; make them distinct rather than lose one."""
    seen: dict[str, int] = {}
    out = []
    for q in questions:
        if q.id in seen:
            seen[q.id] += 1
            q = Question(f"{q.id}#{seen[q.id]}", q.dataset, q.split, q.question, q.gold,
                         q.level, q.subject)
        else:
            seen[q.id] = 0
        out.append(q)
    return out


def num_shards(n: int, shard_size: int) -> int:
    return max(1, math.ceil(n / shard_size)) if n else 0


def load_questions_table(ctx: RunContext, store: ArtifactStore) -> pa.Table:
    manifest = store.load_manifest(ctx.step(STEP_INGEST), 0, verify=False)
    if manifest is None:
        raise RuntimeError(f"ingest has not run for {ctx.uri}: run stage1 (or the pipeline)")
    return store.read_shard(manifest, "questions")


def shard_questions(ctx: RunContext, store: ArtifactStore, shard: int) -> list[Question]:
    table = load_questions_table(ctx, store)
    size = ctx.settings.shard_size
    return questions_from_table(table.slice(shard * size, size))


# -- stage shards -------------------------------------------------------------------
def run_stage1_shard(ctx: RunContext, shard: int) -> dict[str, Any]:
    """Stage 1 on the questions of `shard` (skipped when already committed)."""
    return _stage_shard(ctx, STEP_STAGE1, shard, shard_questions,
                        lambda items, e: stage1_shard(items, ctx.settings, e))


def run_stage2_shard(ctx: RunContext, shard: int) -> dict[str, Any]:
    """Stage 2 on the questions Stage 1 shard `shard` got wrong."""
    return _stage_shard(ctx, STEP_STAGE2, shard, stage1_failures,
                        lambda items, e: stage2_shard(items, ctx.settings, e))


def stage1_failures(ctx: RunContext, store: ArtifactStore, shard: int) -> list[Failure]:
    """The Stage 1 questions of `shard` that go to Stage 2, with their last attempt."""
    manifest = store.load_manifest(ctx.step(STEP_STAGE1), shard, verify=False)
    if manifest is None:
        raise RuntimeError(f"stage1 shard {shard:05d} is not done; run stage1 first")
    outcomes = store.read_shard(manifest, "outcomes").to_pylist()
    wanted = {o["question_id"]: o["last_response"] for o in outcomes
              if o["status"] == "to_stage2"}
    return [Failure(q, wanted[q.id]) for q in shard_questions(ctx, store, shard)
            if q.id in wanted]


def _stage_shard(ctx: RunContext, step_name: str, shard: int, load: Any,
                 work: Any) -> dict[str, Any]:
    """The idempotent shell of every stage shard: skip a committed shard, else load its
    inputs, run the work with a ledger-backed engine, and commit."""
    store = ctx.store()
    step = ctx.step(step_name)
    manifest = valid_manifest(store, step, shard)
    if manifest is not None:
        return {"shard": shard, "skipped": True, **manifest.counts}
    items = load(ctx, store, shard)
    result, engine_stats, wall = _run(ctx, lambda e: work(items, e),
                                      f"{step}/ledger/shard-{shard:05d}")
    return _commit(store, step, shard, result, engine_stats, wall, len(items))


def _run(ctx: RunContext, make_coro: Any,
         ledger_prefix: str) -> tuple[ShardResult, dict[str, Any], float]:
    """Run one shard's coroutine on a fresh event loop with its own engine; replies are
    checkpointed in the shard's request ledger, so a rerun re-sends only what is new."""

    async def main() -> tuple[ShardResult, dict[str, Any]]:
        engine = make_engine(ctx.settings.teacher, ledger=ledger)
        try:
            result = await make_coro(engine)
        finally:
            ledger.flush()
            await engine.aclose()
        return result, engine.stats.to_dict()

    # One object per reply: a PUT costs far less than the reply it saves (also on S3).
    ledger = StoreLedger(ctx.store(), ledger_prefix, flush_every=1)

    t0 = time.perf_counter()
    result, stats = asyncio.run(main())
    return result, stats, time.perf_counter() - t0


def _commit(store: ArtifactStore, step: str, shard: int, result: ShardResult,
            engine_stats: dict[str, Any], wall: float, n_in: int) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    for o in result.outcomes:
        key = o.status if o.status != "rejected" else f"rejected:{o.reason}"
        by_status[key] = by_status.get(key, 0) + 1
    if len(result.outcomes) != n_in:
        raise AssertionError(f"{step} shard {shard}: {n_in} questions in, "
                             f"{len(result.outcomes)} outcomes")
    counts = {
        "questions": n_in, "rows": len(result.rows), "outcomes": by_status,
        "stats": result.stats, "engine": engine_stats, "wall_s": round(wall, 3),
    }
    store.commit_shard(step, shard, {
        "rows": to_table(result.rows, ROW_SCHEMA),
        "outcomes": to_table(result.outcomes, OUTCOME_SCHEMA),
    }, counts)
    return {"shard": shard, "skipped": False, **counts}
