"""Text that came from agents or users, made safe to print on a terminal."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b.|[\x00-\x08\x0b-\x1f\x7f]")


def sanitize(text: str) -> str:
    """Strip escape sequences and control characters (newlines and tabs stay), so text from an agent
    or a task title can't retitle or repaint a terminal."""
    return _CONTROL.sub("", text)


def one_line(text: str) -> str:
    """An error message as exactly one line: control characters (newlines, carriage returns, escapes)
    from a user's file or argument are shown escaped (`\\r`) instead of acting. That is C1 too
    (NEL, U+0085, ends a line for Python; CSI, U+009B, starts an escape in a terminal) and the
    Unicode line and paragraph separators."""
    return re.sub(
        r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: m.group().encode("unicode_escape").decode("ascii"), text
    )
