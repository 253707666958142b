"""Stage 1 flow: ingest, then one task per shard (solve, verify, persona rewrites)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import resolve_settings, run_shards, stage_table
from personamath.runner import STEP_STAGE1, RunContext
from personamath.settings import Settings
from tasks.shards import ingest_task, stage1_shard_task


@flow(name="stage1", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def stage1_flow(settings: Settings | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Solve every question, verify against gold, rewrite solved ones with personas."""
    s = resolve_settings(settings, config_path)
    s.teacher.check_key()
    ctx = RunContext.create(s)
    info = ingest_task(s, ctx.fingerprint)
    results = run_shards(stage1_shard_task, ctx, STEP_STAGE1, info["shards"])
    stage_table(STEP_STAGE1, results)
    return {"fingerprint": ctx.fingerprint, "shards": len(results), "ingest": info}
