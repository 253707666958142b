"""The chat engine: one policy for concurrency, retries, timeouts, limits and stats.

Why it sits above the providers: retrying only what is transient, with backoff and
jitter, honouring Retry-After, and counting every attempt are the same for every
transport, so they live here once. Pure asyncio, no Prefect: a shard task calls
`asyncio.run(...)` in its worker thread, so per-loop objects (the semaphore, SDK
clients) are created lazily inside whichever loop is running.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from personamath.llm.pricing import cost_usd
from personamath.llm.providers.base import Provider
from personamath.llm.ratelimit import RateLimiter
from personamath.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMError,
    Message,
    PermanentLLMError,
    RetriesExhausted,
    TransientLLMError,
)

log = logging.getLogger("personamath.llm")


@runtime_checkable
class Ledger(Protocol):
    """Checkpointed replies keyed by `ChatRequest.key(provider)` (DESIGN §3)."""

    def get(self, key: str) -> ChatResponse | None: ...

    def put(self, key: str, response: ChatResponse) -> None: ...


@dataclass
class EngineStats:
    """Counters for one engine; `requests` counts every attempt sent, retries included."""

    requests: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    truncated: int = 0
    ledger_hits: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0  # summed over attempts
    first_start: float | None = None
    last_end: float | None = None

    @property
    def wall_s(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "successes": self.successes,
            "failures": self.failures, "retries": self.retries,
            "truncated": self.truncated, "ledger_hits": self.ledger_hits,
            "errors": dict(self.errors), "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 9), "latency_s": round(self.latency_s, 3),
            "wall_s": round(self.wall_s, 3),
        }


MessageLike = Message | tuple[str, str] | dict[str, str]


class Engine:
    """Sends ChatRequests through a provider with caps, retries and accounting."""

    def __init__(
        self,
        provider: Provider,
        *,
        model: str = "",
        max_tokens: int = 1024,
        temperature: float = 0.0,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_retry_after_s: float = 120.0,
        rate_limiter: RateLimiter | None = None,
        ledger: Ledger | None = None,
        pricing: Callable[[str, str, int, int], float] = cost_usd,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.defaults = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.rate_limiter = rate_limiter
        self.ledger = ledger
        self._pricing = pricing
        self._rng = rng or random.Random()
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._sems: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._sems = weakref.WeakKeyDictionary()

    # ---- public API -----------------------------------------------------------------
    def request(self, messages: Iterable[MessageLike], **overrides: Any) -> ChatRequest:
        """A ChatRequest with this engine's model, max_tokens and temperature as defaults."""
        msgs = tuple(_as_message(m) for m in messages)
        return ChatRequest(messages=msgs, **{**self.defaults, **overrides})

    async def chat(self, req: ChatRequest) -> ChatResponse:
        """One reply, retried on transient errors. A truncated reply is returned as is.

        Raises PermanentLLMError (no retry) or RetriesExhausted."""
        key = req.key(self.provider.name) if self.ledger is not None else None
        if key is not None and (hit := self._ledger_get(key)) is not None:
            return hit
        last: TransientLLMError | None = None
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                resp = await self._attempt(req)
            except PermanentLLMError as err:
                self._count_error(err, final=True)
                raise
            except TransientLLMError as err:
                last = err
                final = attempt == attempts
                self._count_error(err, final=final)
                if not final:
                    await self._backoff(req, attempt, err)
                continue
            resp.attempts = attempt
            self._record_success(resp)
            if key is not None and self.ledger is not None:
                self.ledger.put(key, resp)
            return resp
        assert last is not None
        raise RetriesExhausted(
            f"{req.tag or 'request'} failed after {attempts} attempt(s); last error "
            f"({last.kind}): {last}", status=last.status, retry_after=last.retry_after,
            kind=last.kind)

    async def chat_many(self, reqs: Sequence[ChatRequest]) -> list[ChatResponse | LLMError]:
        """All replies in order; a failed request yields its LLMError instead of raising."""
        async def one(r: ChatRequest) -> ChatResponse | LLMError:
            try:
                return await self.chat(r)
            except LLMError as err:
                return err
        return list(await asyncio.gather(*(one(r) for r in reqs)))

    async def aclose(self) -> None:
        """Close the provider's client for the running loop (call before asyncio.run ends)."""
        await self.provider.aclose()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- one attempt --------------------------------------------------------------
    async def _attempt(self, req: ChatRequest) -> ChatResponse:
        estimate = estimate_tokens(req)
        if self.rate_limiter is not None:
            await self.rate_limiter.acquire(estimate)
        async with self._semaphore():
            start = self._mark_start()
            try:
                resp = await asyncio.wait_for(self.provider.complete(req), self.timeout_s)
            except TimeoutError:
                raise TransientLLMError(
                    f"{self.provider.name}: no reply within {self.timeout_s:g}s",
                    kind="timeout") from None
            finally:
                self._mark_end(start)
        resp.latency_s = time.monotonic() - start
        resp.provider = resp.provider or self.provider.name
        resp.cost_usd = self._pricing(self.provider.name, resp.model or req.model,
                                      resp.usage.prompt_tokens, resp.usage.completion_tokens)
        if self.rate_limiter is not None:
            self.rate_limiter.settle(estimate, resp.usage.total_tokens)
        return resp

    def _semaphore(self) -> asyncio.Semaphore:
        """One semaphore per event loop: asyncio primitives cannot cross loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._sems.get(loop)
            if sem is None:
                sem = self._sems[loop] = asyncio.Semaphore(self.concurrency)
            return sem

    def backoff_delay(self, attempt: int, err: LLMError) -> float:
        """Full jitter on an exponential ceiling; never shorter than a given Retry-After."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, ceiling)
        if err.retry_after is not None:
            delay = max(delay, min(err.retry_after, self.max_retry_after_s))
        return delay

    async def _backoff(self, req: ChatRequest, attempt: int, err: TransientLLMError) -> None:
        delay = self.backoff_delay(attempt, err)
        if err.kind == "rate_limit" and self.rate_limiter is not None:
            self.rate_limiter.pause(delay)
        with self._lock:
            self.stats.retries += 1
        log.info("%s attempt %d failed (%s): %s; retrying in %.2fs",
                 req.tag or "request", attempt, err.kind, err, delay)
        await asyncio.sleep(delay)

    # ---- accounting ----------------------------------------------------------------
    def _ledger_get(self, key: str) -> ChatResponse | None:
        assert self.ledger is not None
        hit = self.ledger.get(key)
        if hit is None:
            return None
        with self._lock:
            self.stats.ledger_hits += 1
        return replace(hit, from_ledger=True)

    def _mark_start(self) -> float:
        now = time.monotonic()
        with self._lock:
            self.stats.requests += 1
            if self.stats.first_start is None:
                self.stats.first_start = now
        return now

    def _mark_end(self, start: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.stats.latency_s += now - start
            self.stats.last_end = now

    def _count_error(self, err: LLMError, *, final: bool) -> None:
        with self._lock:
            self.stats.errors[err.kind] = self.stats.errors.get(err.kind, 0) + 1
            if final:
                self.stats.failures += 1
        if final:
            log.warning("request failed for good (%s): %s", err.kind, err)

    def _record_success(self, resp: ChatResponse) -> None:
        with self._lock:
            s = self.stats
            s.successes += 1
            s.truncated += int(resp.truncated)
            s.prompt_tokens += resp.usage.prompt_tokens
            s.completion_tokens += resp.usage.completion_tokens
            s.cost_usd += resp.cost_usd


def estimate_tokens(req: ChatRequest) -> int:
    """Upper-bound guess for rate limiting: ~4 chars a token plus the reply budget."""
    chars = sum(len(m.content) for m in req.messages)
    return chars // 4 + 4 * len(req.messages) + req.max_tokens


def _as_message(m: MessageLike) -> Message:
    if isinstance(m, Message):
        return m
    if isinstance(m, tuple):
        return Message(m[0], m[1])  # type: ignore[arg-type]
    return Message(m["role"], m["content"])  # type: ignore[arg-type]
