"""The parent flow: Stage 1 -> Stage 2 -> build (-> fine-tune -> evaluate)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.build import build_flow
from flows.common import resolve_settings
from flows.stage1 import stage1_flow
from flows.stage2 import stage2_flow
from personamath.settings import Settings


@flow(name="pipeline", log_prints=True)
def pipeline_flow(settings: Settings | None = None,
                  config_path: str | None = None) -> dict[str, Any]:
    """Run the whole method on the configured sources (the keyless demo by default)."""
    s = resolve_settings(settings, config_path)
    s.teacher.check_key()
    logger = get_run_logger()
    stage1_flow(settings=s)
    stage2_flow(settings=s)
    summary = build_flow(settings=s)
    logger.info("dataset: %s (%d rows)", summary["dataset_uri"], summary["build"]["rows_out"])
    _parent_summary(summary)
    if s.run_finetune and summary["build"]["rows_out"] == 0:
        logger.warning("the dataset has no rows: fine-tuning skipped")
    elif s.run_finetune or s.run_evaluate:
        summary["training"] = _train_and_evaluate(s, summary["dataset_uri"])
    return summary


def _train_and_evaluate(s: Settings, dataset_uri: str) -> dict[str, Any]:
    """Hand the dataset to the GPU steps (see flows/finetune.py)."""
    from flows.finetune import run_training_and_eval

    return run_training_and_eval(dataset_uri, s)


def _parent_summary(summary: dict[str, Any]) -> None:
    """The run summary on the parent run too, where UI users look first."""
    from prefect.artifacts import create_markdown_artifact

    from personamath.report import summary_markdown

    try:
        create_markdown_artifact(markdown=summary_markdown(summary), key="pipeline-summary",
                                 description=f"PersonaMathQA: {summary['dataset_uri']}")
    except Exception as err:  # noqa: BLE001 - an artifact is a courtesy, never a failure
        get_run_logger().warning("could not create the summary artifact: %s", err)
