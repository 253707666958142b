"""A shard that fails on one question, then is run again once the teacher heals: only
the failed question's requests are sent again (the request ledger replays the rest),
and the committed shard equals a clean run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from personamath.generate import ShardFailed
from personamath.ledger import StoreLedger
from personamath.llm.types import ChatResponse, Usage
from personamath.runner import RunContext, ingest, run_stage1_shard
from personamath.settings import build_settings
from personamath.sources import load_questions
from storage import open_store
from tests.fakes.fake_teacher import FakeTeacher
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

FIX = Path(__file__).parent.parent / "fixtures"


def _ctx(url: str, store: Path) -> RunContext:
    s = build_settings({
        "sources": [{"dataset": "gsm8k", "uri": str(FIX / "gsm8k_train_30.jsonl"), "limit": 6}],
        "teacher": {"provider": "openai", "base_url": url, "model": "m", "max_retries": 1,
                    "concurrency": 3},
        "k1": 2, "shard_size": 6, "store": f"file://{store}",
    })
    return RunContext.create(s)


def test_failed_shard_rerun_resends_only_the_failed_question(tmp_path: Path) -> None:
    qs = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl"), limit=6).questions
    teacher = MathTeacher([Plan(q.question, q.gold, Behaviour("right")) for q in qs])
    with FakeTeacher(teacher) as fake:
        ctx = _ctx(fake.base_url_openai, tmp_path / "a")
        ingest(ctx)
        bad = qs[4].question[:40]
        fake.fail(500, contains=bad)
        with pytest.raises(ShardFailed, match=qs[4].id):
            run_stage1_shard(ctx, 0)
        assert ctx.store().load_manifest(ctx.step("stage1"), 0) is None
        fake.heal()
        fake.reset_counts()
        out = run_stage1_shard(ctx, 0)
        # the healed question: 1 solve + 2 rewrites + 2 rewrite solves, nothing else
        assert fake.count() == 5, fake.count()
        assert out["engine"]["ledger_hits"] >= 5 * 3
        rows_retry = ctx.store().read_shard(
            ctx.store().load_manifest(ctx.step("stage1"), 0), "rows").to_pylist()

        clean = _ctx(fake.base_url_openai, tmp_path / "b")
        ingest(clean)
        run_stage1_shard(clean, 0)
        rows_clean = clean.store().read_shard(
            clean.store().load_manifest(clean.step("stage1"), 0), "rows").to_pylist()
    key = [(r["source_id"], r["kind"], r["rewrite_index"], r["problem"], r["response"])
           for r in rows_retry]
    assert key == [(r["source_id"], r["kind"], r["rewrite_index"], r["problem"], r["response"])
                   for r in rows_clean]


def test_ledger_roundtrip_and_torn_lines(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    led = StoreLedger(store, "l", flush_every=2)
    led.put("k1", ChatResponse("a", "stop", Usage(3, 4), 0.5))
    assert store.list("l") == []  # buffered until flush_every
    led.put("k2", ChatResponse("b", "length"))
    assert len(store.list("l")) == 1
    store.write_bytes("l/chunk-torn-00001.jsonl", b'{"key": "k3", "respo')
    again = StoreLedger(store, "l")
    assert len(again) == 2
    got = again.get("k1")
    assert got is not None and got.text == "a" and got.usage.completion_tokens == 4
    assert again.get("k2").truncated and again.get("k3") is None
