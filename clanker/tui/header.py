"""The header: a figlet banner in a glitchcore palette, and the RUN label that pulses while work runs.

Pure: everything here returns styled segments (text, style name); `app.Styles` turns style names
into terminal sequences for 8, 16 or 256+ colours.
"""

from __future__ import annotations

import math

Seg = tuple[str, str]  # (text, style name)

# figlet -f small CLANKER. Four rows, so the whole screen still fits in 80×24.
BANNER = (
    r"  ___ _      _   _  _ _  _____ ___ ",
    r" / __| |    /_\ | \| | |/ / __| _ \ ",
    r"| (__| |__ / _ \| .` | ' <| _||   / ",
    r" \___|____/_/ \_\_|\_|_|\_\___|_|_\ ",
)
BANNER_WIDTH = max(len(r) for r in BANNER)

# The glitchcore palette: four colours, as (256-colour index, 8-colour name, bold in 8 colours).
PALETTE: dict[str, tuple[int, str, bool]] = {
    "hot": (201, "magenta", True),  # hot magenta: the banner and titles
    "ice": (51, "cyan", True),  # electric cyan: the banner's second half, rules
    "acid": (190, "yellow", True),  # acid lime: the accent (selection, judge cost, prompt)
    "void": (93, "blue", False),  # violet: the glitch shadow, panel rules
}

PULSE_LEVELS = 6  # brightness steps of the RUN label (256 colours; 8 colours fold them to 3)
PULSE_FRAMES = 12  # one wave across the label per 12 frames (1.5 s at 8 frames a second)


def banner() -> list[list[Seg]]:
    """The banner rows. A 'torn' second row, shifted right by one cell in the shadow colour, and
    the split between hot and ice halfway down, give the glitch look without any animation."""
    rows: list[list[Seg]] = []
    for i, text in enumerate(BANNER):
        text = text.ljust(BANNER_WIDTH)
        if i == 1:
            rows.append([(" ", "void"), (text[:9], "void"), (text[9:-1], "hot")])
        else:
            rows.append([(text, "hot" if i < 2 else "ice")])
    return rows


def brightness(index: int, frame: int) -> int:
    """Brightness level (0 … PULSE_LEVELS-1) of character `index` of the label at `frame`: a wave
    that travels left to right."""
    phase = 2 * math.pi * (frame / PULSE_FRAMES) - index * 0.9
    return round((PULSE_LEVELS - 1) * (0.5 + 0.5 * math.sin(phase)))


def run_label(mode: str, frame: int) -> list[Seg]:
    """`RUN` pulsing per character while work runs; `IDLE`, `PAUSED`, `ENV` (the gate preflight
    failed) or `BUDGET` (a budget is spent), still, otherwise."""
    if mode == "run":
        return [(ch, f"pulse{brightness(i, frame)}") for i, ch in enumerate("RUN")]
    if mode == "paused":
        return [("PAUSED", "yellow")]
    if mode == "env":  # the gate preflight failed: nothing is dispatched
        return [("ENV", "red")]
    if mode == "budget":  # a budget is spent: no agent run starts
        return [("BUDGET", "red")]
    return [("IDLE", "dim")]
