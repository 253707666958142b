"""`personamath finetune` and `personamath evaluate`: the train/eval commands.

`train_app` is a typer app with both commands; `register(app)` mounts them on the main
`personamath` app. Importing this module imports neither torch nor Prefect: the flows
(and with them the train extra) load only when a command runs.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from personamath.train.settings import EvalSettings, FinetuneSettings

train_app = typer.Typer(help="Fine-tune and evaluate models on PersonaMathQA.",
                        no_args_is_help=True)


def _emit(result: dict[str, Any]) -> None:
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "metrics"}, indent=1))


def _run(flow_name: str, settings: Any, prefect: bool) -> dict[str, Any]:
    """Through the Prefect flow (visible in the UI), or straight through the library."""
    if flow_name == "finetune":
        if prefect:
            from flows.finetune import finetune_flow

            return finetune_flow(settings=settings)
        from personamath.train.finetune import run_finetune

        return run_finetune(settings).to_dict()
    if prefect:
        from flows.evaluate import evaluate_flow

        return evaluate_flow(settings=settings)
    from personamath.train.evaluate import run_evaluation

    return run_evaluation(settings).to_dict()


@train_app.command("finetune")
def finetune_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset file/folder/URI (problem, "
                                "response)."),
    model: str = typer.Option("Qwen/Qwen2.5-7B", "--model", help="Base model: HF dir, hub id, "
                              ".gguf, store URI or 'smollm2'."),
    store: str = typer.Option("file://./artifacts", "--store", "--output",
                              help="Store for checkpoints and the final model."),
    max_steps: int | None = typer.Option(None, "--max-steps"),
    epochs: float = typer.Option(3.0, "--epochs"),
    lr: float = typer.Option(2e-5, "--lr"),
    batch_size: int = typer.Option(4, "--batch-size", help="Per device."),
    grad_accum: int = typer.Option(16, "--grad-accum"),
    max_length: int = typer.Option(4096, "--max-length"),
    limit: int | None = typer.Option(None, "--limit", help="First N rows only."),
    lora: bool = typer.Option(False, "--lora/--full"),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16"),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing"),
    accelerate_config: str | None = typer.Option(None, "--accelerate-config",
                                                 help="deepspeed_zero3, fsdp, or a path."),
    num_processes: int = typer.Option(1, "--num-processes"),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow."),
) -> None:
    """Fine-tune a model on a dataset (paper defaults; resumes a crashed run)."""
    settings = FinetuneSettings(
        dataset_uri=dataset, base_model=model, store=store, max_steps=max_steps, epochs=epochs,
        learning_rate=lr, per_device_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        max_length=max_length, limit=limit, lora=lora, bf16=bf16,
        gradient_checkpointing=gradient_checkpointing, accelerate_config=accelerate_config,
        num_processes=num_processes)
    _emit(_run("finetune", settings, prefect))


@train_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Option(..., "--model", help="HF dir, hub id, .gguf, store URI, 'smollm2'."),
    benchmark: list[str] = typer.Option(["gsm8k", "math500"], "--benchmark",
                                        help="gsm8k, math or math500 (repeatable)."),
    backend: str = typer.Option("transformers", "--backend",
                                help="transformers, llamacpp or vllm."),
    limit: int | None = typer.Option(None, "--limit", help="First N questions per benchmark."),
    store: str = typer.Option("file://./artifacts", "--store", "--output"),
    max_new_tokens: int = typer.Option(2048, "--max-new-tokens"),
    batch_size: int = typer.Option(8, "--batch-size"),
    shard_size: int = typer.Option(50, "--shard-size", help="Generations committed together."),
    n_threads: int | None = typer.Option(None, "--threads"),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow."),
) -> None:
    """Evaluate a model (greedy, graded); stored generations are never regenerated."""
    settings = EvalSettings(model=model, benchmarks=benchmark, backend=backend, limit=limit,
                            store=store, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            shard_size=shard_size, n_threads=n_threads)
    result = _run("evaluate", settings, prefect)
    _emit(result)


def register(app: typer.Typer) -> None:
    """Mount `finetune` and `evaluate` as top-level commands of the main app."""
    app.command("finetune")(finetune_cmd)
    app.command("evaluate")(evaluate_cmd)
