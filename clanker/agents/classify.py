"""Outcome classification from an agent's texts, and reset times from usage-limit messages.

Adapters classify from structured fields first; these text rules are the second resort, and the
exit code the last (exit codes lie: claude has exited 0 on API errors, aider always exits 0).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from .base import Outcome

# Order matters: the first rule that matches wins.
RULES: list[tuple[Outcome, re.Pattern[str]]] = [
    (Outcome.AUTH, re.compile(
        r"not logged in|please run /login|invalid api key|invalid x-api-key|authentication_error|"
        r"authentication failed|unauthorized|not able to authenticate|permission was denied|"
        r"\b401\b|\b403\b|api key not valid|invalid_api_key|missing api key|no api key",
        re.I)),
    (Outcome.OUT_OF_BUDGET, re.compile(
        r"usage limit|hit your (?:session |weekly |daily )?limit|credit balance is too low|insufficient[_ ]credits|"
        r"insufficient_quota|quota exceeded|exceeded your current quota|out of credits|billing|"
        r"exhausted your daily quota|context (?:window|length)|prompt is too long|maximum context|"
        r"max(?:imum)?[ _-]turns|error_max_turns|error_max_budget",
        re.I)),
    (Outcome.TRANSIENT, re.compile(
        r"\b429\b|\b5\d\d\b|overloaded|rate.?limit|too many requests|timed? ?out|timeout|"
        r"unable to connect|connection (?:refused|reset|failed|error)|econnrefused|econnreset|socket hang up|"
        r"stream disconnected|network|servers are down|high demand|temporarily unavailable|service unavailable|"
        r"resource_exhausted|try again",
        re.I)),
]  # fmt: skip


def classify_text(text: str) -> Outcome | None:
    for outcome, pattern in RULES:
        if pattern.search(text):
            return outcome
    return None


_EPOCH = re.compile(r"(?:limit reached|resetsAt|reset(?:s)?(?: at)?)\D{0,3}(1[6-9]\d{8})", re.I)
_CLOCK = re.compile(r"(?:resets?|try again at)\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]m)?", re.I)
_IN = re.compile(r"(?:try again|resets?) in\s+(\d+)\s*(second|minute|hour|day)s?", re.I)


def reset_time(text: str, now: float | None = None) -> float | None:
    """When a usage limit resets, from texts like `Claude AI usage limit reached|1767225600`,
    `You've hit your limit · resets 3pm`, `Try again at 3:05 PM`, `try again in 20 minutes`."""
    now = time.time() if now is None else now
    m = _EPOCH.search(text)
    if m:
        return float(m.group(1))
    m = _IN.search(text)
    if m:
        unit = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[m.group(2).lower()]
        return now + int(m.group(1)) * unit
    m = _CLOCK.search(text)
    if m:
        hour, minute, ampm = int(m.group(1)), int(m.group(2) or 0), (m.group(3) or "").lower()
        if ampm == "pm" and hour < 12:
            hour += 12
        if ampm == "am" and hour == 12:
            hour = 0
        if hour > 23 or minute > 59:
            return None
        base = datetime.fromtimestamp(now)
        at = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at.timestamp() <= now:
            at += timedelta(days=1)
        return at.timestamp()
    return None
