"""Outcome classification from an agent's texts, and reset times from usage-limit messages.

Adapters classify from structured fields first; these text rules are the second resort, and the
exit code the last (exit codes lie: claude has exited 0 on API errors, aider always exits 0).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import Outcome

# Order matters: the first rule that matches wins.
RULES: list[tuple[Outcome, re.Pattern[str]]] = [
    (Outcome.AUTH, re.compile(
        r"not logged in|please run /login|invalid api key|invalid x-api-key|authentication_error|"
        r"authentication failed|unauthorized|not able to authenticate|permission was denied|"
        r"\b401\b|\b403\b|api key not valid|invalid_api_key|missing api key|no api key",
        re.I)),
    (Outcome.OUT_OF_BUDGET, re.compile(
        r"usage limit|hit your (?:[\w-]+ )?limit|credit balance is too low|insufficient[_ ]credits|"
        r"insufficient_quota|quota exceeded|exceeded your current quota|out of credits|billing|"
        r"exhausted your daily quota|context (?:window|length)|prompt is too long|maximum context|"
        r"max(?:imum)?[ _-]turns|error_max_turns|error_max_budget",
        re.I)),
    (Outcome.TRANSIENT, re.compile(
        r"\b429\b|(?:status|error|code|\()\W{0,3}5\d\d\b|\b5\d\d\W{0,3}(?:internal|bad gateway|service|gateway|"
        r"overloaded|server)|overloaded|rate.?limit|too many requests|timed? ?out|timeout|"
        r"unable to connect|connection (?:refused|reset|failed|error)|econnrefused|econnreset|socket hang up|"
        r"stream disconnected|fetch failed|network|servers are down|high demand|temporarily unavailable|"
        r"service unavailable|resource_exhausted|try again",
        re.I)),
]  # fmt: skip


def classify_text(text: str) -> Outcome | None:
    for outcome, pattern in RULES:
        if pattern.search(text):
            return outcome
    return None


_EPOCH = re.compile(r"(?:limit reached|resetsAt|reset(?:s)?(?: at)?)\D{0,3}(1[6-9]\d{8})", re.I)
# An optional date first: codex says `try again at Mar 10th, 2026 3:39 AM` when it is not today.
_CLOCK = re.compile(
    r"(?:resets?|try again at)\s+(?:at\s+)?(?:([a-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4}),?\s+)?"
    r"(\d{1,2})(?::(\d{2}))?\s*([ap]m)?",
    re.I,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_IN = re.compile(r"(?:try again|resets?) in\s+((?:\d+\s*(?:second|minute|hour|day)s?[\s,]*(?:and\s+)?)+)", re.I)
_AMOUNT = re.compile(r"(\d+)\s*(second|minute|hour|day)", re.I)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


_TZ = re.compile(r"\s*\(([A-Za-z_]+(?:/[A-Za-z_+-]+)*)\)")


def _zone(after: str) -> ZoneInfo | None:
    """A time zone named right after the clock time, like claude's `resets 6:39pm (UTC)`."""
    m = _TZ.match(after)
    if not m:
        return None
    try:
        return ZoneInfo(m.group(1))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def reset_time(text: str, now: float | None = None) -> float | None:
    """When a usage limit resets, from texts like `Claude AI usage limit reached|1767225600`,
    `You've hit your limit · resets 3pm`, `Try again at 3:05 PM`, `try again in 20 minutes`."""
    now = time.time() if now is None else now
    m = _EPOCH.search(text)
    if m:
        return float(m.group(1))
    m = _IN.search(text)
    if m:  # "in 20 minutes", "in 2 days 3 hours", "in 1 hour and 5 minutes"
        return now + sum(int(n) * _UNITS[u.lower()] for n, u in _AMOUNT.findall(m.group(1)))
    m = _CLOCK.search(text)
    if m:
        month, day, year = (m.group(1) or "").lower(), m.group(2), m.group(3)
        hour, minute, ampm = int(m.group(4)), int(m.group(5) or 0), (m.group(6) or "").lower()
        if ampm == "pm" and hour < 12:
            hour += 12
        if ampm == "am" and hour == 12:
            hour = 0
        if hour > 23 or minute > 59:
            return None
        zone = _zone(text[m.end() :])
        if year:
            if month not in _MONTHS:
                return None
            try:
                return datetime(int(year), _MONTHS.index(month) + 1, int(day), hour, minute, tzinfo=zone).timestamp()
            except ValueError:
                return None
        base = datetime.fromtimestamp(now, zone)
        at = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at.timestamp() <= now:
            at += timedelta(days=1)
        return at.timestamp()
    return None
