"""Settings -> provider -> engine, in one place (the only module that knows all three).

Why: flows and the CLI hand over a TeacherSettings and get a ready engine; the key is
checked first so a missing key fails before any shard starts. Provider modules are
imported lazily so `local` needs no SDK import and `openai` needs no llama.cpp.
"""

from __future__ import annotations

from typing import Any

from personamath.llm.engine import Engine, Ledger
from personamath.llm.providers.base import Provider
from personamath.llm.ratelimit import RateLimiter, TokenBucketLimiter
from personamath.settings import TeacherSettings


def make_provider(settings: TeacherSettings) -> Provider:
    """The transport named by `settings.provider` (keys read from the environment)."""
    if settings.provider == "openai":
        from personamath.llm.providers.openai import OpenAIProvider

        return OpenAIProvider(api_key=settings.api_key(), base_url=settings.base_url,
                              timeout_s=settings.timeout_s)
    if settings.provider == "anthropic":
        from personamath.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=settings.api_key(), base_url=settings.base_url,
                                 timeout_s=settings.timeout_s)
    from personamath.llm.providers.local import LocalProvider

    return LocalProvider(model_path=settings.model_path, n_threads=settings.n_threads)


def make_rate_limiter(settings: TeacherSettings) -> RateLimiter | None:
    if settings.requests_per_minute is None and settings.tokens_per_minute is None:
        return None
    return TokenBucketLimiter(settings.requests_per_minute, settings.tokens_per_minute)


def make_engine(settings: TeacherSettings, *, ledger: Ledger | None = None,
                rate_limiter: RateLimiter | None = None, **engine_kwargs: Any) -> Engine:
    """An Engine configured from settings; extra kwargs (e.g. backoff_base_s) override.

    Raises SettingsError when the provider needs a key that is not set."""
    settings.check_key()
    kwargs: dict[str, Any] = {
        "model": settings.resolved_model,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "concurrency": settings.concurrency,
        "max_retries": settings.max_retries,
        "timeout_s": settings.timeout_s,
        "rate_limiter": rate_limiter or make_rate_limiter(settings),
        "ledger": ledger,
    }
    kwargs.update(engine_kwargs)
    return Engine(make_provider(settings), **kwargs)
