"""Secrets never reach events, logs, state or panes: every value clanker injects is registered
here, and every line clanker writes from an agent or into the event log passes `redact`."""

from __future__ import annotations

import os
import re

_known: set[str] = set()
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MIN_LEN = 8  # shorter values would redact ordinary words


def register(value: str | None) -> None:
    if value and len(value) >= MIN_LEN:
        _known.add(value)


_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def register_env(env: dict[str, str] | None = None) -> None:
    """Treat the values of secret-looking variables (…_KEY, …_TOKEN, …) as secrets, and the
    password of any URL in a variable (`postgres://user:PASSWORD@host/db`)."""
    for name, value in (env if env is not None else os.environ).items():
        if looks_secret(name):
            register(value)
        for password in _URL_PASSWORD.findall(value or ""):
            register(password)


def register_names(names: list[str] | tuple[str, ...]) -> None:
    """The values of these variables are secrets whatever their names (env.pass, credentials)."""
    for name in names:
        register(os.environ.get(name))


def redact(text: str) -> str:
    if not _known or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def clear() -> None:
    _known.clear()
