"""Prefect tasks: thin shells over personamath.runner, one task run per shard.

Cache keys are explicit (step + fingerprint + shard), results are persisted, and a
retried flow run therefore shows finished shards as Cached and re-executes only the
others. Inside each task the shard manifest is checked again, so even without
Prefect's cache a finished shard never calls the teacher twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from personamath import build as build_mod
from personamath.runner import RunContext, ingest, run_stage1_shard, run_stage2_shard
from personamath.settings import Settings
from storage import StoreError


def shard_cache_key(_: TaskRunContext, params: dict[str, Any]) -> str:
    """fingerprint + step + shard, and where the run's outputs live: the same settings
    pointed at another store (or another working directory's ./artifacts) must not be
    answered from a cache entry whose data is somewhere else."""
    where = RunContext(params["settings"], params["fingerprint"]).uri
    place = hashlib.sha256(where.encode()).hexdigest()[:10]
    return (f"{params['fingerprint']}-{params.get('step', 'ingest')}-"
            f"{params.get('shard', 0)}-{place}")


def retry_on_store_error(_task: Any, _run: Any, state: Any) -> bool:
    """Retry a shard only when the store blipped; a teacher that failed after the
    engine's own retries would be paid for again, so those fail the shard at once."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001
        return False
    return isinstance(exc, StoreError)


_TASK_OPTS: dict[str, Any] = {
    "cache_key_fn": shard_cache_key,
    "persist_result": True,
    "retries": 1,
    "retry_delay_seconds": 5,
    "retry_condition_fn": retry_on_store_error,
}


@task(name="ingest", **_TASK_OPTS)
def ingest_task(settings: Settings, fingerprint: str) -> dict[str, Any]:
    """Load and normalise every source once per fingerprint."""
    return ingest(RunContext(settings, fingerprint))


@task(name="stage1-shard", task_run_name="stage1 shard {shard}", **_TASK_OPTS)
def stage1_shard_task(settings: Settings, fingerprint: str, shard: int,
                      step: str = "stage1") -> dict[str, Any]:
    """Solve, verify and rewrite one shard of questions."""
    return run_stage1_shard(RunContext(settings, fingerprint), shard)


@task(name="stage2-shard", task_run_name="stage2 shard {shard}", **_TASK_OPTS)
def stage2_shard_task(settings: Settings, fingerprint: str, shard: int,
                      step: str = "stage2") -> dict[str, Any]:
    """Reflect on one shard's wrong answers and rewrite the fixed ones."""
    return run_stage2_shard(RunContext(settings, fingerprint), shard)


@task(name="build", persist_result=False)
def build_task(settings: Settings, fingerprint: str) -> dict[str, Any]:
    """Merge, deduplicate, decontaminate, export and account (no teacher calls)."""
    return build_mod.build(RunContext(settings, fingerprint))
