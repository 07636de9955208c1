"""What a frame must write, given the last one: pure, so it is tested without a terminal.

A new tail line moves every tail row up by one. Rewriting each moved row would send the whole
panel per line; instead the terminal scrolls that block itself (a scroll region and a line feed
at its bottom), and only the rows that are really new are written. Within a row that changed,
only the cells from the first to the last that differ are written (a heartbeat age, a count, the
RUN label's frame), not the whole row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from wcwidth import wcwidth

T = TypeVar("T")
Cell = tuple[str | None, str]  # a character and its style; None: the right half of a wide one

MAX_SHIFT = 8  # lines one frame may scroll by (more, and the rows are simply redrawn)
MIN_RUN = 3  # moved rows worth a scroll


@dataclass(frozen=True)
class Scroll:
    top: int  # first row of the region
    bottom: int  # last row of the region (inclusive)
    by: int  # lines it moves up


def scroll_plan(prev: list[str], rows: list[str]) -> Scroll | None:
    """The block whose rows are last frame's rows moved up, if scrolling it saves rewrites."""
    best: Scroll | None = None
    best_run = MIN_RUN - 1
    n = min(len(prev), len(rows))
    for by in range(1, MAX_SHIFT + 1):
        y = 0
        while y + by < n:
            if rows[y] == prev[y + by] and rows[y] != prev[y]:
                start = y
                while y + by < n and rows[y] == prev[y + by]:
                    y += 1
                if y - start > best_run:
                    best_run = y - start
                    best = Scroll(start, y - 1 + by, by)
            else:
                y += 1
    return best


def scrolled(prev: list[T], plan: Scroll, blank: T) -> list[T]:
    """The screen as the terminal shows it after `plan`: the block moved up, blank rows below."""
    out = list(prev)
    out[plan.top : plan.bottom + 1 - plan.by] = prev[plan.top + plan.by : plan.bottom + 1]
    out[plan.bottom + 1 - plan.by : plan.bottom + 1] = [blank] * plan.by
    return out


def cells_of(row: list[tuple[str, str]]) -> list[Cell]:
    out: list[Cell] = []
    for text, style in row:
        if text.isascii() and text.isprintable():  # one cell per character: no width to look up
            out += [(c, style) for c in text]
            continue
        for c in text:
            w = max(0, wcwidth(c))
            if w:
                out.append((c, style))
                out += [(None, style)] * (w - 1)
    return out


def changed(old: list[Cell], new: list[Cell]) -> tuple[int, int] | None:
    """The cells [start, end) of `new` to write so the row shows `new` over `old`: from the first
    cell that differs to the last, widened to whole wide characters. None if nothing differs."""
    if old == new:
        return None
    n = len(new)
    start = 0
    while start < n and start < len(old) and old[start] == new[start]:
        start += 1
    if start >= n:
        return (0, n) if n else None  # only cells beyond the new row differ: a shorter row, redrawn
    end = n
    while end > start and end - 1 < len(old) and old[end - 1] == new[end - 1]:
        end -= 1
    while start > 0 and new[start][0] is None:
        start -= 1  # never begin on the right half of a wide character
    while end < n and new[end][0] is None:
        end += 1
    return start, end
