"""Stage logic over an in-process fake engine, and the build's dedupe/decontamination
and accounting checks (no HTTP, no Prefect)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from personamath.build import (
    AccountingError,
    check_accounting,
    contaminated,
    dedupe_and_decontaminate,
)
from personamath.generate import Failure, ShardFailed, stage1_shard, stage2_shard
from personamath.llm.types import ChatRequest, ChatResponse, RetriesExhausted, Usage
from personamath.schema import Question
from personamath.settings import demo_settings
from personamath.sources import load_questions
from tests.fakes.fake_teacher import Reply
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan


@dataclass
class FakeEngine:
    teacher: MathTeacher
    fail_on: str | None = None
    requests: list[ChatRequest] = field(default_factory=list)

    async def chat(self, req: ChatRequest) -> ChatResponse:
        self.requests.append(req)
        msgs = [{"role": m.role, "content": m.content} for m in req.messages]
        if self.fail_on and self.fail_on in msgs[-1]["content"]:
            raise RetriesExhausted("500 after 3 attempts")
        out = self.teacher(msgs, {})
        reply = out if isinstance(out, Reply) else Reply(out)
        return ChatResponse(reply.text, reply.finish_reason, Usage(10, 5), 0.001)


def _questions() -> list[Question]:
    return load_questions("gsm8k", "builtin:demo/gsm8k").questions[:4]


def _engine(behaviours: list[Behaviour], **kw: object) -> FakeEngine:
    qs = _questions()
    return FakeEngine(MathTeacher([Plan(q.question, q.gold, b) for q, b in zip(qs, behaviours,
                                                                               strict=True)]),
                      **kw)


def test_stage1_and_stage2_outcomes_and_rows() -> None:
    s = demo_settings(k1=2, k2=3)
    eng = _engine([Behaviour("right"), Behaviour("wrong", "right"),
                   Behaviour("wrong", "wrong"), Behaviour("truncated", "truncated")])
    r1 = asyncio.run(stage1_shard(_questions(), s, eng))
    status = {o.question_id: o.status for o in r1.outcomes}
    qs = _questions()
    assert status[qs[0].id] == "accepted" and len(r1.rows) == 3
    assert [status[q.id] for q in qs[1:]] == ["to_stage2"] * 3
    fails = [Failure(q, o.last_response) for q in qs for o in r1.outcomes
             if o.question_id == q.id and o.status == "to_stage2"]
    r2 = asyncio.run(stage2_shard(fails, s, eng))
    reasons = {o.question_id: (o.status, o.reason) for o in r2.outcomes}
    assert reasons[qs[1].id] == ("accepted", "")
    assert reasons[qs[2].id] == ("rejected", "wrong_after_reflection")
    assert reasons[qs[3].id] == ("rejected", "truncated")
    assert len(r2.rows) == 1 + 3 and all(r.stage == 2 for r in r2.rows)
    assert {r.kind for r in r2.rows} == {"original", "rewrite"}


def test_requests_are_deterministic_per_question() -> None:
    s = demo_settings(k1=1)
    a, b = _engine([Behaviour("right")] * 4), _engine([Behaviour("right")] * 4)
    asyncio.run(stage1_shard(_questions(), s, a))
    asyncio.run(stage1_shard(list(reversed(_questions())), s, b))
    assert sorted(r.key("x") for r in a.requests) == sorted(r.key("x") for r in b.requests)


def test_teacher_error_fails_shard_or_rejects() -> None:
    qs = _questions()
    eng = _engine([Behaviour("right")] * 4, fail_on=qs[2].question[:30])
    with pytest.raises(ShardFailed, match=qs[2].id):
        asyncio.run(stage1_shard(qs, demo_settings(k1=0), eng))
    r = asyncio.run(stage1_shard(qs, demo_settings(k1=0, on_teacher_error="reject"), eng))
    rej = [o for o in r.outcomes if o.status == "rejected"]
    assert [(o.question_id, o.reason) for o in rej] == [(qs[2].id, "teacher_error")]


def test_no_reflection_setting() -> None:
    q = _questions()[0]
    r = asyncio.run(stage2_shard([Failure(q, "x")], demo_settings(reflection_attempts=0),
                                 _engine([Behaviour("wrong")] * 4)))
    assert r.outcomes[0].reason == "wrong_no_reflection"


def _row(rid: str, src: str, problem: str) -> dict:
    return {"row_id": rid, "source_id": src, "problem": problem}


def test_dedupe_and_decontaminate() -> None:
    test_q = load_questions("gsm8k", "builtin:gsm8k/test", "test").questions[0].question
    assert contaminated(test_q) and contaminated("Hey! " + test_q.upper())
    assert not contaminated("A farmer has 3 cows and buys 4 more. How many cows?")
    rows = [_row("1", "a", "A farmer has 3 cows."), _row("2", "b", "a farmer has 3 COWS"),
            _row("3", "c", test_q), _row("4", "d", "Rewritten: fine"),
            _row("5", "d", "Rewritten: fine too")]
    questions = [{"id": "d", "question": test_q}]
    kept, dropped = dedupe_and_decontaminate(rows, questions, True)
    assert [r["row_id"] for r in kept] == ["1"]
    assert dropped == {"2": "duplicate", "3": "contaminated", "4": "contaminated",
                       "5": "contaminated"}
    kept, _ = dedupe_and_decontaminate(rows, questions, False)
    assert len(kept) == 4


def _summary(**over: int) -> dict:
    s = {"questions_in": 10, "ingest": {"valid": 9},
         "stage1": {"in": 9, "accepted": 4, "to_stage2": 5, "rejected": {}},
         "stage2": {"in": 5, "accepted": 2, "rejected": {"wrong_after_reflection": 3}},
         "final": {"accepted": 6, "rejected": {"invalid_input": 1, "wrong_after_reflection": 3}}}
    for k, v in over.items():
        a, b = k.split("__")
        s[a][b] = v
    return s


def test_accounting_adds_up_or_fails_loudly() -> None:
    check_accounting(_summary())
    with pytest.raises(AccountingError, match="stage2"):
        check_accounting(_summary(stage2__in=4))
    with pytest.raises(AccountingError, match="accounted for"):
        check_accounting(_summary(final__accepted=5))


def test_every_failed_question_is_named() -> None:
    qs = _questions()
    eng = _engine([Behaviour("right")] * 4, fail_on="Problem:")
    with pytest.raises(ShardFailed, match="4 questions failed") as info:
        asyncio.run(stage1_shard(qs, demo_settings(k1=0), eng))
    assert all(q.id in str(info.value) for q in qs)
