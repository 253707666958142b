"""The pipeline run the Prefect way, against a real server (issue 6 acceptance).

`prefect server start` on loopback (SQLite in a temp PREFECT_HOME), `personamath
deploy` (pools, result-storage block, every deployment in deployments/prefect.yaml),
one process worker per pool, and the fake teacher as its own process. Runs start with
`prefect deployment run --watch`, exactly as a user would; what ran is judged by the
fake teacher's request log, not by Prefect's own account of it.

Everything started here is stopped in the fixture's teardown (whole process groups),
and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from flows.deploy import RESULTS_BLOCK_SLUG
from personamath.sources import load_questions
from tests.fakes.fake_teacher import FakeTeacherClient
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(shutil.which("prefect") is None, reason="the prefect CLI is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"
N_QUESTIONS, SHARD_SIZE, K1 = 12, 3, 1
FAILED_SHARD = 1
REQUESTS_PER_QUESTION = 1 + 2 * K1  # solve, K1 rewrites, K1 solves of the rewrites
RUN_TIMEOUT = 150


# -- processes ------------------------------------------------------------------------
@dataclass
class Stack:
    """The running pieces and what the test needs to talk to them."""

    tmp: Path
    env: dict[str, str]
    api: str
    teacher_url: str
    questions: list[dict[str, str]]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def teacher(self) -> FakeTeacherClient:
        return FakeTeacherClient(self.teacher_url)

    def log(self, name: str, tail: int = 4000) -> str:
        p = self.tmp / f"{name}.log"
        return p.read_text(errors="replace")[-tail:] if p.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)}" for n in self.procs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(stack: Stack, name: str, cmd: list[str], cwd: Path,
          extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a process in its own group, output to `<tmp>/<name>.log`."""
    out = (stack.tmp / f"{name}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=cwd, env={**stack.env, **(extra_env or {})},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack.procs[name] = proc
    return proc


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; empty elsewhere). Flow runs started by a
    worker may sit in their own session, out of reach of a group kill."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop(proc: subprocess.Popen) -> None:
    """TERM the process group, KILL it if it lingers, then any descendant left over."""
    below = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_for(what: str, check: Any, timeout: float, stack: Stack, proc: str = "") -> Any:
    """Poll `check()` until it returns a truthy value; fail with logs on timeout or
    when `proc` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc and stack.procs[proc].poll() is not None:
            pytest.fail(f"{proc} exited while waiting for {what}:\n{stack.log(proc)}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{stack.logs()}")


def healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def teacher_url(stack: Stack) -> str | None:
    m = re.search(r"FAKE_TEACHER_URL (\S+)", stack.log("teacher"))
    return m.group(1) if m else None


# -- inputs ---------------------------------------------------------------------------
def make_inputs(tmp: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    """12 GSM8K questions (ids in the pipeline's stable order, so question i is in shard
    i // SHARD_SIZE), all answered right: no Stage 2 work, every request is Stage 1's."""
    qs = sorted(load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl")).questions,
                key=lambda q: q.id)[:N_QUESTIONS]
    src = tmp / "questions.jsonl"
    src.write_text("".join(json.dumps({"id": q.id, "question": q.question,
                                       "answer": f"#### {q.gold}"}) + "\n" for q in qs))
    plan = tmp / "plan.json"
    plan.write_text(MathTeacher([Plan(q.question, q.gold, Behaviour()) for q in qs]).to_json())
    return src, plan, [{"id": q.id, "question": q.question} for q in qs]


def base_env(tmp: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PERSONAMATH_CODE_DIR": str(REPO),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    })
    return env


# -- the stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prefect-server")
    api = f"http://127.0.0.1:{free_port()}/api"
    src, plan, questions = make_inputs(tmp)
    s = Stack(tmp, base_env(tmp, api), api, "", questions)
    s.env["TEST_QUESTIONS_URI"] = str(src)
    try:
        _start_stack(s, plan)
        yield s
    finally:
        for name in reversed(list(s.procs)):
            stop(s.procs[name])


def _start_stack(s: Stack, plan: Path) -> None:
    port = s.api.split(":")[-1].split("/")[0]
    start(s, "server", ["prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
          s.tmp)
    # The fake's --script loader cannot import a dataclass module by path; a one-line
    # wrapper imports the scripted teacher as a package module instead.
    script = s.tmp / "teacher_script.py"
    script.write_text("from tests.fakes.math_teacher import respond  # noqa: F401\n")
    start(s, "teacher", [sys.executable, "-m", "tests.fakes.fake_teacher", "--port", "0",
                         "--script", str(script)], REPO, {"MATH_TEACHER_PLAN": str(plan)})
    s.teacher_url = wait_for("the fake teacher", lambda: teacher_url(s), 30, s, "teacher")
    wait_for("the Prefect server", lambda: healthy(s.api), 120, s, "server")
    deploy = subprocess.run(
        [sys.executable, "-m", "personamath.cli", "deploy", "--store", f"file://{s.tmp}/store",
         "--results-path", str(s.tmp / "results")],
        cwd=s.tmp, env=s.env, capture_output=True, text=True, timeout=240)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "deployment pipeline/default -> pool cpu" in deploy.stdout, deploy.stdout
    worker_env = {"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": RESULTS_BLOCK_SLUG}
    for pool in ("cpu", "gpu"):  # from a foreign directory: the pull step finds the code
        start(s, f"worker-{pool}", ["prefect", "worker", "start", "--pool", pool,
                                    "--name", f"test-{pool}"], s.tmp, worker_env)


# -- helpers --------------------------------------------------------------------------
def params(s: Stack, seed: int) -> dict[str, Any]:
    """Pipeline parameters; the seed is part of the fingerprint (a new output place)."""
    return {"settings": {
        "sources": [{"dataset": "gsm8k", "uri": s.env["TEST_QUESTIONS_URI"]}],
        "teacher": {"provider": "openai", "base_url": f"{s.teacher_url}/v1",
                    "model": "fake-model", "max_retries": 1, "concurrency": 4,
                    "max_tokens": 400},
        "k1": K1, "k2": 1, "shard_size": SHARD_SIZE, "seed": seed,
        "store": f"file://{s.tmp}/store", "dataset_name": f"pm-seed{seed}",
    }}


def run_pipeline(s: Stack, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`prefect deployment run pipeline/default --watch`; returns (flow run id, run)."""
    cmd = ["prefect", "deployment", "run", "pipeline/default", "--params", json.dumps(p),
           "--watch", "--watch-interval", "1", "--watch-timeout", str(RUN_TIMEOUT)]
    proc = subprocess.run(cmd, cwd=s.tmp, env=s.env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT + 60)
    m = re.search(r"UUID: ([0-9a-f-]{36})", proc.stdout)
    assert m, f"no flow run created:\n{proc.stdout}\n{proc.stderr}"
    return m.group(1), flow_run(s, m.group(1))


def flow_run(s: Stack, run_id: str) -> dict[str, Any]:
    r = httpx.get(f"{s.api}/flow_runs/{run_id}", timeout=10)
    r.raise_for_status()
    return dict(r.json())


def state(run: dict[str, Any]) -> str:
    return str(run["state"]["type"])


def questions_asked(s: Stack) -> dict[str, int]:
    """Requests the fake teacher received since its last reset, by question id (a
    rewrite, and the solve of a rewrite, carry the original question's text)."""
    out: dict[str, int] = {}
    for req in s.teacher.requests():
        text = "\n".join(m["content"] for m in req["messages"] if m["role"] == "user")
        ids = [q["id"] for q in s.questions if q["question"].strip() in text]
        key = ids[0] if len(ids) == 1 else f"unknown:{len(ids)}"
        out[key] = out.get(key, 0) + 1
    return out


def wait_final(s: Stack, run_id: str) -> dict[str, Any]:
    """Wait (bounded) until a flow run that a worker will pick up reaches a final state."""
    final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    return dict(wait_for(f"flow run {run_id} to finish",
                         lambda: (r := flow_run(s, run_id))["state"]["type"] in final and r,
                         RUN_TIMEOUT, s))


def shard_ids(s: Stack, shard: int) -> set[str]:
    return {q["id"] for q in s.questions[shard * SHARD_SIZE:(shard + 1) * SHARD_SIZE]}


def artifacts(s: Stack) -> dict[str, Any]:
    """Latest data of each keyed artifact on the server."""
    r = httpx.post(f"{s.api}/artifacts/filter", timeout=10,
                   json={"limit": 200, "sort": "CREATED_DESC"})
    r.raise_for_status()
    out: dict[str, Any] = {}
    for a in r.json():
        if a.get("key"):
            out.setdefault(a["key"], a["data"])
    return out


def retry(s: Stack, run_id: str) -> None:
    """What the UI's Retry button does: the same flow run goes to AwaitingRetry."""
    r = httpx.post(f"{s.api}/flow_runs/{run_id}/set_state", timeout=10, json={
        "state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": False})
    r.raise_for_status()
    assert r.json()["status"] == "ACCEPT", r.json()


# -- tests ----------------------------------------------------------------------------
def test_pipeline_deployment_completes_with_dataset_and_artifacts(stack: Stack) -> None:
    stack.teacher.reset_counts()
    run_id, run = run_pipeline(stack, params(stack, seed=1))
    assert state(run) == "COMPLETED", f"{run['state']}\n{stack.logs()}"

    datasets = list((stack.tmp / "store" / "pm-seed1").glob("*/dataset/*.parquet"))
    assert len(datasets) == 1, datasets
    assert pq.read_table(datasets[0]).num_rows == N_QUESTIONS * (1 + K1)
    asked = questions_asked(stack)
    assert asked == {q["id"]: REQUESTS_PER_QUESTION for q in stack.questions}, asked
    keys = artifacts(stack)
    for key in ("stage1-progress", "stage1-shards", "stage2-progress", "stage-statistics",
                "rows-by-persona-and-source", "statistics-by-dataset", "teacher-usage",
                "build-summary"):
        assert key in keys, (key, sorted(keys))
    by_dataset = json.loads(keys["statistics-by-dataset"])
    assert by_dataset == [{"dataset": "gsm8k", "in": N_QUESTIONS, "accepted": N_QUESTIONS,
                           "rows": N_QUESTIONS * (1 + K1)}], by_dataset
    assert datasets[0].name in keys["build-summary"]


def test_failed_shard_fails_the_run_and_a_retry_reruns_only_that_shard(stack: Stack) -> None:
    bad = stack.questions[FAILED_SHARD * SHARD_SIZE + 1]
    teacher = stack.teacher
    teacher.add_fault("status", status=500, contains=bad["question"][:80])
    teacher.reset_counts()
    p = params(stack, seed=2)

    run_id, run = run_pipeline(stack, p)
    assert state(run) == "FAILED", f"{run['state']}\n{stack.logs()}"
    message = run["state"]["message"] or ""
    assert f"stage1 shard {FAILED_SHARD:05d}" in message and bad["id"] in message, message
    for shard in set(range(N_QUESTIONS // SHARD_SIZE)) - {FAILED_SHARD}:
        assert f"shard {shard:05d}" not in message, message
    assert questions_asked(stack)[bad["id"]] == 2  # first try + teacher.max_retries

    # A new run with the same parameters redoes only the unfinished shard (still failing).
    teacher.reset_counts()
    _, again = run_pipeline(stack, p)
    assert state(again) == "FAILED"
    assert set(questions_asked(stack)) <= shard_ids(stack, FAILED_SHARD), questions_asked(stack)

    # Heal, then Retry the first flow run through the API: only that shard runs.
    teacher.heal()
    teacher.reset_counts()
    retry(stack, run_id)
    done = wait_final(stack, run_id)
    assert state(done) == "COMPLETED", f"{done['state']}\n{stack.logs()}"
    assert done["run_count"] >= 2
    asked = questions_asked(stack)
    assert bad["id"] in asked and set(asked) <= shard_ids(stack, FAILED_SHARD), asked
    assert asked[bad["id"]] == REQUESTS_PER_QUESTION, asked
    assert list((stack.tmp / "store" / "pm-seed2").glob("*/dataset/*.parquet"))
