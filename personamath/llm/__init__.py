"""Provider-neutral chat engine (DESIGN.md §4): types, Engine, make_engine."""

from personamath.llm.engine import Engine, EngineStats, Ledger
from personamath.llm.factory import make_engine, make_provider
from personamath.llm.providers.base import Provider
from personamath.llm.ratelimit import RateLimiter, TokenBucketLimiter
from personamath.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMError,
    Message,
    PermanentLLMError,
    RetriesExhausted,
    TransientLLMError,
    Usage,
)

__all__ = [
    "ChatRequest", "ChatResponse", "Engine", "EngineStats", "LLMError", "Ledger",
    "Message", "PermanentLLMError", "Provider", "RateLimiter", "RetriesExhausted",
    "TokenBucketLimiter", "TransientLLMError", "Usage", "make_engine", "make_provider",
]
