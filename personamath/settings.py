"""One settings model for the CLI, the flow parameters and YAML config files.

Validation happens here, before any request is sent: an invalid value fails with a
message naming the setting. Secrets are never settings: only the *name* of the
environment variable holding an API key is, so keys cannot leak into Prefect
parameters, artifacts or Parquet files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ProviderName = Literal["local", "openai", "anthropic"]
DatasetName = Literal["gsm8k", "math"]

DEFAULT_MODELS: dict[str, str] = {
    "local": "SmolLM2-135M-Instruct",
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
}
DEFAULT_KEY_ENV: dict[str, str | None] = {
    "local": None,
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}


def normalise_store(v: str) -> str:
    """A store URI: a bare path becomes file://; anything but file:// or s3:// fails."""
    if "://" not in v:
        v = "file://" + v
    if not (v.startswith("file://") or v.startswith("s3://")):
        raise ValueError("store must be a file:// path or an s3://bucket/prefix URI")
    return v


class SettingsError(ValueError):
    """A setting is invalid; the message names it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TeacherSettings(_Strict):
    """Which LLM writes the solutions and rewrites, and how it is called."""

    provider: ProviderName = "local"
    model: str | None = Field(None, description="Model name; provider default when empty.")
    base_url: str | None = Field(None, description="OpenAI/Anthropic-compatible server URL.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key."
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=16, le=32768)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    concurrency: int = Field(8, ge=1, le=1024)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    model_path: str | None = Field(None, description="GGUF file for the local provider.")
    n_threads: int | None = Field(None, ge=1)

    @property
    def resolved_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider]

    @property
    def resolved_key_env(self) -> str | None:
        if self.api_key_env:
            return self.api_key_env
        if self.provider == "openai" and self.base_url:
            return None  # a local OpenAI-compatible server usually needs no key
        return DEFAULT_KEY_ENV[self.provider]

    def api_key(self) -> str | None:
        env = self.resolved_key_env
        return os.environ.get(env) if env else None

    def check_key(self) -> None:
        """Fail before any work when the provider needs a key that is not set."""
        env = self.resolved_key_env
        if env and not os.environ.get(env):
            raise SettingsError(
                f"teacher.provider={self.provider!r} needs an API key: set the environment "
                f"variable {env} (or point teacher.api_key_env at the variable that holds it)."
            )

    def fingerprint_fields(self) -> dict[str, Any]:
        """Fields that change outputs (not concurrency, timeouts, keys or rate limits)."""
        return {
            "provider": self.provider,
            "model": self.resolved_model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }


class SourceSettings(_Strict):
    """One input: a dataset, where its rows are, which split, how many to take."""

    dataset: DatasetName
    uri: str = Field(..., description="Local path, s3:// URI, or hf://<repo>[:<config>].")
    split: Literal["train", "test"] = "train"
    limit: int | None = Field(None, ge=1)


class Settings(_Strict):
    """Everything a pipeline run needs. Defaults follow DESIGN.md §1."""

    sources: list[SourceSettings] = Field(default_factory=list)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    k1: int = Field(3, ge=0, le=50, description="Persona rewrites per question solved in Stage 1.")
    k2: int = Field(5, ge=0, le=50, description="Persona rewrites per question fixed in Stage 2.")
    reflection_attempts: int = Field(
        1, ge=0, le=10, description="R: reflection tries per wrong answer."
    )
    reveal_gold: bool = Field(False, description="Show the gold answer in the reflection prompt.")
    shard_size: int = Field(200, ge=1, le=100_000)
    seed: int = 0
    store: str = Field("file://./artifacts", description="file:// path or s3://bucket/prefix.")
    dataset_name: str = Field("personamathqa", pattern=r"^[A-Za-z0-9_.-]+$")
    decontaminate: bool = True
    on_teacher_error: Literal["fail", "reject"] = Field(
        "fail",
        description="When a request still fails after retries: fail the shard (retry later "
        "without paying twice) or reject the question with reason teacher_error.",
    )
    run_finetune: bool = Field(False, description="After the build, fine-tune on the dataset.")
    run_evaluate: bool = Field(False, description="Then evaluate (needs evaluation.model "
                               "when run_finetune is off).")
    finetune: dict[str, Any] = Field(
        default_factory=dict, description="FinetuneSettings overrides (personamath.train).")
    evaluation: dict[str, Any] = Field(
        default_factory=dict, description="EvalSettings overrides (personamath.train).")

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, v: str) -> str:
        return normalise_store(v)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.sources:
            raise ValueError("sources: at least one source is required")
        if self.run_finetune or self.finetune:
            _check_train("finetune", self.finetune, {"dataset_uri": "placeholder"})
        if self.run_evaluate or self.evaluation:
            _check_train("evaluation", self.evaluation, {"model": "placeholder"})
        return self

    def fingerprint(self, versions: dict[str, str]) -> str:
        """Hash of everything that changes outputs, plus code versions (prompts, personas,
        grader). Same config -> same place in the store; change the teacher -> new place."""
        payload = {
            "sources": [s.model_dump() for s in self.sources],
            "teacher": self.teacher.fingerprint_fields(),
            "k1": self.k1,
            "k2": self.k2,
            "reflection_attempts": self.reflection_attempts,
            "reveal_gold": self.reveal_gold,
            "shard_size": self.shard_size,
            "seed": self.seed,
            "decontaminate": self.decontaminate,
            "on_teacher_error": self.on_teacher_error,
            "versions": versions,
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _check_train(name: str, overrides: dict[str, Any], required: dict[str, Any]) -> None:
    """Validate training/evaluation overrides up front, so a typo fails before hours of
    generation rather than after."""
    from personamath.train.settings import EvalSettings, FinetuneSettings

    model = FinetuneSettings if name == "finetune" else EvalSettings
    try:
        model.model_validate({**required, **overrides})
    except ValidationError as err:
        bad = "; ".join(f"{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in err.errors())
        raise ValueError(bad) from None


def format_validation_error(err: ValidationError) -> str:
    """Turn pydantic's error into one line per bad setting, each naming it."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        if not loc or isinstance(got, dict | list):
            lines.append(f"invalid setting {loc or '(settings)'}: {msg}")
        else:
            lines.append(f"invalid setting {loc}: {msg} (got {got!r})")
    return "\n".join(lines)


def build_settings(data: dict[str, Any]) -> Settings:
    """Validate a settings dict, raising SettingsError with every bad setting named."""
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise SettingsError(format_validation_error(err)) from None


def load_settings(path: str | Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Read a YAML config file and apply dotted-key overrides ("teacher.model": ...)."""
    p = Path(path)
    if not p.exists():
        raise SettingsError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {p} must hold a mapping of settings")
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return build_settings(data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def demo_settings(**overrides: Any) -> Settings:
    """The keyless demo: the bundled 12 GSM8K + 12 MATH training questions on the
    embedded SmolLM2-135M teacher, small K1/K2 and short replies to fit a laptop."""
    data: dict[str, Any] = {
        "sources": [
            {"dataset": "gsm8k", "uri": "builtin:demo/gsm8k"},
            {"dataset": "math", "uri": "builtin:demo/math"},
        ],
        "teacher": {"provider": "local", "max_tokens": 320, "temperature": 0.7,
                    "concurrency": 1},
        "k1": 2,
        "k2": 2,
        "shard_size": 12,
        "dataset_name": "personamathqa-demo",
    }
    for key, value in overrides.items():
        set_dotted(data, key, value)
    return build_settings(data)
