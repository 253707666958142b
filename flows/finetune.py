"""The `finetune` flow, and the trigger the pipeline calls after the build.

`run_training_and_eval` hands the finished dataset to fine-tuning and then evaluation.
With a Prefect server it starts the `finetune/default` and `evaluate/default`
deployments (the `gpu` work pool) through `run_deployment` and reads their summaries
from the shared store; without one (ephemeral mode, tests, the demo) it runs the
same flows in this process.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import _safe
from flows.evaluate import evaluate_flow
from personamath.train.settings import EvalSettings, FinetuneSettings
from storage.store import ArtifactStore
from tasks.train import finetune_task

FINETUNE_DEPLOYMENT = "finetune/default"
EVALUATE_DEPLOYMENT = "evaluate/default"


@flow(name="finetune", log_prints=True)
def finetune_flow(settings: FinetuneSettings) -> dict[str, Any]:
    """Fine-tune `settings.base_model` on `settings.dataset_uri`; returns the model URI."""
    result = finetune_task(settings)
    get_run_logger().info("model %s (%d steps, %d this run, resumed from %s)",
                          result["model_uri"], result["steps"], result["steps_this_run"],
                          result["resumed_from"])
    _safe(create_markdown_artifact, markdown=finetune_markdown(settings, result),
          key="finetune-summary", description="Fine-tuning summary")
    return result


def finetune_markdown(settings: FinetuneSettings, r: dict[str, Any]) -> str:
    losses = r["losses"]
    loss = f"{losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "n/a (no step logged)"
    state = ("already complete (nothing trained)" if r["already_done"]
             else f"resumed from {r['resumed_from']}" if r["resumed_from"] else "trained")
    return "\n".join([
        f"# Fine-tune `{r['fingerprint']}`", "",
        f"- base model: `{settings.base_model}`; dataset: `{settings.dataset_uri}`",
        f"- {state}; model: `{r['model_uri']}`",
        f"- rows {r['rows']}, examples {r['examples']} ({r['truncated']} truncated, "
        f"{r['dropped']} dropped)",
        f"- steps {r['steps']} ({r['steps_this_run']} this run), loss {loss}",
        f"- recipe: {'LoRA r=' + str(settings.lora_r) if settings.lora else 'full'}, "
        f"epochs {settings.epochs}, lr {settings.learning_rate} {settings.lr_scheduler}, "
        f"warmup {settings.warmup_ratio}, max length {settings.max_length}",
    ]) + "\n"


# -- the trigger ----------------------------------------------------------------------
def server_configured() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def dispatch(deployment: str, flow_fn: Any, settings: FinetuneSettings | EvalSettings,
             use_deployments: bool | None) -> dict[str, Any]:
    """Run a flow on its deployment (then read its summary from the store), or in this
    process. `None` means: the deployment when a server is configured and it exists."""
    if use_deployments is None:
        use_deployments = server_configured()
        required = False
    else:
        required = use_deployments
    if use_deployments:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        try:
            run = run_deployment(deployment, parameters={"settings": settings.model_dump(
                mode="json")}, timeout=None)
        except ObjectNotFound:
            if required:
                raise
            get_run_logger().warning("deployment %s not found: running in-process", deployment)
        else:
            if not run.state or not run.state.is_completed():
                state = run.state.name if run.state else "unknown"
                raise RuntimeError(f"{deployment} flow run {run.name} ended {state}")
            kind = deployment.split("/")[0]
            return ArtifactStore(settings.store).read_json(
                f"{kind}/requests/{settings.request_key()}.json")
    return flow_fn(settings=settings)


def run_training_and_eval(dataset_uri: str, settings: Any = None,
                          finetune: FinetuneSettings | dict | None = None,
                          evaluate: EvalSettings | dict | None = None,
                          use_deployments: bool | None = None) -> dict[str, Any]:
    """The pipeline's last steps: fine-tune on `dataset_uri`, then evaluate the result.

    `settings` is the pipeline's Settings (or None): its `store`, `run_finetune` and
    `run_evaluate` apply, and its optional `finetune` / `evaluation` mappings override
    the recipe. `finetune` / `evaluate` arguments override both. Without fine-tuning,
    evaluation needs an explicit `model` (e.g. for baseline numbers)."""
    ft = _finetune_settings(dataset_uri, settings, finetune)
    ev_over = _overrides(settings, "evaluation", evaluate)
    out: dict[str, Any] = {"dataset_uri": dataset_uri}
    if getattr(settings, "run_finetune", True):
        out["finetune"] = dispatch(FINETUNE_DEPLOYMENT, finetune_flow, ft, use_deployments)
        ev_over.setdefault("model", out["finetune"]["model_uri"])
    if getattr(settings, "run_evaluate", True):
        if "model" not in ev_over:
            raise ValueError("evaluation without fine-tuning needs evaluation.model")
        ev = EvalSettings.model_validate({"store": ft.store, **ev_over})
        out["evaluate"] = dispatch(EVALUATE_DEPLOYMENT, evaluate_flow, ev, use_deployments)
    return out


def _overrides(settings: Any, attr: str, explicit: Any) -> dict[str, Any]:
    merged: dict[str, Any] = dict(getattr(settings, attr, None) or {})
    if explicit is not None:
        merged.update(explicit.model_dump(exclude_unset=True) if hasattr(explicit, "model_dump")
                      else explicit)
    return merged


def _finetune_settings(dataset_uri: str, settings: Any, explicit: Any) -> FinetuneSettings:
    data = {"store": getattr(settings, "store", "file://./artifacts"),
            **_overrides(settings, "finetune", explicit), "dataset_uri": dataset_uri}
    return FinetuneSettings.model_validate(data)
