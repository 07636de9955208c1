"""Short units for people: elapsed time, token counts, money. One definition for the tail and
`clanker status`, so the same task reads the same everywhere."""

from __future__ import annotations


def elapsed(seconds: float) -> str:
    """Short units: `45s`, `5m`, `2h`, `3d`, `3mo` (always rounded down)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 30 * 86400:
        return f"{s // 86400}d"
    return f"{s // (30 * 86400)}mo"


def tokens(n: int) -> str:
    """`950`, `1.2k`, `12k`, `1.2M`, `12M` (rounded down, so 999 999 never reads as 1000k)."""
    if n < 1000:
        return str(max(0, n))
    if n < 10_000:
        return f"{n // 1000}.{n % 1000 // 100}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    if n < 10_000_000:
        return f"{n // 1_000_000}.{n % 1_000_000 // 100_000}M"
    return f"{n // 1_000_000}M"


def money(usd: float) -> str:
    """`$0.41`; below a cent `$0.004`, so a cheap run doesn't read as free."""
    return f"${usd:.3f}" if 0 < usd < 0.01 else f"${usd:.2f}"
