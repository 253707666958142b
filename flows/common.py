"""Helpers shared by the flows: settings resolution, shard fan-out, UI artifacts."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed

from flows.results import result_storage_for
from personamath.runner import RunContext, valid_manifest
from personamath.settings import Settings, build_settings, demo_settings, load_settings


class ShardsFailed(RuntimeError):
    """Some shards of a step failed; the message lists them. Retrying the flow run
    re-executes only those (the others are Cached or skipped by their manifest)."""


def resolve_settings(settings: Settings | dict | None, config_path: str | None) -> Settings:
    """Flow parameters: a Settings object/dict, a YAML path, or neither (the demo)."""
    if settings is not None:
        return settings if isinstance(settings, Settings) else build_settings(settings)
    if config_path:
        return load_settings(config_path)
    return demo_settings()


def run_stage(settings: Settings | dict | None, config_path: str | None, step: str,
              task_fn: Any) -> dict[str, Any]:
    """The body of the stage1 and stage2 flows: check the key, ingest (cached), fan the
    step's shards out, publish the per-shard table."""
    from tasks.shards import ingest_task

    s = resolve_settings(settings, config_path)
    s.teacher.check_key()
    ctx = RunContext.create(s)
    info = ingest_task(s, ctx.fingerprint)
    results = run_shards(task_fn, ctx, step, info["shards"])
    stage_table(step, results)
    return {"fingerprint": ctx.fingerprint, "shards": len(results), "ingest": info}


def run_shards(task_fn: Any, ctx: RunContext, step: str, n: int) -> list[dict[str, Any]]:
    """Submit one task per shard, track progress in a UI artifact, and fail with the
    list of failed shards once every shard has finished."""
    logger = get_run_logger()
    store = ctx.store()
    step_dir = ctx.step(step)
    futures = {}
    storage = result_storage_for(ctx.settings.store)
    base_fn = task_fn.with_options(result_storage=storage) if storage else task_fn
    for i in range(n):
        done = valid_manifest(store, step_dir, i) is not None
        fn = base_fn if done else base_fn.with_options(refresh_cache=True)
        futures[fn.submit(ctx.settings, ctx.fingerprint, i, step=step)] = i
    artifact_id = _progress(step, 0.0, n)
    results, failed = [], []
    for k, fut in enumerate(as_completed(list(futures)), 1):
        i = futures[fut]
        try:
            results.append(fut.result())
        except Exception as err:  # noqa: BLE001 - collected and reported below
            failed.append(f"{step} shard {i:05d}: {err}")
            logger.error("%s shard %05d failed: %s", step, i, err)
        if artifact_id:
            update_progress_artifact(artifact_id, 100.0 * k / max(1, n))
        logger.info("%s: %d/%d shards finished", step, k, n)
    if failed:
        raise ShardsFailed(f"{len(failed)} of {n} {step} shard(s) failed: " + "; ".join(failed))
    return sorted(results, key=lambda r: r["shard"])


def _progress(step: str, value: float, n: int) -> Any:
    try:
        return create_progress_artifact(progress=value, key=f"{step}-progress",
                                        description=f"{step}: share of {n} shards finished")
    except Exception:  # noqa: BLE001 - artifacts are a courtesy, never a failure
        return None


def stage_table(step: str, results: list[dict[str, Any]]) -> None:
    """A table artifact with one row per shard: in, rows, outcomes, requests, tokens."""
    rows = []
    for r in results:
        eng = r.get("engine", {})
        rows.append({
            "shard": r["shard"], "skipped": r.get("skipped", False),
            "questions": r.get("questions", 0), "rows": r.get("rows", 0),
            **{f"outcome:{k}": v for k, v in r.get("outcomes", {}).items()},
            "requests": eng.get("requests", 0),
            "tokens": eng.get("prompt_tokens", 0) + eng.get("completion_tokens", 0),
            "cost_usd": eng.get("cost_usd", 0.0),
        })
    _safe(create_table_artifact, table=rows, key=f"{step}-shards",
          description=f"{step}: per-shard statistics")


def summary_artifacts(summary: dict[str, Any]) -> None:
    """Markdown summary and stage statistics as UI artifacts."""
    from personamath.report import summary_markdown

    _safe(create_markdown_artifact, markdown=summary_markdown(summary), key="build-summary",
          description="PersonaMathQA build summary")
    stats = []
    for stage in ("stage1", "stage2"):
        s = summary[stage]
        stats.append({"stage": stage, "in": s["in"], "accepted": s["accepted"],
                      "to_stage2": s["to_stage2"], **{f"rejected:{k}": v
                                                      for k, v in s["rejected"].items()}})
    f = summary["final"]
    stats.append({"stage": "final", "in": summary["questions_in"], "accepted": f["accepted"],
                  "to_stage2": 0, **{f"rejected:{k}": v for k, v in f["rejected"].items()}})
    _safe(create_table_artifact, table=stats, key="stage-statistics",
          description="Questions in, accepted, rejected by reason (per stage and final)")
    _safe(create_table_artifact, table=dataset_rows(summary), key="statistics-by-dataset",
          description="Questions in, accepted, rejected by reason and rows, per source dataset")
    by = [{"group": "persona", "name": k, "rows": v} for k, v in summary["rows_by_persona"].items()]
    by += [{"group": "source", "name": k, "rows": v} for k, v in summary["rows_by_source"].items()]
    _safe(create_table_artifact, table=by, key="rows-by-persona-and-source",
          description="Dataset rows by persona and by source dataset")
    t = summary["teacher_calls"]
    _safe(create_table_artifact, table=[{k: v for k, v in t.items() if k != "by_kind"}],
          key="teacher-usage", description="Teacher requests, tokens and cost")


def dataset_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Final outcome per source dataset, from the build's rejections file: the summary
    itself counts outcomes over all datasets only."""
    from storage import open_store

    rejected: dict[str, dict[str, int]] = {}
    invalid: dict[str, int] = {}
    try:
        table = open_store(summary["run_uri"]).read_table("rejections.parquet")
        records = table.to_pylist() if table.num_rows else []
    except Exception as err:  # noqa: BLE001 - a courtesy table, never a failure
        get_run_logger().warning("no per-dataset statistics: %s", err)
        return []
    for r in records:
        by_reason = rejected.setdefault(r["dataset"], {})
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
        if r["stage"] == 0:  # invalid input rows never entered Stage 1
            invalid[r["dataset"]] = invalid.get(r["dataset"], 0) + 1
    valid = summary["ingest"]["by_dataset"]
    rows = []
    for ds in sorted(set(valid) | set(rejected)):
        n_rej = sum(rejected.get(ds, {}).values())
        rows.append({"dataset": ds, "in": valid.get(ds, 0) + invalid.get(ds, 0),
                     "accepted": valid.get(ds, 0) + invalid.get(ds, 0) - n_rej,
                     "rows": summary["rows_by_source"].get(ds, 0),
                     **{f"rejected:{k}": v for k, v in sorted(rejected.get(ds, {}).items())}})
    return rows


def _safe(fn: Any, **kwargs: Any) -> None:
    try:
        fn(**kwargs)
    except Exception as err:  # noqa: BLE001
        get_run_logger().warning("could not create artifact %s: %s", kwargs.get("key"), err)
