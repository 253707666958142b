"""The fake teacher run as a separate process and controlled through its admin API,
the way a test drives a fake that a Prefect worker process talks to."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from personamath.llm import RetriesExhausted, make_engine
from personamath.settings import TeacherSettings
from tests.fakes.fake_teacher import FakeTeacher, FakeTeacherClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_process(tmp_path: Path) -> Iterator[FakeTeacherClient]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({
        "default": "default \\boxed{1}",
        "rules": [{"contains": "seven", "reply": "So \\boxed{49}."},
                  {"contains": "cut", "reply": "half", "finish_reason": "length"}],
    }))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_teacher", "--port", "0", "--script",
         str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("FAKE_TEACHER_URL "), line
        yield FakeTeacherClient(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ask(base_url: str, prompt: str, **kw: object) -> str:
    eng = make_engine(TeacherSettings(provider="openai", base_url=base_url + "/v1",
                                      max_retries=1), backoff_base_s=0.01, **kw)
    resp = asyncio.run(eng.chat(eng.request([("user", prompt)])))
    return f"{resp.finish_reason}:{resp.text}"


def test_process_script_faults_heal_and_counts(fake_process: FakeTeacherClient) -> None:
    url = fake_process.base_url
    assert _ask(url, "seven squared?") == "stop:So \\boxed{49}."
    assert _ask(url, "please cut") == "length:half"
    assert _ask(url, "other") == "stop:default \\boxed{1}"
    fid = fake_process.fail(500, contains="BAD")
    with pytest.raises(RetriesExhausted):
        _ask(url, "a BAD one")
    assert fake_process.count(contains="BAD") == 2
    assert fake_process.heal(fid) == 1
    assert _ask(url, "a BAD one").startswith("stop:")
    counts = fake_process.counts()
    assert counts["total"] == 6 and counts["by_route"] == {"openai": 6}
    assert len(fake_process.requests()) == 6
    fake_process.reset_counts()
    assert fake_process.count() == 0
    fake_process.set_script({"default": "new"})
    assert _ask(url, "x") == "stop:new"


def test_admin_rejects_unknown_fault_kind(fake_process: FakeTeacherClient) -> None:
    with pytest.raises(Exception, match="400"):
        fake_process.add_fault("explode")


def test_in_process_fake_starts_fast_on_a_free_port() -> None:
    t0 = time.monotonic()
    with FakeTeacher() as a, FakeTeacher() as b:
        assert time.monotonic() - t0 < 5.0
        assert a.port != b.port and a.base_url_openai.endswith("/v1")
        assert FakeTeacherClient(a.base_url_openai).counts()["total"] == 0
