"""The planner's history, bounded and relevant (seed: "prune by recency and relevance, build a
size-limited context pack per planning run"). Pure: notes in, the pack and its manifest out.

What goes in first, whatever else there is: the task's own history (when splitting one) and the
newest rollup. Then the other notes by relevance to the work being planned — files they touched
that meet its paths, words they share with it — and by recency, until `limit` characters. The
manifest says, for every note, whether it went in and why (or why not).
"""

from __future__ import annotations

import re

import msgspec

from ..state.locks import keys_for, overlaps

WORD = re.compile(r"[a-z][a-z0-9_]{3,}")
# Words too common to say two notes are about the same thing.
_COMMON = (
    "this that with from have will into when what they them then than were been task tasks file files done "
    "gate main agent clanker should would could there their which while about"
)
COMMON = frozenset(_COMMON.split())


class Note(msgspec.Struct, frozen=True):
    key: str  # `T3/work-2`, `rollup/2026-W48`
    task: str  # the task it is about ("" for a rollup)
    text: str
    mtime: float
    paths: tuple[str, ...] = ()  # files it touched
    rollup: bool = False


class Entry(msgspec.Struct, frozen=True):
    key: str
    included: bool
    why: str
    chars: int


def terms(text: str) -> frozenset[str]:
    return frozenset(w for w in WORD.findall(text.lower()) if w not in COMMON)


def relevance(note: Note, paths: tuple[str, ...], words: frozenset[str]) -> tuple[int, str]:
    """How much a note bears on the work: meeting paths count most, then shared words."""
    mine = keys_for(paths)
    if mine and note.paths and overlaps(keys_for(note.paths), mine):
        shared = sorted(keys_for(note.paths) & mine) or sorted(keys_for(note.paths))
        return 100, f"touched {shared[0]}, which the work touches"
    common = sorted(terms(note.text) & words)
    if common:
        return len(common), "shares " + ", ".join(common[:4])
    return 0, "recent"


def pack(
    notes: list[Note], limit: int, task: str | None = None, paths: tuple[str, ...] = (), about: str = ""
) -> tuple[str, list[Entry]]:
    """The notes to give a planning run (newest first within each rank), at most `limit`
    characters, and the manifest of every note."""
    words = terms(about)
    newest_rollup = max((n for n in notes if n.rollup), key=lambda n: n.mtime, default=None)
    must = [n for n in notes if task and n.task == task]
    must.sort(key=lambda n: -n.mtime)
    if newest_rollup is not None:
        must = [newest_rollup, *(n for n in must if n is not newest_rollup)]
    rest = [n for n in notes if n not in must]
    scored = sorted(((relevance(n, paths, words), n) for n in rest), key=lambda sn: (-sn[0][0], -sn[1].mtime))
    out: list[str] = []
    manifest: list[Entry] = []
    used = 0
    for n in must:
        why = "the newest rollup" if n.rollup else "the task's own history"
        room = limit - used - 2
        if room <= 0:
            manifest.append(Entry(n.key, False, f"{why}, but the pack is full", len(n.text)))
            continue
        text = n.text if len(n.text) <= room else n.text[: max(0, room - 12)] + "\n… (cut)"
        text = text[:room]
        out.append(text)
        used += len(text) + 2
        manifest.append(Entry(n.key, True, why + ("" if text == n.text else " (cut to fit)"), len(text)))
    for (_score, why), n in scored:
        if used + len(n.text) + 2 > limit:
            manifest.append(Entry(n.key, False, f"{why}; no room left under {limit} characters", len(n.text)))
            continue
        out.append(n.text)
        used += len(n.text) + 2
        manifest.append(Entry(n.key, True, why, len(n.text)))
    return "\n\n".join(out), manifest
