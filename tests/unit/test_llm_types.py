"""Pure parts of the LLM engine: types, pricing, error classification, backoff, limiter."""

from __future__ import annotations

import asyncio
import random

import pytest

from personamath.llm import (
    ChatRequest,
    ChatResponse,
    Engine,
    Message,
    PermanentLLMError,
    RetriesExhausted,
    TokenBucketLimiter,
    TransientLLMError,
    Usage,
    make_engine,
    make_provider,
)
from personamath.llm.engine import estimate_tokens
from personamath.llm.pricing import cost_usd, price_for
from personamath.llm.providers.base import (
    Redactor,
    error_message_from_body,
    normalise_finish,
    parse_retry_after,
    status_error,
)
from personamath.settings import SettingsError, TeacherSettings


def _req(**kw: object) -> ChatRequest:
    base: dict[str, object] = {"messages": (Message("user", "1+1?"),), "model": "m"}
    return ChatRequest(**{**base, **kw})  # type: ignore[arg-type]


class _NoProvider:
    name = "none"

    async def complete(self, req: ChatRequest) -> ChatResponse:
        raise AssertionError("not called")

    async def aclose(self) -> None:
        return None


# ---- types ------------------------------------------------------------------------------
def test_request_key_is_stable_and_separates_samples() -> None:
    assert _req().key("openai") == _req().key("openai")
    assert _req().key("openai") != _req(sample_index=1).key("openai")
    assert _req().key("openai") != _req().key("anthropic")
    assert _req().key("openai") == _req(tag="other-label").key("openai")  # tag is not content


def test_usage_and_truncation() -> None:
    assert Usage(3, 4).total_tokens == 7
    assert ChatResponse("x", "length").truncated
    assert not ChatResponse("x", "stop").truncated


def test_error_flags_and_kinds() -> None:
    assert TransientLLMError("x").transient and RetriesExhausted("x").transient
    assert not PermanentLLMError("x").transient
    assert TransientLLMError("x", kind="timeout").kind == "timeout"
    assert TransientLLMError("x", status=503).kind == "http_503"


