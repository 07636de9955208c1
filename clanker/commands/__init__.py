"""One module per command. Each command is a plain typed function that does the work and returns
a `Done`: the exit code and one line to show (the CLI prints it, the TUI's `/` prompt puts it on
the bottom line). Longer output goes through an `echo` callable the caller passes in."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

Echo = Callable[[str], None]


class Done(msgspec.Struct, frozen=True):
    code: int = 0
    message: str = ""


def quiet(_line: str) -> None:
    """An `echo` for callers that only want the result line."""
