"""Fault tests against the real S3 server (Ceph RadosGW): the pipeline loses nothing,
duplicates nothing and never pays twice for a committed shard.

1. S3 stopped in the middle of a run: the run fails naming the endpoint; after a
   restart a rerun completes with no duplicate rows and no request for committed shards.
2. The process running the flow killed with SIGKILL mid-shard, then rerun: the same.
3. A truncated shard object without a manifest is ignored and rewritten; a shard whose
   checksum does not match its manifest is reported and rewritten.
4. Two runs of the same fingerprint at the same time: no corrupted shard, and a final
   dataset identical to a single run's.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from personamath.ledger import StoreLedger
from personamath.runner import RunContext
from personamath.settings import build_settings
from personamath.sources import load_questions
from tests.fakes.fake_teacher import FakeTeacher
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

pytestmark = [pytest.mark.s3, pytest.mark.slow]

FIX = Path(__file__).parent.parent / "fixtures"
N_QUESTIONS, SHARD = 12, 3
ROW_KEY = ("source_id", "stage", "kind", "rewrite_index", "attempt", "problem", "response",
           "persona")


def _questions() -> list:
    return load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl"),
                          limit=N_QUESTIONS).questions


def _teacher() -> MathTeacher:
    kinds = [Behaviour("right"), Behaviour("wrong", "right"), Behaviour("wrong", "wrong")]
    return MathTeacher([Plan(q.question, q.gold, kinds[i % 3])
                        for i, q in enumerate(_questions())])


def _settings(url: str, store: str) -> dict:
    return {
        "sources": [{"dataset": "gsm8k", "uri": str(FIX / "gsm8k_train_30.jsonl"),
                     "limit": N_QUESTIONS}],
        "teacher": {"provider": "openai", "base_url": url, "model": "fake",
                    "concurrency": 2, "max_retries": 1, "max_tokens": 400},
        "k1": 1, "k2": 1, "shard_size": SHARD, "store": store,
    }


class Run:
    """`personamath run --config` in its own process group, with its own Prefect home."""

    def __init__(self, tmp: Path, name: str, settings: dict, env: dict[str, str]) -> None:
        self.cfg = tmp / f"{name}.yaml"
        self.cfg.write_text(yaml.safe_dump(settings))
        self.env = {**env, "PREFECT_HOME": str(tmp / f"prefect-{name}"),
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
        self.log = tmp / f"{name}.log"

    def start(self) -> subprocess.Popen:
        out = self.log.open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "personamath.cli", "run", "--config", str(self.cfg)],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, timeout: float = 400) -> tuple[int, str]:
        proc = self.start()
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            _kill(proc)
        return rc, self.log.read_text()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _ctx(settings: dict) -> RunContext:
    return RunContext.create(build_settings(settings))


def _committed(ctx: RunContext, step: str = "stage1") -> list[int]:
    return ctx.store().done_shards(ctx.step(step))


def _wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _dataset(ctx: RunContext) -> list[tuple]:
    table = ctx.store().read_table(f"{ctx.base}/dataset/{ctx.settings.dataset_name}.parquet")
    rows = [tuple(r[k] for k in ROW_KEY) for r in table.to_pylist()]
    assert len({r[:5] for r in rows}) == len(rows), "duplicate rows in the dataset"
    return rows


def _summary(ctx: RunContext) -> dict:
    s = ctx.store().read_json(f"{ctx.base}/summary.json")
    assert s["final"]["accepted"] + sum(s["final"]["rejected"].values()) == s["questions_in"]
    return s


def _shard_questions(shards: list[int]) -> list[str]:
    qs = sorted(_questions(), key=lambda q: (q.dataset, q.id))
    return [qs[i].question for s in shards for i in range(s * SHARD, (s + 1) * SHARD)]


def _first_solves(fake: FakeTeacher, questions: list[str]) -> int:
    """Stage 1 solve requests for these original questions (Stage 2 never sends a plain
    solve of an original question: it reflects, or solves a rewrite)."""
    wanted = {q.strip() for q in questions}
    n = 0
    for r in fake.requests:
        users = [m["content"] for m in r.messages if m["role"] == "user"]
        if len(users) == 1 and users[0].split("Problem:", 1)[-1].strip() in wanted:
            n += 1
    return n


def _writers(ctx: RunContext, shards: list[int]) -> dict[int, str]:
    store = ctx.store()
    return {i: store.load_manifest(ctx.step("stage1"), i).writer for i in shards}


@pytest.fixture()
def fake():
    with FakeTeacher(_teacher()) as f:
        yield f


def test_s3_stopped_mid_run_then_rerun(s3_bucket, fake, tmp_path: Path) -> None:
    settings = _settings(fake.base_url_openai, s3_bucket.uri("faults1"))
    ctx = _ctx(settings)
    fake.add_fault("latency", delay=0.4)
    run = Run(tmp_path, "s3down", settings, s3_bucket.subprocess_env())
    proc = run.start()
    try:
        _wait_for(lambda: len(_committed(ctx)) >= 1, 300, "a committed stage1 shard")
        s3_bucket.server.stop_rgw()
        rc = proc.wait(timeout=300)
    finally:
        _kill(proc)
        s3_bucket.server.start_rgw()
    log = run.log.read_text()
    assert rc != 0, log[-2000:]
    assert s3_bucket.server.endpoint.split("//")[1] in log, log[-3000:]
    committed = _committed(ctx)
    assert committed, "at least one shard committed before S3 went away"
    writers = _writers(ctx, committed)
    fake.heal()
    fake.reset_counts()
    rc, log = run.run()
    assert rc == 0, log[-3000:]
    assert _first_solves(fake, _shard_questions(committed)) == 0
    assert _writers(ctx, committed) == writers, "a committed shard was recomputed"
    _dataset(ctx)
    assert _summary(ctx)["questions_in"] == N_QUESTIONS


def _unfinished_ledgers(ctx: RunContext) -> dict[tuple[str, int], int]:
    """(step, shard) -> replies checkpointed in the ledger of every uncommitted shard."""
    store = ctx.store()
    out = {}
    for step in ("stage1", "stage2"):
        done = set(store.done_shards(ctx.step(step)))
        for i in range(N_QUESTIONS // SHARD):
            if i not in done:
                n = len(StoreLedger(store, f"{ctx.step(step)}/ledger/shard-{i:05d}"))
                if n:
                    out[(step, i)] = n
    return out


def test_sigkill_mid_shard_then_rerun(s3_bucket, fake, tmp_path: Path) -> None:
    settings = _settings(fake.base_url_openai, s3_bucket.uri("faults2"))
    ctx = _ctx(settings)
    fake.add_fault("latency", delay=0.4)
    run = Run(tmp_path, "kill", settings, s3_bucket.subprocess_env())
    proc = run.start()
    try:
        _wait_for(lambda: len(_committed(ctx)) >= 1 and _unfinished_ledgers(ctx), 300,
                  "a committed shard and another one half done")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    committed = _committed(ctx)
    writers = _writers(ctx, committed)
    half_done = _unfinished_ledgers(ctx)
    assert half_done, "the kill must land in the middle of a shard"
    fake.heal()
    fake.reset_counts()
    rc, log = run.run()
    assert rc == 0, log[-3000:]
    assert _first_solves(fake, _shard_questions(committed)) == 0
    assert _writers(ctx, committed) == writers, "a committed shard was recomputed"
    # Every reply checkpointed before the kill is replayed, not bought again.
    store = ctx.store()
    for (step, i), saved in half_done.items():
        hits = store.load_manifest(ctx.step(step), i).counts["engine"]["ledger_hits"]
        assert hits == saved, (step, i, hits, saved)
    rows = _dataset(ctx)
    assert _summary(ctx)["build"]["rows_out"] == len(rows)


def test_planted_and_corrupt_shards_are_rewritten(s3_bucket, fake, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from personamath.build import build
    from personamath.runner import ingest, run_stage1_shard, run_stage2_shard

    settings = _settings(fake.base_url_openai, s3_bucket.uri("faults3"))
    ctx = _ctx(settings)
    store = ctx.store()
    step = ctx.step("stage1")
    good = pa.table({"x": list(range(100))})
    from storage.store import table_to_parquet_bytes

    store.write_bytes(f"{step}/shard-00001.rows.planted0000.parquet",
                      table_to_parquet_bytes(good)[:50])
    assert store.done_shards(step) == []
    shards = ingest(ctx)["shards"]
    for i in range(shards):
        run_stage1_shard(ctx, i)
        run_stage2_shard(ctx, i)
    build(ctx)
    first = _dataset(ctx)
    m1 = store.load_manifest(step, 1)
    assert "planted" not in m1.files["rows"]["key"]

    key = m1.files["rows"]["key"]
    store.write_bytes(key, store.read_bytes(key)[:-10] + b"0123456789")
    fake.reset_counts()
    with caplog.at_level(logging.WARNING, logger="personamath"):
        out = run_stage1_shard(ctx, 1)
    assert any("does not match its checksum" in r.getMessage() for r in caplog.records)
    assert out["skipped"] is False and fake.count() == 0  # rewritten from the ledger
    assert store.load_manifest(step, 1).writer != m1.writer
    build(ctx)
    assert _dataset(ctx) == first


def test_two_concurrent_runs_same_fingerprint(s3_bucket, fake, tmp_path: Path) -> None:
    settings = _settings(fake.base_url_openai, s3_bucket.uri("faults4"))
    ctx = _ctx(settings)
    env = s3_bucket.subprocess_env()
    procs = [Run(tmp_path, f"twin{i}", settings, env).start() for i in range(2)]
    try:
        codes = [p.wait(timeout=500) for p in procs]
    finally:
        for p in procs:
            _kill(p)
    assert codes == [0, 0], [(tmp_path / f"twin{i}.log").read_text()[-2000:] for i in range(2)]
    store = ctx.store()
    for step in ("stage1", "stage2"):
        for i in store.done_shards(ctx.step(step)):
            assert store.load_manifest(ctx.step(step), i) is not None  # checksums verified
    twins = _dataset(ctx)

    single = _settings(fake.base_url_openai, s3_bucket.uri("faults4-single"))
    rc, log = Run(tmp_path, "single", single, env).run()
    assert rc == 0, log[-2000:]
    assert twins == _dataset(_ctx(single))
    assert json.dumps(_summary(ctx)["final"]) == json.dumps(_summary(_ctx(single))["final"])
