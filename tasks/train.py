"""Prefect tasks for fine-tuning and evaluation: thin shells over personamath.train.

The store is the cache here, keyed explicitly: a fine-tune is keyed by its fingerprint
(dataset content, base model, recipe) and resumes from its latest checkpoint; each
generation by (generation fingerprint, benchmark, question id). So these tasks use no
Prefect result cache (cache_policy NONE): a rerun asks the store, reports truthfully
what it generated or trained this time (0 when all was done), and re-grades stored
generations, which is cheap. A task retry after a crash resumes rather than restarts.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE

from personamath.train.settings import EvalSettings, FinetuneSettings


def retry_unless_bad_input(_task: Any, _run: Any, state: Any) -> bool:
    """Retry crashes (OOM-killed workers, store blips, preempted GPUs): the retry
    resumes from the last checkpoint. Bad settings or data fail at once."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001
        return True
    return not isinstance(exc, ValueError | FileNotFoundError | TypeError | ImportError)


@task(name="finetune", cache_policy=NONE, retries=1, retry_delay_seconds=30,
      retry_condition_fn=retry_unless_bad_input, timeout_seconds=None)
def finetune_task(settings: FinetuneSettings) -> dict[str, Any]:
    """Fine-tune (or resume, or skip when done); returns the model URI and numbers."""
    from personamath.train.finetune import run_finetune

    return run_finetune(settings).to_dict()


@task(name="evaluate", cache_policy=NONE, retries=1, retry_delay_seconds=10,
      retry_condition_fn=retry_unless_bad_input)
def evaluate_task(settings: EvalSettings) -> dict[str, Any]:
    """Generate what is missing, grade everything; returns accuracies and URIs."""
    from personamath.train.evaluate import run_evaluation

    artifact_id = _progress_artifact()

    def progress(done: int, total: int) -> None:
        if artifact_id:
            update_progress_artifact(artifact_id, 100.0 * done / max(1, total))

    return run_evaluation(settings, progress=progress).to_dict()


def _progress_artifact() -> Any:
    try:
        return create_progress_artifact(progress=0.0, key="evaluate-progress",
                                        description="share of missing generations done")
    except Exception:  # noqa: BLE001 - artifacts are a courtesy, never a failure
        return None
