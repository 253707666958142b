"""Provider-neutral request/response types for the LLM engine.

Prompt building and answer parsing live elsewhere (prompts.py, grading/); these types
only carry what a transport needs, so every provider can be swapped behind them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to send. `sample_index` distinguishes repeated samples of
    the same prompt (it enters the request key, so ledgers and caches keep them apart)."""

    messages: tuple[Message, ...]
    model: str
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int | None = None
    sample_index: int = 0
    stop: tuple[str, ...] = ()
    tag: str = ""  # free-form label for logs and stats ("solve", "rewrite", "reflect")

    def key(self, provider: str) -> str:
        """Stable hash of everything that determines the reply (request-ledger key)."""
        payload = {
            "provider": provider,
            "model": self.model,
            "messages": [asdict(m) for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "sample_index": self.sample_index,
            "stop": list(self.stop),
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChatResponse:
    """A provider's reply. `finish_reason` is normalised to 'stop' | 'length' | 'other':
    a 'length' reply is truncated and callers must treat it as a failed attempt."""

    text: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    request_id: str | None = None
    attempts: int = 1
    model: str | None = None  # the model that answered (providers may report a dated name)
    provider: str = ""
    from_ledger: bool = False  # replayed from a request ledger: no request was sent

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class LLMError(Exception):
    """Base class of engine errors. `transient` says whether a retry may succeed."""

    transient: bool = False

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # Short label for stats: rate_limit, server, timeout, connection, malformed,
        # auth, bad_request, not_found, config, other.
        self.kind = kind or ("other" if status is None else f"http_{status}")


class TransientLLMError(LLMError):
    """429, 5xx, timeouts, connection resets, malformed replies: retried with backoff."""

    transient = True


class PermanentLLMError(LLMError):
    """400/401/403/404 and configuration errors: never retried."""

    transient = False


class RetriesExhausted(LLMError):
    """A transient error that persisted through every retry."""

    transient = True
