"""Stage 2 flow: reflection on the questions Stage 1 got wrong, one task per shard."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import resolve_settings, run_shards, stage_table
from personamath.runner import STEP_STAGE2, RunContext
from personamath.settings import Settings
from tasks.shards import ingest_task, stage2_shard_task


@flow(name="stage2", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def stage2_flow(settings: Settings | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Reflect on wrong answers, keep verified fixes, rewrite them K2 times."""
    s = resolve_settings(settings, config_path)
    s.teacher.check_key()
    ctx = RunContext.create(s)
    info = ingest_task(s, ctx.fingerprint)
    results = run_shards(stage2_shard_task, ctx, STEP_STAGE2, info["shards"])
    stage_table(STEP_STAGE2, results)
    return {"fingerprint": ctx.fingerprint, "shards": len(results)}
