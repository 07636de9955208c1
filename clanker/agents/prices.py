"""Token prices, for agents that report tokens but no cost (USD per million tokens).

A small default table; `prices:` in clanker.yaml overrides or extends it. A model matches the
longest key it starts with, so `gpt-5.5-codex` is priced as `gpt-5.5` if listed, else `gpt-5`.
"""

from __future__ import annotations

from ..config import Price
from ..state.usage import Usage

DEFAULT: dict[str, Price] = {
    "claude-opus-4": Price(15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4": Price(1.0, 5.0, 0.1, 1.25),
    "claude-3-5-haiku": Price(0.8, 4.0, 0.08, 1.0),
    "gpt-5": Price(1.25, 10.0, 0.125, 0.0),
    "gpt-5-mini": Price(0.25, 2.0, 0.025, 0.0),
    "gpt-4.1": Price(2.0, 8.0, 0.5, 0.0),
    "o3": Price(2.0, 8.0, 0.5, 0.0),
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31, 0.0),
    "gemini-2.5-flash": Price(0.3, 2.5, 0.075, 0.0),
    "gemini-3-pro": Price(2.0, 12.0, 0.2, 0.0),
}


class PricedAdapter:
    """For adapters whose agent reports tokens but no cost (codex, gemini): the parser prices the
    tokens with the model and table of the request that `launch` was given."""

    default_model = ""

    def __init__(self) -> None:
        self.model: str | None = None
        self.prices: dict[str, Price] = {}

    def remember(self, model: str | None, prices: dict[str, Price]) -> str:
        self.model = model or self.default_model
        self.prices = dict(prices)
        return self.model


def lookup(model: str | None, table: dict[str, Price] | None = None) -> Price | None:
    if not model:
        return None
    merged = {**DEFAULT, **(table or {})}
    if model in merged:
        return merged[model]
    keys = sorted((k for k in merged if model.startswith(k)), key=len, reverse=True)
    return merged[keys[0]] if keys else None


def cost(model: str | None, usage: Usage, table: dict[str, Price] | None = None) -> float:
    price = lookup(model, table)
    if price is None:
        return 0.0
    total = (
        usage.input * price.input
        + usage.output * price.output
        + usage.cache_read * price.cache_read
        + usage.cache_write * price.cache_write
    )
    return round(total / 1e6, 6)
