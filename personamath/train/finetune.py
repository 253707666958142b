"""Supervised fine-tuning with TRL, checkpointed to the store so a retry resumes.

Layout in the store, under `finetune/{fingerprint}/`:
  checkpoints/checkpoint-N/...   copied after every save; `checkpoints/latest.json`
                                 names the newest and is written after its files
  model/...                      the final model + tokenizer; `personamath_model.json`
                                 is written last and marks it complete
  summary.json                   the run's numbers
A run whose model is complete returns its summary without training; a run that finds
a checkpoint (from a crashed or retried attempt, on any machine) resumes from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personamath.train.data import SftRows, load_sft_rows
from personamath.train.modelio import (
    MODEL_CARD,
    download_dir,
    load_causal_lm,
    load_tokenizer,
    model_id,
    resolve_model,
    upload_dir,
    write_model_card,
)
from personamath.train.settings import FinetuneSettings
from personamath.train.template import TEMPLATE_VERSION, build_example
from storage.store import ArtifactStore

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "deployments" / "accelerate"


@dataclass
class FinetuneResult:
    """Small and JSON-able: what a Prefect task returns and the CLI prints."""

    fingerprint: str
    model_uri: str
    rows: int
    examples: int = 0
    truncated: int = 0
    dropped: int = 0
    steps: int = 0
    steps_this_run: int = 0
    losses: list[float] = field(default_factory=list)
    resumed_from: str | None = None
    already_done: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_finetune(settings: FinetuneSettings, callbacks: list[Any] | None = None,
                 launch: bool = True) -> FinetuneResult:
    """Fine-tune once per fingerprint: skip when done, resume when a checkpoint
    exists, else train from the base model. With an accelerate config (and `launch`),
    training runs in `accelerate launch` child processes instead of this one."""
    store = ArtifactStore(settings.store)
    rows = load_sft_rows(settings.dataset_uri, settings.limit)
    if not len(rows):
        raise ValueError(f"{settings.dataset_uri}: the dataset has no rows")
    fp = settings.fingerprint(rows.digest, model_id(settings.base_model))
    key = f"finetune/{fp}"
    if store.exists(f"{key}/model/{MODEL_CARD}") and store.exists(f"{key}/summary.json"):
        result = FinetuneResult(**store.read_json(f"{key}/summary.json"))
        result.already_done, result.steps_this_run = True, 0
    elif launch and (settings.accelerate_config or settings.num_processes > 1):
        result = launch_accelerate(settings, store, key)
    else:
        result = _train(settings, store, key, fp, rows, callbacks or [])
    if int(os.environ.get("RANK", "0")) == 0:
        store.write_json(f"finetune/requests/{settings.request_key()}.json", result.to_dict())
    return result


# -- resuming -------------------------------------------------------------------------
def restore_checkpoint(store: ArtifactStore, key: str, work_dir: str,
                       wait_s: float = 1800) -> str | None:
    """The newest checkpoint in the store, copied into `work_dir`; None when there is
    none. Under `accelerate launch` only local rank 0 copies; the other ranks of the
    node wait for its `.restored` marker instead of racing on the same files."""
    latest = f"{key}/checkpoints/latest.json"
    if not store.exists(latest):
        return None
    name = store.read_json(latest)["checkpoint"]
    local = os.path.join(work_dir, name)
    marker = Path(local, ".restored")
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        download_dir(store, f"{key}/checkpoints/{name}", local)
        marker.touch()
        return local
    deadline = time.monotonic() + wait_s
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"local rank 0 did not restore {name} within {wait_s:.0f} s")
        time.sleep(2)
    return local


def prune_checkpoints(store: ArtifactStore, key: str, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints in the store (the trainer's
    save_total_limit only prunes its local folder)."""
    names = {k.split("/")[0] for k in (p[len(f"{key}/checkpoints/"):]
                                        for p in store.list(f"{key}/checkpoints"))
             if k.startswith("checkpoint-")}
    for name in sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))[:-keep]:
        for file_key in store.list(f"{key}/checkpoints/{name}"):
            store.delete(file_key)


def _checkpoint_uploader(store: ArtifactStore, key: str, keep: int) -> Any:
    """A TrainerCallback that copies each saved checkpoint to the store, then moves
    the `latest.json` pointer to it (pointer last: a crash mid-copy keeps the old one),
    then prunes the oldest."""
    from transformers import TrainerCallback

    class UploadCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            name = f"checkpoint-{state.global_step}"
            upload_dir(os.path.join(args.output_dir, name), store, f"{key}/checkpoints/{name}")
            store.write_json(f"{key}/checkpoints/latest.json",
                             {"checkpoint": name, "step": state.global_step})
            prune_checkpoints(store, key, keep)

    return UploadCheckpoints()


# -- training -------------------------------------------------------------------------
def tokenise(rows: SftRows, tokenizer: Any, max_length: int) -> tuple[Any, int, int]:
    """A `datasets.Dataset` of input_ids/labels (prompt masked), with counts of
    truncated and dropped examples (never silently)."""
    from datasets import Dataset

    examples, truncated, dropped = [], 0, 0
    for problem, response in zip(rows.problems, rows.responses, strict=True):
        ex = build_example(tokenizer, problem, response, max_length)
        if ex is None:
            dropped += 1
            continue
        truncated += ex.truncated
        examples.append(ex.to_dict())
    return Dataset.from_list(examples), truncated, dropped


