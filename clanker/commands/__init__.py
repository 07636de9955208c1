"""One module per command. Each command is a plain typed function that does the work and returns
a `Done`: the exit code and one line to show (the CLI prints it, the TUI's `/` prompt puts it on
the bottom line). Longer output goes through an `echo` callable the caller passes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Done:
    code: int = 0
    message: str = ""


def quiet(_line: str) -> None:
    """An `echo` for callers that only want the result line."""