# ---- pricing ------------------------------------------------------------------------
def test_pricing_longest_prefix_and_zero_for_local_or_unknown() -> None:
    assert price_for("openai", "gpt-4o-mini-2024-07-18") == price_for("openai", "gpt-4o-mini")
    assert price_for("openai", "gpt-4o-2024-08-06") == price_for("openai", "gpt-4o")
    assert price_for("anthropic", "claude-3-5-haiku-latest") is not None
    assert cost_usd("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("local", "gpt-4o-mini", 10**6, 10**6) == 0.0
    assert cost_usd("openai", "my-finetune", 10**6, 10**6) == 0.0


# ---- classification helpers -------------------------------------------------------------
@pytest.mark.parametrize(("status", "transient", "kind"), [
    (429, True, "rate_limit"), (500, True, "server"), (502, True, "server"),
    (503, True, "server"), (529, True, "server"), (408, True, "server"),
    (400, False, "bad_request"), (401, False, "auth"), (403, False, "auth"),
    (404, False, "not_found"), (422, False, "bad_request"),
])
def test_status_classification(status: int, transient: bool, kind: str) -> None:
    err = status_error("openai", status, "boom", 1.5, Redactor(None))
    assert err.transient is transient and err.kind == kind and err.status == status
    assert str(status) in str(err)


def test_redactor_removes_key_and_echoed_keys() -> None:
    red = Redactor("sk-live-abcdef123")
    assert "sk-live-abcdef123" not in red("bad key sk-live-abcdef123 here")
    assert "sk-other" not in red("Incorrect API key provided: sk-other-999.")


def test_parse_retry_after_and_error_bodies() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after(None) is None
    assert error_message_from_body({"error": {"message": "m"}}, "f") == "m"
    assert error_message_from_body({"type": "error", "error": {"message": "a"}}, "f") == "a"
    assert error_message_from_body("html", "f") == "f"


def test_normalise_finish() -> None:
    assert normalise_finish("stop") == normalise_finish("end_turn") == "stop"
    assert normalise_finish("length") == normalise_finish("max_tokens") == "length"
    assert normalise_finish("content_filter") == normalise_finish(None) == "other"


# ---- engine pieces ----------------------------------------------------------------------
def test_backoff_full_jitter_bounded_and_honours_retry_after() -> None:
    eng = Engine(_NoProvider(), backoff_base_s=1.0, backoff_max_s=8.0, max_retry_after_s=30,
                 rng=random.Random(1))
    delays = [eng.backoff_delay(a, TransientLLMError("x")) for a in range(1, 10)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert eng.backoff_delay(1, TransientLLMError("x", retry_after=5)) >= 5
    assert eng.backoff_delay(1, TransientLLMError("x", retry_after=500)) <= 30


def test_engine_request_builder_uses_defaults() -> None:
    eng = Engine(_NoProvider(), model="gpt-4o-mini", max_tokens=77, temperature=0.3)
    req = eng.request([("system", "s"), {"role": "user", "content": "q"}], seed=3, tag="solve")
    assert req.model == "gpt-4o-mini" and req.max_tokens == 77 and req.temperature == 0.3
    assert req.messages == (Message("system", "s"), Message("user", "q"))
    assert req.seed == 3 and req.tag == "solve"
    assert estimate_tokens(req) >= 77


def test_token_bucket_limits_requests_and_tokens() -> None:
    now = [0.0]
    lim = TokenBucketLimiter(requests_per_minute=2, tokens_per_minute=100, clock=lambda: now[0])
    assert lim._try(10) == 0 and lim._try(10) == 0
    assert lim._try(10) == pytest.approx(30.0)  # third request: wait for half a minute
    now[0] = 30.0
    assert lim._try(10) == 0
    tok = TokenBucketLimiter(tokens_per_minute=120, clock=lambda: now[0])
    assert tok._try(500) == 0  # a request larger than a minute's budget takes it all
    assert tok._try(60) == pytest.approx(30.0)  # 2 tokens/s
    tok.settle(estimated=100, actual=40)  # 60 refunded
    assert tok._try(60) == 0
    tok.pause(5.0)
    assert tok._try(1) == pytest.approx(5.0)


def test_token_bucket_acquire_waits() -> None:
    lim = TokenBucketLimiter(requests_per_minute=600)  # 10/s after the burst
    lim._requests.level = 0  # type: ignore[union-attr]
    loop_time = asyncio.run(_timed(lim.acquire(1)))
    assert 0.05 <= loop_time < 1.0


async def _timed(coro: object) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await coro  # type: ignore[misc]
    return loop.time() - t0


# ---- factory ------------------------------------------------------------------------
def test_make_engine_checks_key_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        make_engine(TeacherSettings(provider="openai"))


def test_make_provider_and_engine_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test-key-0000")
    s = TeacherSettings(provider="anthropic", api_key_env="MY_KEY", concurrency=3,
                        max_retries=2, timeout_s=9, requests_per_minute=60)
    assert make_provider(s).name == "anthropic"
    eng = make_engine(s)
    assert eng.concurrency == 3 and eng.max_retries == 2 and eng.timeout_s == 9
    assert isinstance(eng.rate_limiter, TokenBucketLimiter)
    assert eng.defaults["model"] == s.resolved_model
    assert "sk-test-key-0000" not in repr(eng.stats.to_dict())
    assert make_provider(TeacherSettings(provider="local")).name == "local"
    assert make_engine(TeacherSettings(provider="local")).rate_limiter is None


def test_reasoning_models_get_max_completion_tokens() -> None:
    from personamath.llm.providers.openai import OpenAIProvider, is_reasoning_model

    assert is_reasoning_model("o3-mini") and is_reasoning_model("gpt-5-mini")
    assert not is_reasoning_model("gpt-4o-mini") and not is_reasoning_model("o1x")
    params = OpenAIProvider._params(_req(model="o4-mini", max_tokens=50))
    assert params["max_completion_tokens"] == 50 and "temperature" not in params
    params = OpenAIProvider._params(_req(model="gpt-4o", max_tokens=50, stop=("##",)))
    assert params["max_tokens"] == 50 and params["stop"] == ["##"] and "seed" not in params
