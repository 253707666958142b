"""Stage 2 flow: reflection on the questions Stage 1 got wrong, one task per shard."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import run_stage
from personamath.runner import STEP_STAGE2
from personamath.settings import Settings
from tasks.shards import stage2_shard_task


@flow(name="stage2", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def stage2_flow(settings: Settings | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Reflect on wrong answers, keep verified fixes, rewrite them K2 times."""
    return run_stage(settings, config_path, STEP_STAGE2, stage2_shard_task)
