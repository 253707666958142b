"""Stage 1 (solve, verify, persona rewrites) and Stage 2 (reflection) for one shard.

Pure asyncio code over an `Engine`: no Prefect, no storage. A shard function takes
questions and returns rows (verified training pairs) and one `Outcome` per question,
so the caller can commit both atomically and account for every question.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from personamath import progress
from personamath.grading import verify
from personamath.llm.types import ChatRequest, ChatResponse, LLMError, Message
from personamath.prompts import prompt_version, reflect_messages, solve_messages
from personamath.schema import Outcome, Question, RejectReason, Row
from personamath.settings import Settings
from personas import Persona, draw_persona, load_catalog, parse_rewrite, rewrite_messages


class ShardFailed(RuntimeError):
    """A request failed for good and the run is set to fail rather than reject."""


@dataclass
class Attempt:
    """One solve or reflection, graded."""

    response: ChatResponse | None
    status: str  # correct | incorrect | error | truncated | teacher_error
    reason: str
    extracted: str | None
    attempt: int

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    @property
    def text(self) -> str:
        return self.response.text if self.response else ""


@dataclass
class ShardResult:
    rows: list[Row] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def bump(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n


@dataclass
class Failure:
    """A question the teacher got wrong in Stage 1, with its last attempt."""

    question: Question
    last_response: str


def _messages(pairs: list[tuple[str, str]]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in pairs)  # type: ignore[arg-type]


def _seed(settings: Settings, *parts: Any) -> int:
    blob = "|".join(str(p) for p in (settings.seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


class ShardWorker:
    """Runs the requests of one shard and turns replies into graded attempts."""

    def __init__(self, settings: Settings, engine: Any, step: str, total: int) -> None:
        self.s = settings
        self.engine = engine
        self.step = step
        self.total = total
        self.done = 0
        self.catalog = load_catalog()
        self.result = ShardResult()
        self.prompt_version = prompt_version()

    # -- requests ------------------------------------------------------------------
    async def ask(self, pairs: list[tuple[str, str]], tag: str, qid: str,
                  *key: Any) -> ChatResponse | None:
        """Send one request. A request that fails for good either fails the shard or
        returns None (the caller rejects the question), per `on_teacher_error`."""
        t = self.s.teacher
        req = ChatRequest(
            messages=_messages(pairs), model=t.resolved_model, max_tokens=t.max_tokens,
            temperature=t.temperature, seed=_seed(self.s, qid, tag, *key), tag=tag,
        )
        self.result.bump(f"requests_{tag}")
        try:
            return await self.engine.chat(req)
        except LLMError as err:
            if self.s.on_teacher_error == "fail":
                raise ShardFailed(f"question {qid}: {tag} request failed: {err}") from err
            self.result.bump("teacher_errors")
            return None

    def grade(self, resp: ChatResponse | None, q: Question, attempt: int) -> Attempt:
        if resp is None:
            return Attempt(None, "teacher_error", "request failed after retries", None, attempt)
        if resp.truncated:
            return Attempt(resp, "truncated", "reply hit max_tokens", None, attempt)
        v = verify(q.gold, resp.text, q.dataset)
        return Attempt(resp, v.status, v.reason, v.extracted, attempt)

    async def solve(self, q: Question, text: str, *key: Any) -> Attempt:
        resp = await self.ask(solve_messages(text), "solve", q.id, *key)
        return self.grade(resp, q, 0)

    async def reflect(self, q: Question, text: str, wrong: str, *key: Any) -> Attempt:
        """Up to R reflection rounds, each on the previous wrong attempt."""
        last = Attempt(None, "incorrect", "no reflection attempted", None, 0)
        gold = q.gold if self.s.reveal_gold else None
        for n in range(1, self.s.reflection_attempts + 1):
            pairs = reflect_messages(text, wrong, gold)
            resp = await self.ask(pairs, "reflect", q.id, *key, n)
            last = self.grade(resp, q, n)
            self.result.bump(f"reflect_{last.status}")
            if last.ok or resp is None:
                return last
            wrong = last.text
        return last

    async def rewrite(self, q: Question, index: int) -> tuple[Persona, str | None]:
        persona = draw_persona(self.catalog, q.id, index, self.s.seed)
        resp = await self.ask(rewrite_messages(q.question, persona), "rewrite", q.id, index)
        if resp is None or resp.truncated:
            return persona, None
        return persona, parse_rewrite(resp.text)

    # -- rows ----------------------------------------------------------------------
    def row(self, q: Question, problem: str, a: Attempt, stage: int,
            persona: Persona | None = None, index: int | None = None) -> Row:
        assert a.ok and a.response is not None, "only verified attempts become rows"
        t = self.s.teacher
        kind = "original" if persona is None else "rewrite"
        rid = hashlib.sha256(f"{q.id}|{stage}|{kind}|{index}|{a.attempt}".encode()).hexdigest()
        return Row(
            problem=problem, response=a.response.text, source_id=q.id,
            source_dataset=q.dataset, stage=stage, kind=kind,
            persona=persona.category.name if persona else None,
            persona_occupation=persona.occupation.title if persona else None,
            rewrite_index=index, attempt=a.attempt, teacher_model=t.resolved_model,
            teacher_provider=t.provider, prompt_version=self.prompt_version,
            gold_answer=q.gold, extracted_answer=a.extracted or "", verdict=a.status,
            verdict_reason=a.reason, level=q.level, subject=q.subject,
            prompt_tokens=a.response.usage.prompt_tokens,
            completion_tokens=a.response.usage.completion_tokens,
            cost_usd=a.response.cost_usd, row_id=rid[:20],
        )

    async def rewrites(self, q: Question, k: int, stage: int) -> tuple[list[Row], int]:
        """K persona rewrites of a solved question; each is solved (and, in Stage 2,
        reflected on when wrong) and kept only when verified against the gold answer."""

        async def one(i: int) -> Row | None:
            persona, text = await self.rewrite(q, i)
            if text is None:
                self.result.bump("rewrites_unusable")
                return None
            a = await self.solve(q, text, "rw", i)
            if not a.ok and stage == 2 and a.status != "teacher_error":
                a = await self.reflect(q, text, a.text, "rw", i)
            self.result.bump("rewrites_kept" if a.ok else "rewrites_wrong")
            return self.row(q, text, a, stage, persona, i) if a.ok else None

        rows = [r for r in await asyncio.gather(*(one(i) for i in range(k))) if r]
        return rows, k

    async def accept(self, q: Question, a: Attempt, k: int, stage: int) -> None:
        """A verified question: its own row, K persona rewrites, and its outcome."""
        rows, tried = await self.rewrites(q, k, stage)
        self.result.rows.extend([self.row(q, q.question, a, stage), *rows])
        self.result.outcomes.append(Outcome(q.id, q.dataset, stage, "accepted", "",
                                            1 + len(rows), tried, len(rows), ""))

    def tick(self) -> None:
        self.done += 1
        progress.report(self.step, self.done, self.total)


def failure_reason(a: Attempt) -> str:
    """Why a question ends rejected, from its last attempt ("could not grade" is not
    "wrong": it has its own reason)."""
    return {
        "truncated": RejectReason.TRUNCATED,
        "error": RejectReason.UNPARSABLE_ANSWER,
        "teacher_error": RejectReason.TEACHER_ERROR,
    }.get(a.status, RejectReason.WRONG_AFTER_REFLECTION)


async def stage1_shard(questions: list[Question], settings: Settings, engine: Any) -> ShardResult:
    """Solve every question; rewrite the solved ones K1 times; pass the rest to Stage 2."""
    w = ShardWorker(settings, engine, "stage1", len(questions))

    async def one(q: Question) -> None:
        a = await w.solve(q, q.question)
        w.result.bump(f"solve_{a.status}")
        if a.status == "teacher_error":
            w.result.outcomes.append(Outcome(q.id, q.dataset, 1, "rejected",
                                             RejectReason.TEACHER_ERROR, 0, 0, 0, ""))
        elif not a.ok:
            w.result.outcomes.append(Outcome(q.id, q.dataset, 1, "to_stage2", a.status, 0, 0, 0,
                                             a.text, a.reason))
        else:
            await w.accept(q, a, settings.k1, 1)
        w.tick()

    await gather_all(one(q) for q in questions)
    return _sorted(w.result)


async def stage2_shard(failures: list[Failure], settings: Settings, engine: Any) -> ShardResult:
    """Reflect on each wrong question; keep fixed ones and rewrite them K2 times."""
    w = ShardWorker(settings, engine, "stage2", len(failures))

    async def one(f: Failure) -> None:
        q = f.question
        if settings.reflection_attempts == 0:
            w.result.outcomes.append(Outcome(q.id, q.dataset, 2, "rejected",
                                             RejectReason.NO_REFLECTION, 0, 0, 0, ""))
            w.tick()
            return
        a = await w.reflect(q, q.question, f.last_response)
        if not a.ok:
            w.result.outcomes.append(Outcome(q.id, q.dataset, 2, "rejected", failure_reason(a),
                                             0, 0, 0, a.text, a.reason))
        else:
            await w.accept(q, a, settings.k2, 2)
        w.tick()

    await gather_all(one(f) for f in failures)
    return _sorted(w.result)


async def gather_all(coros: Any) -> None:
    """Run every question to the end even when one fails, so that the replies of the
    others are checkpointed in the ledger; then raise the first failure."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    shard_failures = [f for f in failures if isinstance(f, ShardFailed)]
    if len(shard_failures) > 1 and len(shard_failures) == len(failures):
        raise ShardFailed(f"{len(failures)} questions failed: "
                          + "; ".join(str(f) for f in shard_failures[:5])
                          + ("; ..." if len(failures) > 5 else "")) from failures[0]
    if failures:
        raise failures[0]


def _sorted(r: ShardResult) -> ShardResult:
    """Stable order, independent of reply timing, so reruns give identical files."""
    r.rows.sort(key=lambda x: (x.source_id, x.stage, x.kind,
                               -1 if x.rewrite_index is None else x.rewrite_index, x.attempt))
    r.outcomes.sort(key=lambda o: o.question_id)
    return r
