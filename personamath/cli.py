"""`personamath`: run the pipeline or one step, grade answers, train and evaluate.

Settings come from a YAML file (`--config`), the bundled demo (`--demo`), flags for
the common settings, and `--set key=value` for any other (dotted keys). Invalid
settings and missing API keys fail before any work starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from personamath.settings import (
    Settings,
    SettingsError,
    build_settings,
    demo_settings,
    load_settings,
)

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A loaded laptop can take longer than the default 20 s to start the ephemeral API.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="PersonaMath: persona-diversified, verified CoT data for math.")
console = Console(stderr=True)

_FLAG_KEYS = {
    "provider": "teacher.provider", "model": "teacher.model", "base_url": "teacher.base_url",
    "concurrency": "teacher.concurrency", "max_tokens": "teacher.max_tokens",
    "temperature": "teacher.temperature", "store": "store", "k1": "k1", "k2": "k2",
    "reflection_attempts": "reflection_attempts", "shard_size": "shard_size", "seed": "seed",
}


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SettingsError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _settings(config: Path | None, demo: bool, limit: int | None, flags: dict[str, Any],
              sets: list[str]) -> Settings:
    overrides = {_FLAG_KEYS[k]: v for k, v in flags.items() if v is not None}
    overrides.update(_parse_set(sets))
    if config and demo:
        raise SettingsError("use either --config or --demo, not both")
    if config:
        s = load_settings(config, overrides)
    elif demo:
        s = demo_settings(**overrides)
    else:
        raise SettingsError("give a config file (--config FILE.yaml) or --demo")
    if limit is not None:
        data = s.model_dump()
        for src in data["sources"]:
            src["limit"] = limit
        s = build_settings(data)
    s.teacher.check_key()
    return s


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(2)


ConfigOpt = typer.Option(None, "--config", "-c", help="YAML settings file.", exists=False)
DemoOpt = typer.Option(False, "--demo", help="Bundled sample on the embedded teacher.")
LimitOpt = typer.Option(None, "--limit", help="Take the first N questions of each source.")
SetOpt = typer.Option([], "--set", help="Any setting as dotted key=value (repeatable).")


def _common(config: Path | None, demo: bool, limit: int | None, sets: list[str],
            **flags: Any) -> Settings:
    try:
        return _settings(config, demo, limit, flags, sets)
    except SettingsError as err:
        _fail(str(err))
        raise  # unreachable


@app.command()
def run(
    config: Path = ConfigOpt, demo: bool = DemoOpt, limit: int = LimitOpt,
    provider: str = typer.Option(None, help="Teacher: local | openai | anthropic."),
    model: str = typer.Option(None, help="Teacher model name."),
    base_url: str = typer.Option(None, help="OpenAI/Anthropic-compatible server URL."),
    store: str = typer.Option(None, help="file:// path or s3://bucket/prefix."),
    k1: int = typer.Option(None, help="Persona rewrites per question solved in Stage 1."),
    k2: int = typer.Option(None, help="Persona rewrites per question fixed in Stage 2."),
    concurrency: int = typer.Option(None, help="Requests in flight per shard."),
    shard_size: int = typer.Option(None, help="Questions per shard."),
    sets: list[str] = SetOpt,
) -> None:
    """Run the whole pipeline: Stage 1, Stage 2, build."""
    s = _common(config, demo, limit, sets, provider=provider, model=model, base_url=base_url,
                store=store, k1=k1, k2=k2, concurrency=concurrency, shard_size=shard_size)
    from flows.pipeline import pipeline_flow

    summary = _with_progress(lambda: pipeline_flow(settings=s))
    _print_summary(summary)


@app.command()
def stage1(config: Path = ConfigOpt, demo: bool = DemoOpt, limit: int = LimitOpt,
           sets: list[str] = SetOpt) -> None:
    """Stage 1 only: solve, verify, persona rewrites."""
    s = _common(config, demo, limit, sets)
    from flows.stage1 import stage1_flow

    console.print_json(json.dumps(_with_progress(lambda: stage1_flow(settings=s))))


@app.command()
def stage2(config: Path = ConfigOpt, demo: bool = DemoOpt, limit: int = LimitOpt,
           sets: list[str] = SetOpt) -> None:
    """Stage 2 only: reflection on Stage 1's wrong answers (Stage 1 must be done)."""
    s = _common(config, demo, limit, sets)
    from flows.stage2 import stage2_flow

    console.print_json(json.dumps(_with_progress(lambda: stage2_flow(settings=s))))


@app.command()
def build(config: Path = ConfigOpt, demo: bool = DemoOpt, limit: int = LimitOpt,
          sets: list[str] = SetOpt) -> None:
    """Build only: merge, deduplicate, decontaminate, export, summarise."""
    s = _common(config, demo, limit, sets)
    from flows.build import build_flow

    _print_summary(_with_progress(lambda: build_flow(settings=s)))


@app.command("config")
def show_config(config: Path = ConfigOpt, demo: bool = DemoOpt, sets: list[str] = SetOpt) -> None:
    """Print the resolved settings as YAML (a starting point for your own file)."""
    try:
        overrides = _parse_set(sets)
        s = load_settings(config, overrides) if config else demo_settings(**overrides)
    except SettingsError as err:
        _fail(str(err))
        return
    typer.echo(yaml.safe_dump(s.model_dump(), sort_keys=False))


@app.command()
def grade(cases: Path = typer.Option(..., "--cases", help="JSONL of {pred, gold, dataset?}."),
          workers: int = typer.Option(1, "--workers", min=1, help="Parallel processes.")) -> None:
    """Grade predictions against gold answers; one JSON verdict per line on stdout."""
    from personamath.grading.batch import grade_cases_cli

    raise typer.Exit(grade_cases_cli(cases, workers))


def _with_progress(fn: Any) -> Any:
    """Show a live bar per step while the flow runs in this process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from personamath import progress as hooks

    bars: dict[str, Any] = {}
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False, disable=not console.is_terminal) as prog:

        def on(step: str, done: int, total: int) -> None:
            key = step
            if key not in bars:
                bars[key] = prog.add_task(f"{step} questions", total=0)
            prog.update(bars[key], completed=done, total=max(total, done))

        hooks.add_reporter(on)
        try:
            return fn()
        except Exception as err:  # noqa: BLE001
            prog.stop()
            _fail(str(err))
        finally:
            hooks.remove_reporter(on)


def _print_summary(summary: dict[str, Any]) -> None:
    from personamath.report import summary_markdown

    console.rule("summary")
    typer.echo(summary_markdown(summary))
    typer.echo(f"dataset: {summary['dataset_uri']}")


def _mount(module: str) -> None:
    """Commands defined next to their code: `finetune`/`evaluate` (personamath.train.cli)
    and `deploy` (flows.deploy). Each module exposes `register(app)`."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    mod.register(app)


for _module in ("personamath.train.cli", "flows.deploy"):
    _mount(_module)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
