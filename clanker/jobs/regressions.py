"""Regression tasks: main's gate fails. Highest priority, assigned at once, carrying the failing
output; the same failure is never filed twice while a task for it is open."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from ..project.gate import GateResult
from ..state import events as ev
from ..state.events import Event
from ..state.model import TERMINAL, State
from ..system import git

PRIORITY = 1000
_VOLATILE = re.compile(r"\d+(?:\.\d+)?(?:s|ms)?|0x[0-9a-f]+|/tmp/\S+", re.I)


def signature(result: GateResult) -> str:
    """What identifies a failure across runs: the failing command and its last lines, with
    timings, addresses and temp paths taken out."""
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()][-6:]
    text = (result.failed or "") + "\n" + "\n".join(_VOLATILE.sub("#", ln) for ln in lines)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def open_for(state: State, sig: str) -> str | None:
    for t in state.tasks.values():
        if t.signature == sig and "regression" in t.tags and t.state not in TERMINAL:
            return t.id
    return None


def next_id(state: State) -> str:
    n = 1 + sum(1 for t in state.tasks.values() if "regression" in t.tags)
    while state.known(f"R{n}"):
        n += 1
    return f"R{n}"


def events(state: State, actor: str, result: GateResult, sha: str, where: str, fix_prompt: str) -> list[Event]:
    """`main.red`, plus a regression task unless one for the same failure is still open."""
    sig = signature(result)
    evs: list[Event] = [ev.MainRed(actor=actor, sha=sha, signature=sig, where=where)]
    if open_for(state, sig):
        return evs
    tid = next_id(state)
    prompt = (
        f"main's gate fails at {sha[:10]} (found by {where}): `{result.failed}`.\n"
        "Make the gate pass again without losing the intent of recent changes.\n\n"
        f"Failing output (tail):\n{result.output[-3000:]}\n"
    )
    if fix_prompt:
        prompt += "\n" + fix_prompt + "\n"
    evs.append(
        ev.TaskAdded(
            actor=actor,
            task=tid,
            title=f"Regression: `{result.failed}` fails on main",
            prompt=prompt,
            priority=PRIORITY,
            tags=("regression",),
            signature=sig,
        )
    )
    return evs


def stale(state: State, tested: str, head: str, older: Callable[[str, str], bool]) -> bool:
    """Is a failure found at `tested` out of date? Yes when main has moved on to a commit clanker
    landed (its gate passed on that very tree) that descends from `tested`."""
    if head == tested:
        return False
    landed = {t.sha for t in state.tasks.values() if t.sha}
    return (head in landed or head in state.archive.shas) and older(tested, head)


def moved_on(state: State, repo: Path, main: str, tested: str) -> bool:
    """`stale`, with main's head read now. Call it in the transaction that would file the
    regression (under the queue lock, where landings are recorded): looked at before it, a fix
    landing in between makes the old failure look new — its regression is done, so not open — and
    files it a second time. (A git process runs only when main moved to a landed commit.)"""
    head = git.branch_head(repo, main) or tested
    return stale(state, tested, head, lambda a, b: git.is_ancestor(repo, a, b))


def mentioned_files(output: str, candidates: set[str]) -> set[str]:
    """Paths from `candidates` (files in the repo) that the failing output names."""
    return {f for f in candidates if f and f in output}
