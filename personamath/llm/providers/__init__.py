"""Transports behind the engine. Import a provider module only when it is used."""

from personamath.llm.providers.base import Provider

__all__ = ["Provider"]
