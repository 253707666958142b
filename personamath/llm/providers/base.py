"""What every provider offers the engine, plus helpers shared by the HTTP providers.

Why a separate seam: the engine owns retries, timeouts, limits and stats; a provider
only turns one ChatRequest into one ChatResponse or one classified LLMError. SDK
clients are bound to the event loop they were created in, and the engine may be driven
by several `asyncio.run` calls (one per shard, possibly in several threads), so HTTP
providers keep one client per running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from personamath.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMError,
    PermanentLLMError,
    TransientLLMError,
)

C = TypeVar("C")

PERMANENT_STATUSES = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found",
                      413: "bad_request", 422: "bad_request"}


@runtime_checkable
class Provider(Protocol):
    """One transport. `complete` sends exactly one request (no retries)."""

    name: str

    async def complete(self, req: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...


class LoopClients(Generic[C]):
    """One SDK client per running event loop, created lazily inside that loop.

    Each client is closed when its loop shuts down, even if nobody calls `aclose`:
    a started async generator holds it, and `asyncio.run` finalises async generators
    before closing the loop. (Left to the garbage collector, SDK clients try to close
    themselves on whichever loop runs next and fail noisily.)"""

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    async def get(self) -> C:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is not None:
                return entry[0]
            client = self._factory()
            closer = _close_at_shutdown(client)
            self._clients[loop] = (client, closer)
        await closer.__anext__()  # registers the generator with this loop
        return client

    async def aclose(self) -> None:
        """Close the running loop's client now."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()


async def _close_at_shutdown(client: Any) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


class Redactor:
    """Removes the API key (and anything a server echoes after 'API key') from text."""

    _ECHO = re.compile(r"(api[ _-]?key[^:]*:\s*)\S+", re.IGNORECASE)

    def __init__(self, secret: str | None) -> None:
        self._secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return self._ECHO.sub(r"\1[redacted]", text)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (numeric form only)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def error_message_from_body(body: Any, fallback: str) -> str:
    """The server's own error message, whatever the dialect."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return fallback


def status_error(provider: str, status: int, message: str, retry_after: float | None,
                 redact: Redactor) -> LLMError:
    """Classify an HTTP error status: 429/408/409/5xx retry, the other 4xx fail fast."""
    text = redact(f"{provider}: HTTP {status}: {message}")
    if status == 429:
        return TransientLLMError(text, status=status, retry_after=retry_after,
                                 kind="rate_limit")
    if status >= 500 or status in (408, 409):
        return TransientLLMError(text, status=status, retry_after=retry_after, kind="server")
    kind = PERMANENT_STATUSES.get(status, "bad_request")
    hint = {"auth": " (check the API key environment variable and its permissions)",
            "not_found": " (check the model name and base_url)"}.get(kind, "")
    return PermanentLLMError(text + hint, status=status, kind=kind)


STOP_REASONS = {"stop": "stop", "eos": "stop", "end_turn": "stop", "stop_sequence": "stop",
                "length": "length", "max_tokens": "length"}


def normalise_finish(reason: str | None) -> str:
    """'stop' | 'length' | 'other' whatever the dialect."""
    return STOP_REASONS.get(reason or "", "other")


def malformed(provider: str, what: str) -> TransientLLMError:
    return TransientLLMError(f"{provider}: malformed reply: {what}", kind="malformed")
