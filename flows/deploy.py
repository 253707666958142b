"""`personamath deploy`: create the work pools and register every deployment.

Why a command and not only `prefect deploy --all`: the deployments need the `cpu` and
`gpu` work pools to exist, a result-storage block that every worker can read (retries
across processes find finished shards Cached only through a *saved* block, DESIGN.md
§8), and a few deploy-time values (store URI, where workers find the code). This does
those steps in order, idempotently, and then runs the stock
`prefect deploy --all --prefect-file deployments/prefect.yaml` from the repository
root, so the YAML stays the one source of truth and plain `prefect deploy` still works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = REPO_ROOT / "deployments" / "prefect.yaml"
POOLS: dict[str, str] = {
    "cpu": "personamath generation: pipeline, stage1, stage2, build",
    "gpu": "personamath fine-tuning and evaluation (workers on GPU machines)",
}
RESULTS_BLOCK = "personamath-results"
RESULTS_BLOCK_SLUG = f"local-file-system/{RESULTS_BLOCK}"
DEFAULT_STORE = "file://./artifacts"
DEFAULT_NEWEST_MODEL = "Qwen/Qwen2.5-7B"


class DeployError(RuntimeError):
    """Deployment cannot proceed; the message says what to fix."""


# -- server ---------------------------------------------------------------------------
def require_server() -> str:
    """The configured API URL, checked to answer; deployments need a real server."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise DeployError(
            "no Prefect server configured: set PREFECT_API_URL (for example "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` after "
            "`docker compose up -d` or `prefect server start`)")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        err = client.api_healthcheck()
    if err is not None:
        raise DeployError(f"Prefect server at {url} does not answer: {err}")
    return str(url)


# -- work pools -----------------------------------------------------------------------
def base_job_template(pool_type: str, image: str | None, gpu: bool) -> dict[str, Any]:
    """The worker type's default template; for docker, our image and (gpu) all GPUs."""
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    template = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type(pool_type))
    if not template:
        raise DeployError(f"no base job template for work pool type {pool_type!r} "
                          f"(for docker: pip install prefect-docker)")
    props = template.get("variables", {}).get("properties", {})
    if image and "image" in props:
        props["image"]["default"] = image
    if gpu and "container_create_kwargs" in props:
        props["container_create_kwargs"]["default"] = {"device_requests": [
            {"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}
    return template


def ensure_pools(pool_type: str, images: dict[str, str | None]) -> list[str]:
    """Create the `cpu` and `gpu` pools when missing; an existing pool is left as is
    (its type and template may have been tuned in the UI)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    done = []
    with get_client(sync_client=True) as client:
        for name, description in POOLS.items():
            try:
                pool = client.read_work_pool(name)
            except ObjectNotFound:
                template = base_job_template(pool_type, images.get(name), gpu=name == "gpu")
                client.create_work_pool(WorkPoolCreate(
                    name=name, type=pool_type, description=description,
                    base_job_template=template))
                done.append(f"work pool {name!r}: created (type {pool_type})")
            else:
                done.append(f"work pool {name!r}: exists (type {pool.type})")
    return done


# -- result storage -------------------------------------------------------------------
def ensure_result_storage(path: str) -> str:
    """Save (or update) the LocalFileSystem block every worker uses for task results.
    Workers must see `path` (a shared volume) and run with
    PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK set to the returned slug."""
    from prefect.filesystems import LocalFileSystem

    LocalFileSystem(basepath=path).save(RESULTS_BLOCK, overwrite=True)
    return RESULTS_BLOCK_SLUG


# -- deployments ----------------------------------------------------------------------
def git_pull_steps(url: str, branch: str) -> list[dict[str, Any]]:
    """Pull steps that clone `url` at `branch` on the worker before each run."""
    return [{"prefect.deployments.steps.git_clone": {
        "id": "clone", "repository": url, "branch": branch}}]


def flow_of(entrypoint: str) -> str:
    """`flows/pipeline.py:pipeline_flow` -> `pipeline` (the flow names follow the
    functions; `prefect deploy --name` itself matches the function name, not the flow's)."""
    return entrypoint.rsplit(":", 1)[-1].removesuffix("_flow")


def prefect_file(git_url: str | None, git_branch: str, names: list[str], workdir: Path) -> Path:
    """A copy of deployments/prefect.yaml with only the deployments named
    `flow/deployment` in `names` (all when empty), and git-clone pull steps when
    `git_url` is given."""
    data = yaml.safe_load(PREFECT_FILE.read_text())
    data.pop("definitions", None)  # anchors are already expanded by the loader
    deps = data.get("deployments", [])
    if names:
        deps = [d for d in deps if f"{flow_of(d['entrypoint'])}/{d['name']}" in names]
        missing = set(names) - {f"{flow_of(d['entrypoint'])}/{d['name']}" for d in deps}
        if missing:
            raise DeployError(f"no such deployment in {PREFECT_FILE}: {sorted(missing)}")
    if git_url:
        data["pull"] = git_pull_steps(git_url, git_branch)
        for dep in deps:
            dep.pop("pull", None)
    data["deployments"] = deps
    out = workdir / "prefect.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def deploy_env(store: str, code_dir: str | None, newest_model: str) -> dict[str, str]:
    """Values for the `{{ $VAR }}` placeholders in prefect.yaml, filled at deploy time.
    PERSONAMATH_CODE_DIR is set only when asked: left out, the placeholder stays in the
    pull step and each worker fills it from its own environment."""
    env = dict(os.environ)
    env["PERSONAMATH_STORE"] = store
    env["PERSONAMATH_NEWEST_MODEL"] = newest_model
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if code_dir:
        env["PERSONAMATH_CODE_DIR"] = str(Path(code_dir).resolve())
    return env


def run_prefect_deploy(path: Path, env: dict[str, str]) -> None:
    """`prefect deploy --all` from the repository root (entrypoints are relative to it)."""
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
           "--prefect-file", str(path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise DeployError(f"prefect deploy failed (exit {proc.returncode}):\n"
                          f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def registered(names: list[str]) -> list[str]:
    """`flow/deployment` names the server now holds for the flows in prefect.yaml."""
    from prefect.client.orchestration import get_client

    data = yaml.safe_load(PREFECT_FILE.read_text())
    wanted = {d["entrypoint"].rsplit(":", 1)[0] for d in data["deployments"]}
    with get_client(sync_client=True) as client:
        deps = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
    out = sorted(f"{flows.get(d.flow_id, '?')}/{d.name} -> pool {d.work_pool_name}"
                 for d in deps if d.entrypoint and d.entrypoint.rsplit(":", 1)[0] in wanted)
    return [o for o in out if not names or o.split(" ", 1)[0] in names]


def deploy(pool_type: str = "process", image: str | None = None, gpu_image: str | None = None,
           store: str = DEFAULT_STORE, code_dir: str | None = None, git_url: str | None = None,
           git_branch: str = "main", results_path: str | None = None,
           newest_model: str = DEFAULT_NEWEST_MODEL, names: list[str] | None = None
           ) -> list[str]:
    """Everything `personamath deploy` does; returns one line per action."""
    lines = [f"server: {require_server()}"]
    lines += ensure_pools(pool_type, {"cpu": image, "gpu": gpu_image or image})
    if results_path:
        slug = ensure_result_storage(results_path)
        lines.append(f"result storage: block {slug} at {results_path} (workers need "
                     f"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK={slug})")
    env = deploy_env(store, code_dir, newest_model)
    with tempfile.TemporaryDirectory(prefix="personamath-deploy-") as tmp:
        path = prefect_file(git_url, git_branch, names or [], Path(tmp))
        run_prefect_deploy(path, env)
    code = (f"git {git_url}@{git_branch}" if git_url else
            f"directory {env.get('PERSONAMATH_CODE_DIR') or '$PERSONAMATH_CODE_DIR on the worker'}")
    lines.append(f"code: {code}; store: {store}")
    lines += [f"deployment {d}" for d in registered(names or [])]
    return lines


def register(app: typer.Typer) -> None:
    """Add the `deploy` command to the personamath CLI."""

    @app.command("deploy")
    def deploy_cmd(
        pool_type: str = typer.Option("process", "--pool-type",
                                      help="Type for new work pools: process | docker."),
        image: str = typer.Option(None, help="docker pools: image for the cpu pool."),
        gpu_image: str = typer.Option(None, help="docker pools: image for the gpu pool."),
        store: str = typer.Option(os.environ.get("PERSONAMATH_STORE", DEFAULT_STORE),
                                  help="Store URI written into the deployments' parameters."),
        code_dir: str = typer.Option(None, help="Directory workers run the code from "
                                     "(default: $PERSONAMATH_CODE_DIR on each worker)."),
        git_url: str = typer.Option(None, help="Clone this repository on the worker instead."),
        git_branch: str = typer.Option("main", help="Branch for --git-url."),
        results_path: str = typer.Option(None, help="Save a LocalFileSystem result-storage "
                                         f"block '{RESULTS_BLOCK}' at this (shared) path."),
        newest_model: str = typer.Option(
            os.environ.get("PERSONAMATH_NEWEST_MODEL", DEFAULT_NEWEST_MODEL),
            help="Model for the nightly evaluation deployment."),
        name: list[str] = typer.Option([], "--name", help="Only these deployments "
                                       "(flow/deployment; repeatable). Default: all."),
    ) -> None:
        """Create the cpu/gpu work pools and register every deployment in
        deployments/prefect.yaml on the server named by PREFECT_API_URL."""
        try:
            lines = deploy(pool_type, image, gpu_image, store, code_dir, git_url, git_branch,
                           results_path, newest_model, name)
        except DeployError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        for line in lines:
            typer.echo(line)