def _use_bf16(setting: bool | None) -> bool:
    import torch

    if setting is not None:
        return setting
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def sft_config(settings: FinetuneSettings, output_dir: str) -> Any:
    """TRL's SFTConfig with the paper's recipe; batching and precision from settings."""
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in names
                     else "gradient_checkpointing")  # renamed in transformers 5
    return SFTConfig(
        **{checkpointing: settings.gradient_checkpointing},
        output_dir=output_dir,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        weight_decay=settings.weight_decay,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        bf16=_use_bf16(settings.bf16),
        max_length=settings.max_length,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        seed=settings.seed,
        report_to=[],
        dataset_num_proc=None,
    )


def lora_config(settings: FinetuneSettings) -> Any:
    if not settings.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                      lora_dropout=settings.lora_dropout,
                      target_modules=settings.lora_target_modules, task_type="CAUSAL_LM")


def _train(settings: FinetuneSettings, store: ArtifactStore, key: str, fp: str,
           rows: SftRows, callbacks: list[Any]) -> FinetuneResult:
    from trl import SFTTrainer

    start = time.monotonic()
    work = settings.work_dir or os.path.join(tempfile.gettempdir(), "personamath-finetune", fp)
    ckpt_dir = os.path.join(work, "checkpoints")
    resume = restore_checkpoint(store, key, ckpt_dir)
    local = resolve_model(settings.base_model)
    tokenizer = load_tokenizer(local)
    model = load_causal_lm(local, "bfloat16" if _use_bf16(settings.bf16) else "auto")
    dataset, truncated, dropped = tokenise(rows, tokenizer, settings.max_length)
    if len(dataset) == 0:
        raise ValueError(f"all {dropped} rows were dropped: every prompt alone is longer "
                         f"than max_length={settings.max_length}")
    trainer = SFTTrainer(
        model=model, args=sft_config(settings, ckpt_dir), train_dataset=dataset,
        processing_class=tokenizer, peft_config=lora_config(settings),
        callbacks=[_checkpoint_uploader(store, key, settings.save_total_limit), *callbacks],
    )
    trainer.train(resume_from_checkpoint=resume)
    first_step = int(resume.rsplit("-", 1)[1]) if resume else 0
    result = FinetuneResult(
        fingerprint=fp, model_uri=store.uri_for(f"{key}/model"), rows=len(rows),
        examples=len(dataset), truncated=truncated, dropped=dropped,
        steps=trainer.state.global_step, steps_this_run=trainer.state.global_step - first_step,
        losses=[round(float(e["loss"]), 5) for e in trainer.state.log_history if "loss" in e],
        resumed_from=os.path.basename(resume) if resume else None,
    )
    _save_final(trainer, tokenizer, settings, result, store, key, work)
    result.seconds = round(time.monotonic() - start, 2)
    if trainer.is_world_process_zero():
        store.write_json(f"{key}/summary.json", result.to_dict())
    return result


def _save_final(trainer: Any, tokenizer: Any, settings: FinetuneSettings,
                result: FinetuneResult, store: ArtifactStore, key: str, work: str) -> None:
    """Save a plain HF model (LoRA merged into the base, so every eval backend loads
    it the same way), the tokenizer, and the model card last; upload to the store.
    Every rank calls this: `trainer.save_model` gathers ZeRO-3/FSDP shards collectively
    and writes on the main process only; the rest is rank 0's."""
    out = os.path.join(work, "final")
    if settings.lora:
        if trainer.is_world_process_zero():
            trainer.model.merge_and_unload().save_pretrained(out, safe_serialization=True)
    else:
        trainer.save_model(out)
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(out)
    write_model_card(out, {
        "fingerprint": result.fingerprint, "base_model": settings.base_model,
        "dataset_uri": settings.dataset_uri, "template": TEMPLATE_VERSION,
        "steps": result.steps, "settings": settings.model_dump(),
    })
    upload_dir(out, store, f"{key}/model")


# -- multi-GPU ------------------------------------------------------------------------
def accelerate_config_path(name: str) -> str:
    """A config path as given, or one of the repo's named configs (deployments/accelerate)."""
    if os.path.exists(name):
        return name
    named = ACCELERATE_DIR / f"{name}.yaml"
    if named.exists():
        return str(named)
    raise FileNotFoundError(f"accelerate config {name!r} not found (a path, or one of "
                            f"{sorted(p.stem for p in ACCELERATE_DIR.glob('*.yaml'))})")


def accelerate_command(settings: FinetuneSettings, settings_file: str) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--num_processes", str(settings.num_processes)]
    if settings.accelerate_config:
        cmd += ["--config_file", accelerate_config_path(settings.accelerate_config)]
    return [*cmd, "-m", "personamath.train.finetune", settings_file]


def launch_accelerate(settings: FinetuneSettings, store: ArtifactStore,
                      key: str) -> FinetuneResult:
    """Run training under `accelerate launch` (DeepSpeed/FSDP, several GPUs) and read
    the summary that rank 0 writes to the store."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(settings.model_dump_json())
    subprocess.run(accelerate_command(settings, f.name), check=True)
    os.unlink(f.name)
    return FinetuneResult(**store.read_json(f"{key}/summary.json"))


def main(argv: list[str]) -> None:
    """Entry point of each `accelerate launch` process: train in this process."""
    settings = FinetuneSettings.model_validate(json.loads(Path(argv[0]).read_text()))
    print(json.dumps(run_finetune(settings, launch=False).to_dict()))


if __name__ == "__main__":
    main(sys.argv[1:])
