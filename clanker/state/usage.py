"""Tokens, turns and cost: what agent runs use, added up per task, per role and for the fleet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Tokens, turns and cost of one or more agent runs."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    turns: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.turns + other.turns,
            round(self.cost_usd + other.cost_usd, 6),
        )

    @classmethod
    def total(cls, items: Iterable[Usage], start: Usage | None = None) -> Usage:
        """The sum of `items` (and `start`), added field by field in one pass: a screen sums every
        task's usage a few times a second, and `sum()` would build a Usage per task."""
        base = start or cls()
        i, o, cr, cw = base.input, base.output, base.cache_read, base.cache_write
        turns, cost = base.turns, base.cost_usd
        for u in items:
            i += u.input
            o += u.output
            cr += u.cache_read
            cw += u.cache_write
            turns += u.turns
            cost += u.cost_usd
        return cls(i, o, cr, cw, turns, round(cost, 6))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.input - other.input,
            self.output - other.output,
            self.cache_read - other.cache_read,
            self.cache_write - other.cache_write,
            self.turns - other.turns,
            round(self.cost_usd - other.cost_usd, 6),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
            "turns": self.turns,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Usage:
        raw = raw or {}
        return cls(
            int(raw.get("input", 0)),
            int(raw.get("output", 0)),
            int(raw.get("cache_read", 0)),
            int(raw.get("cache_write", 0)),
            int(raw.get("turns", 0)),
            float(raw.get("cost_usd", 0.0)),
        )
