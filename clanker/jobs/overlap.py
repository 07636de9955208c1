"""Overlap between live tasks, caught before any judge sees a conflict (DESIGN §5).

A task that declares no paths holds no ownership keys when it is claimed, so two such tasks may
edit the same file at once. clanker notices three ways, earliest first:

1. while the agents work, the worktree watcher (`watch.py`) records the files each task touches
   (`task.touched`: its keys grow live) and flags a file another live task touched or holds
   (a `RISK` conflict line);
2. when a task is submitted, its branch is replayed onto `main` and onto each earlier live task's
   branch it overlaps with `git merge-tree` (in memory): a conflict with `main` sends it straight
   back to its author (`task.refresh`), a conflict with an earlier task holds it (`task.held`) —
   it is not judged until that task has landed;
3. when `main` moves, every submitted task is replayed onto the new head: one that no longer
   merges goes back to its author to merge `main` before a judge spends time on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..config import Config
from ..state import events as ev
from ..state.events import Event
from ..state.locks import keys_for, overlaps
from ..state.model import HOLDS_KEYS, State, Task, TaskState
from ..system import git


def order(t: Task) -> tuple[float, float, str]:
    """Which of two tasks came first: the earlier claim, then the earlier add, then the id. The
    log keeps times to the millisecond, so two claims can tie: without the id neither task would
    be held behind the other, and their conflict would reach a judge."""
    return (t.first_started if t.first_started is not None else float("inf"), t.created, t.id)


def shared_files(other: Task, files: Iterable[str], owner_files: tuple[str, ...]) -> list[str]:
    """The `files` that `other` touched, or that lie under the paths it declared."""
    declared = keys_for(other.paths, owner_files)
    touched = set(other.touched)
    return sorted(f for f in files if f in touched or (declared and overlaps(keys_for([f], owner_files), declared)))


def refresh_events(cfg: Config, task: Task, actor: str, reasons: str, files: list[str]) -> list[Event]:
    """Send a submitted task back to its author to merge main (or block it past its conflict budget)."""
    evs = [
        ev.Risk(actor=actor, task=task.id, slave=actor, kind="conflict", message=reasons, files=tuple(files)),
        ev.TaskRefresh(actor=actor, task=task.id, slave=actor, reasons=reasons, files=tuple(files)),
    ]
    if task.conflicts + 1 > cfg.conflict_budget:
        why = f"conflict budget ({cfg.conflict_budget}) spent: {reasons}; re-scope or split it"
        evs.append(ev.TaskBlocked(actor=actor, task=task.id, reason=why))
        if cfg.planner_agent is not None:
            evs.append(ev.PlanRequested(actor=actor, request=task.id, reason="blocked"))
    return evs


def at_submit(
    cfg: Config, state: State, task: Task, files: list[str], actor: str, contains: str | None = None
) -> list[Event]:
    """Events to append right after `task.submitted`: a refresh if the branch no longer merges into
    main, else holds behind earlier live tasks whose branches it conflicts with (or that are
    still being worked on and touched the same files). `contains`: a commit of main the branch
    is known to contain (while main is still there, the branch merges into it)."""
    repo, main = cfg.repo, cfg.mainline_branch
    head = git.branch_head(repo, main)
    unmoved = contains is not None and head == contains
    # main moved only by the fleet's landings, none of them near these files: it merges cleanly.
    since = landed_since(state, contains, head) if contains is not None and head is not None else None
    apart = since is not None and not may_meet(files, since)
    merged = None if unmoved or apart else git.merge_tree(repo, main, task.branch)
    if merged is not None and merged.tree is None:
        files_ = list(merged.conflicts)
        reasons = f"{main} moved and now conflicts with it in: {', '.join(files_)}; merge {main} and resolve"
        return refresh_events(cfg, task, actor, reasons, files_)
    behind: list[str] = []
    evs: list[Event] = []
    for other in sorted(state.tasks.values(), key=order):
        if other.id == task.id or other.state not in HOLDS_KEYS or order(other) >= order(task):
            continue
        shared = shared_files(other, files, cfg.owner_files)
        if not shared:
            continue
        if other.state in (TaskState.CLAIMED, TaskState.REWORK) or not git.branch_exists(repo, other.branch):
            why = f"{other.id} is still being worked on and touched {', '.join(shared[:3])} too"
        else:
            probe = git.merge_tree(repo, other.branch, task.branch)
            if probe.tree is not None:
                continue  # both change the same files, but git merges them cleanly
            why = f"conflicts with {other.id} in {', '.join(probe.conflicts[:3])}"
        behind.append(other.id)
        msg = f"{task.id}: {why}; held until {other.id} has landed"
        evs.append(ev.Risk(actor=actor, task=task.id, slave=actor, kind="overlap", message=msg, files=tuple(shared)))
    if behind:
        evs.append(ev.TaskHeld(actor=actor, task=task.id, slave=actor, behind=tuple(behind)))
    return evs


def landed_since(state: State, since: str, head: str) -> frozenset[str] | None:
    """The files main's moves from `since` to `head` changed, when each move was a landing the
    log still holds (state.landings): None when anything else moved main meanwhile (a push, a
    merge by hand) or the moves are older than the landings kept. A landing's files are its
    task's `touched`: every file its branch changed, the landing's commit changes no other."""
    groups: list[tuple[str, str, set[str]]] = []  # a batch in one commit is one move
    for base, sha, files in state.landings:
        if groups and groups[-1][:2] == (base, sha):
            groups[-1][2].update(files)
        else:
            groups.append((base, sha, set(files)))
    at, found = since, set[str]()
    for base, sha, moved in groups:
        if at == head:
            break
        if base and base == at:
            found |= moved
            at = sha
    return frozenset(found) if at == head else None


def may_meet(ours: Iterable[str], theirs: Iterable[str]) -> bool:
    """Whether changes to these two sets of paths can conflict in a merge: some path is in both,
    or is a directory of a path in the other (a file in one where the other makes a directory).
    Renames count at both their paths (`changed_files` lists both)."""
    mine = set(ours)
    if not mine:
        return False
    dirs = {str(parent) for p in mine for parent in Path(p).parents if str(parent) != "."}
    return any(p in mine or p in dirs or any(str(d) in mine for d in Path(p).parents) for p in theirs)


def after_main_moved(cfg: Config, state: State, actor: str, landed: Iterable[str] | None = None) -> list[Event]:
    """Every submitted task that no longer merges into main's new head goes back to its author.
    With `landed` (the files the landing changed), only tasks that changed one of them, or a
    directory of one, are replayed: no other can meet a conflict. The judge's own replay
    catches anything else that moved main meanwhile."""
    repo, main = cfg.repo, cfg.mainline_branch
    changed = None if landed is None else list(landed)
    evs: list[Event] = []
    for t in state.tasks.values():
        if t.state != TaskState.NEEDS_JUDGE:
            continue
        if changed is not None and not may_meet(t.touched, changed):
            continue
        if not git.branch_exists(repo, t.branch):
            continue
        merged = git.merge_tree(repo, main, t.branch)
        if merged.tree is None:
            files = list(merged.conflicts)
            reasons = f"{main} moved and now conflicts with it in: {', '.join(files)}; merge {main} and resolve"
            evs += refresh_events(cfg, t, actor, reasons, files)
    return evs


def still_submitted(state: State, evs: list[Event]) -> list[Event]:
    """Keep only the events about tasks still waiting for a judge (decided outside the lock)."""
    stale = set()
    for e in evs:
        t = state.tasks.get(str(e.task_id))
        if isinstance(e, ev.TaskRefresh) and (t is None or t.state != TaskState.NEEDS_JUDGE):
            stale.add(e.task)
    return [e for e in evs if e.task_id not in stale]


def relative(worktree: Path, paths: Iterable[str]) -> list[str]:
    """Paths an agent's stream reported, relative to its worktree (others are not ours)."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_absolute():
            if not path.is_relative_to(worktree):
                continue
            path = path.relative_to(worktree)
        rel = str(path).removeprefix("./")
        if rel and rel != "." and not rel.startswith(".."):
            out.append(rel)
    return out
