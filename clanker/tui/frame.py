"""What a frame must write, given the last one: pure, so it is tested without a terminal.

A new tail line moves every tail row up by one. Rewriting each moved row would send the whole
panel per line; instead the terminal scrolls that block itself (a scroll region and a line feed
at its bottom), and only the rows that are really new are written.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def scrolled(prev: list[str], plan: Scroll) -> list[str]:
    """The screen as the terminal shows it after `plan`: the block moved up, blank rows below."""
    out = list(prev)
    out[plan.top : plan.bottom + 1 - plan.by] = prev[plan.top + plan.by : plan.bottom + 1]
    out[plan.bottom + 1 - plan.by : plan.bottom + 1] = [""] * plan.by
    return out
