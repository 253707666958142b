"""USD prices per 1M tokens, so every row can carry what it cost.

Why a table in code: prices change rarely and a run's cost must be reproducible from its
own code version. Unknown models and the local provider cost 0 (reported as such, not
guessed). Dated model names (gpt-4o-mini-2024-07-18, claude-3-5-haiku-20241022) match
their base name by longest prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICING_AS_OF = "2025-06"


@dataclass(frozen=True)
class Price:
    input_per_m: float
    output_per_m: float


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o1": Price(15.00, 60.00),
    "o1-mini": Price(1.10, 4.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    # Anthropic
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-3-opus": Price(15.00, 75.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "claude-opus-4-5": Price(5.00, 25.00),
}


def price_for(provider: str, model: str) -> Price | None:
    """The price of `model`, or None for local/unknown models."""
    if provider == "local":
        return None
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o-mini" on proxies
    if name in PRICES:
        return PRICES[name]
    matches = [k for k in PRICES if name.startswith(k + "-")]
    return PRICES[max(matches, key=len)] if matches else None


def cost_usd(provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    price = price_for(provider, model)
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_m + completion_tokens * price.output_per_m) / 1e6
