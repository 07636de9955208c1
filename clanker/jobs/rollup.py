"""Weekly rollups (seed: "keep the last N task summaries plus weekly rollups"): when an ISO week
has closed, its notes are summed up in `history/rollups/<week>.md` — what landed, the hazards
met (recurring ones first), the TODOs left, the decisions still in force. The planner agent
writes the week that just closed (a plan job asked for by the controller, given this module's
draft as its facts); older weeks, a fleet without a planner, and a planner answer that is not
a rollup get the deterministic summariser's. The week's own notes stay on disk (`clanker
history --week`), but once a rollup covers them they leave the planner's window: the rollup
speaks for them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from ..state import atomic
from ..state.model import State, TaskState
from ..state.paths import Paths
from ..state.secrets import redact
from .contextpack import Note

SECTION = "## {}\n(.*?)(?:\n## |\\Z)"


def week_of(ts: float) -> str:
    year, week, _ = dt.datetime.fromtimestamp(ts).isocalendar()
    return f"{year}-W{week:02d}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _items(note: Note, heading: str) -> list[str]:
    m = re.search(SECTION.format(re.escape(heading)), note.text, re.S)
    if not m:
        return []
    return [line[2:].strip() for line in m.group(1).splitlines() if line.startswith("- ")]


def due(notes: list[Note], now: float) -> list[str]:
    """Weeks that have closed, have notes, and have no rollup yet (oldest first)."""
    this = week_of(now)
    rolled = {n.key.split("/", 1)[1] for n in notes if n.rollup}
    weeks = {week_of(n.mtime) for n in notes if not n.rollup}
    return sorted(w for w in weeks if w < this and w not in rolled)


def text(week: str, notes: list[Note], state: State) -> str:
    """The rollup of one week's notes (pure)."""
    mine = [n for n in notes if not n.rollup and week_of(n.mtime) == week]
    tasks = sorted({n.task for n in mine})
    landed = [t for t in tasks if state.state_of(t) == TaskState.DONE]
    hazards = Counter(h for n in mine for h in _items(n, "Errors, fixes and known hazards"))
    todos = list(dict.fromkeys(t for n in mine for t in _items(n, "TODOs and follow-ups")))
    decisions = list(dict.fromkeys(d for n in mine for d in _items(n, "Decisions and rationale")))
    open_tasks = [t for t in tasks if state.state_of(t) not in (TaskState.DONE, TaskState.CANCELLED, None)]
    lines = [f"# Rollup {week}", "", f"{_n(len(mine), 'note')} about {_n(len(tasks), 'task')}.", ""]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.extend([f"## {title}", *(f"- {i}" for i in items), ""])

    def named(t: str) -> str:
        task = state.task(t)
        return f"{t}: {task.title}" if task else t

    section("Landed", [named(t) for t in landed])
    section("Still open", [f"{t} ({state.state_of(t)})" for t in open_tasks])
    section("Errors, fixes and known hazards", [f"{h} (×{c})" if c > 1 else h for h, c in hazards.most_common()])
    section("TODOs and follow-ups", todos)
    section("Decisions and rationale", decisions)
    return "\n".join(lines)


ASK = "rollup:"  # a plan request for the planner to write a week's rollup: `rollup:2026-W48`
HEADINGS = ("Landed", "Recurring hazards", "Open TODOs", "Decisions still in force")


def week_asked(request: str | None) -> str | None:
    """The week a plan request asks the planner to roll up, or None."""
    return request[len(ASK) :] if request and request.startswith(ASK) else None


def asked(state: State) -> set[str]:
    """The weeks the planner has been asked to roll up and has not yet (queued or under way)."""
    return {w for r in (*state.plan_requests, state.plan_request) if (w := week_asked(r))}


def split(weeks: list[str], planner: bool, pending: set[str]) -> tuple[str | None, list[str]]:
    """Who writes which due week, oldest first (pure): the planner the newest one — a first run
    on months of notes asks it for one rollup, not one per week — and the summariser the rest,
    or all of them when there is no planner. A week already asked for waits for the planner."""
    newest = weeks[-1] if weeks else None
    ask = newest if planner and newest is not None and newest not in pending else None
    return ask, [w for w in weeks if w not in pending and w != ask]


def save(paths: Paths, week: str, body: str) -> None:
    atomic.write_text(paths.history / "rollups" / f"{week}.md", redact(body))


def write_closed(
    paths: Paths, notes: list[Note], state: State, now: float, planner: bool
) -> tuple[str | None, list[tuple[str, int]]]:
    """The closed weeks without a rollup, seen to (split decides who writes which): the week to
    ask the planner for (None: none), and the weeks the summariser wrote now, with their notes."""
    ask, write = split(due(notes, now), planner, asked(state))
    for week in write:
        save(paths, week, text(week, notes, state))
    return ask, [(w, len(of_week(notes, w))) for w in write]


def of_week(notes: list[Note], week: str) -> list[Note]:
    return [n for n in notes if not n.rollup and week_of(n.mtime) == week]


def from_planner(week: str, answer: str, who: str, count: int) -> str | None:
    """The planner's answer as the week's rollup: its sections from the first known heading on,
    or None when it wrote none of them (then the summariser's stands in)."""
    at = [m.start() for h in HEADINGS if (m := re.search(rf"^## {re.escape(h)}\s*$", answer, re.M))]
    if not at:
        return None
    body = answer[min(at) :].strip()
    return f"# Rollup {week}\n\nWritten by the planner ({who}) from {_n(count, 'note')}.\n\n{body}\n"


def covered(notes: list[Note]) -> str | None:
    """The newest week a rollup covers: notes up to it leave the planner's window."""
    return max((n.key.split("/", 1)[1] for n in notes if n.rollup), default=None)
