"""Style names → escape sequences for this terminal (256 colours or more, or 8/16 colours)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from blessed import Terminal

from . import header, layout

# style → (256-colour index, 8-colour name, bold in 8 colours)
TAIL_COLOURS: dict[str, tuple[int, str, bool]] = {
    "gray": (245, "white", False),
    "yellow": (220, "yellow", False),
    "red": (196, "red", True),
    "cyan": (51, "cyan", False),
    "green": (46, "green", False),
    "blue": (75, "blue", True),
    "magenta": (201, "magenta", False),
}
PULSE_256 = (58, 100, 142, 184, 190, 229)  # the acid accent from dark to bright


class Styles:
    """Style names → escape sequences for this terminal: 256 colours or more, or 8/16 colours."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        rich = term.number_of_colors >= 256
        fg = cast(Callable[[int], str], term.color)  # typed for NullCallableString's sake as taking str
        names = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
        seq: dict[str, str] = {"": "", "bold": str(term.bold), "dim": str(term.dim)}

        def colour(idx: int, name: str, bold: bool) -> str:
            if rich:
                return str(fg(idx))
            return str(fg(names.index(name))) + (str(term.bold) if bold else "")

        for style, (idx, name, bold) in {**TAIL_COLOURS, **header.PALETTE}.items():
            seq[style] = colour(idx, name, bold)
            seq[style + "_bold"] = seq[style] + str(term.bold)
        if not rich:
            seq["gray"] = str(term.dim)  # 8 colours have no gray: dim default text reads as one
        for level in range(header.PULSE_LEVELS):
            if rich:
                seq[f"pulse{level}"] = str(fg(PULSE_256[level])) + str(term.bold)
            else:  # dim, normal, bold: three steps of brightness are what 8 colours have
                step = (str(term.dim), "", str(term.bold))[level * 3 // header.PULSE_LEVELS]
                seq[f"pulse{level}"] = str(fg(3)) + step
        self.seq = seq
        self.normal = str(term.normal)

    def line(self, row: layout.Row) -> str:
        out = []
        for text, style in row:
            code = self.seq.get(style, "")
            out.append(f"{code}{text}{self.normal}" if code else text)
        return "".join(out)
