"""Weekly rollups (seed: "keep the last N task summaries plus weekly rollups"): when an ISO week
has closed, its notes are summed up in `history/rollups/<week>.md` — what landed, the hazards
met (recurring ones first), the TODOs left, the decisions taken — by this deterministic
summariser. The week's own notes stay on disk (`clanker history --week`), but once a rollup
covers them they leave the planner's window: the rollup speaks for them.
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
    lines = [f"# Rollup {week}", "", f"{len(mine)} notes about {len(tasks)} tasks.", ""]

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


def write_due(paths: Paths, notes: list[Note], state: State, now: float) -> list[str]:
    """Write the rollup of every week that is due; the weeks written."""
    weeks = due(notes, now)
    for week in weeks:
        atomic.write_text(paths.history / "rollups" / f"{week}.md", redact(text(week, notes, state)))
    return weeks


def covered(notes: list[Note]) -> str | None:
    """The newest week a rollup covers: notes up to it leave the planner's window."""
    return max((n.key.split("/", 1)[1] for n in notes if n.rollup), default=None)
