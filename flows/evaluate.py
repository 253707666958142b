"""The `evaluate` flow: greedy generation on GSM8K / MATH, graded, reported in the UI.

Runs alone on any model (a base model for baseline numbers, or a fine-tuned one from
the store) or as the last step of the pipeline (see flows/finetune.py). Deployment:
`evaluate/default` on the `gpu` work pool.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import _safe
from personamath.train.report import render_report, table_rows
from personamath.train.settings import EvalSettings
from tasks.train import evaluate_task


@flow(name="evaluate", log_prints=True)
def evaluate_flow(settings: EvalSettings) -> dict[str, Any]:
    """Evaluate `settings.model`; returns accuracies, counts and the output URIs."""
    logger = get_run_logger()
    result = evaluate_task(settings)
    logger.info("accuracy %s on %d questions (%d generated, %d reused) -> %s",
                result["accuracy"], result["questions"], result["generated"],
                result["reused"], result["results_uri"])
    eval_artifacts(result)
    return result


def eval_artifacts(result: dict[str, Any]) -> None:
    """Accuracy table and the Markdown report (with links to the Parquet and plot)."""
    metrics = result["metrics"]
    md = render_report(metrics) + (
        f"\nPer-question results: `{result['results_uri']}`  \n"
        f"Plot: `{result['plot_uri']}`  \n"
        f"Generated this run: {result['generated']}, reused from the store: "
        f"{result['reused']}.\n")
    _safe(create_table_artifact, table=table_rows(metrics), key="evaluation-accuracy",
          description=f"Accuracy of {metrics['label']} by benchmark, subject and level")
    _safe(create_markdown_artifact, markdown=md, key="evaluation-report",
          description=f"Evaluation report: {metrics['label']}")

