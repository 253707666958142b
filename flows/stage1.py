"""Stage 1 flow: ingest, then one task per shard (solve, verify, persona rewrites)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import run_stage
from personamath.runner import STEP_STAGE1
from personamath.settings import Settings
from tasks.shards import stage1_shard_task


@flow(name="stage1", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def stage1_flow(settings: Settings | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Solve every question, verify against gold, rewrite solved ones with personas."""
    return run_stage(settings, config_path, STEP_STAGE1, stage1_shard_task)
