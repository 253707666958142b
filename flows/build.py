"""Build flow: merge both stages into PersonaMathQA and publish the summary."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import resolve_settings, summary_artifacts
from personamath.runner import RunContext
from personamath.settings import Settings
from tasks.shards import build_task


@flow(name="build", log_prints=True)
def build_flow(settings: Settings | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Deduplicate, decontaminate, export Parquet + summary; fail if counts don't add up."""
    s = resolve_settings(settings, config_path)
    ctx = RunContext.create(s)
    summary = build_task(s, ctx.fingerprint)
    summary_artifacts(summary)
    return summary
