"""Mainlining: deterministic code that puts one accepted task on `main` as ONE commit (DESIGN §6).

The task branch is replayed onto main in memory (`git merge-tree`: the tree a rebase gives, with
no worktree left mid-rebase on a conflict), squashed into one commit whose parent is main's head,
gated in the judge's worktree, then `main` is moved by compare-and-swap under the mainline lock.
If main moved meanwhile, everything is redone on the new head. A `main` checked out in a person's
worktree is fast-forwarded there with `git merge --ff-only`, which keeps their uncommitted edits
and refuses (we wait and retry) rather than overwrite one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import msgspec

from ..errors import GitError
from ..state.locks import mainline_lock
from ..state.model import Task
from ..state.paths import Paths
from ..system import git


class Candidate(msgspec.Struct, frozen=True):
    base: str  # main's head it was built on
    sha: str | None  # the squashed commit (None when the task changes nothing)
    conflicts: tuple[str, ...] = ()
    tree: str | None = None  # sha's tree, known from the merge (no rev-parse needed for it)


def message(task: Task) -> str:
    body = task.summary.strip() if task.summary else ""
    parts = [task.title.strip() or task.id]
    if body:
        parts.append(body)
    parts.append(f"{git.TRAILER}: {task.id}")
    return "\n\n".join(parts) + "\n"


def batch_message(tasks: list[Task]) -> str:
    """One commit for a batch: a line per task, then each task's trailer (so every task is found on
    main by its id, as with one commit each)."""
    if len(tasks) == 1:
        return message(tasks[0])
    lines = [f"Land {', '.join(t.id for t in tasks)}", ""]
    lines += [f"- {t.id}: {t.title.strip() or t.id}" for t in tasks]
    lines.append("")
    lines += [f"{git.TRAILER}: {t.id}" for t in tasks]
    return "\n".join(lines) + "\n"


def build(repo: Path, main: str, task: Task) -> Candidate:
    """Squash the task branch onto main's current head, in memory."""
    head = git.branch_head(repo, main)  # read once: what the squash is built on is this commit
    if head is None:
        raise GitError(["rev-parse", main], f"branch {main} does not exist", 1)
    return build_on(repo, head, task)


def build_on(repo: Path, base: str, task: Task, base_tree: str | None = None) -> Candidate:
    """Squash the task branch onto commit `base` (main, or the batch stacked so far), in memory.
    No commit (sha None) when the task adds nothing to `base` (whose tree, if known, is `base_tree`)."""
    merged = git.merge_tree(repo, base, task.branch)
    if merged.tree is None:
        return Candidate(base, None, merged.conflicts)
    if merged.tree == (base_tree or git.tree_of(repo, base)):
        return Candidate(base, None)
    return Candidate(base, git.commit_tree(repo, merged.tree, base, message(task)), tree=merged.tree)


class Landed(msgspec.Struct, frozen=True):
    ok: bool
    sha: str | None = None
    reason: str = ""  # why not: "moved" (main changed), "checkout" (a person's edits in the way)


def land(paths: Paths, main: str, cand: Candidate, fence: AbstractContextManager[bool] | None = None) -> Landed:
    """Move `main` from cand.base to cand.sha, atomically, or report why not. `fence`, held
    around the move, says whether the lander still holds its batch ("lost" if not): a slave
    reclaimed while hung can never land."""
    repo = paths.repo
    if cand.sha is None:
        return Landed(True, cand.base)
    with mainline_lock(paths), fence or nullcontext(True) as ours:
        if not ours:
            return Landed(False, reason="lost")
        if git.branch_head(repo, main) != cand.base:
            return Landed(False, reason="moved")
        holder = git.checked_out_at(repo, main)
        if holder is not None and holder.exists():
            # A person (or tool) has main checked out: move their files with the ref.
            if not git.ff_checkout(holder, cand.sha):
                if git.branch_head(repo, main) != cand.base:
                    return Landed(False, reason="moved")
                return Landed(False, reason=f"checkout: uncommitted edits in {holder} block the update")
            return Landed(True, cand.sha)
        if not git.update_ref(repo, f"refs/heads/{main}", cand.sha, cand.base):
            return Landed(False, reason="moved")
    return Landed(True, cand.sha)
