"""The mainline job: land a batch of accepted tasks on main, keeping it green (DESIGN §6).

Each task is squashed onto the one before (main ← T1 ← T2 ← …). Every commit that reaches main
is a tree the gate passed, in one of two ways (`mainline.batch_commits`):

- `one` (the default): the gate runs once, on the tip, and main moves by ONE commit holding the
  whole batch (each task's trailer in it). If the gate fails, bisection finds the first task whose
  prefix fails; that task goes back to rework with the gate output, the prefix before it (which
  the bisection gated) lands as one commit, and the rest are stacked and gated again.
- `each`: every prefix is gated, in order, and main gets one commit per task. The first prefix
  that fails names its task; the gated ones before it land. k gate runs instead of one.

A conflict sends just that task back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import msgspec

from ..project.gate import GateResult
from ..state import events as ev
from ..state.events import Event
from ..state.model import State, Task, TaskState
from ..system import git
from . import history, mainline, overlap
from .base import JobKind, release_all
from .common import conflict, idle, let_go, main_is_red, prepare_worktree
from .context import JobContext

MAX_ROUNDS = 8


class Stacked(msgspec.Struct, frozen=True):
    task: Task
    sha: str  # the commit of this task on top of the ones before it
    tree: str | None = None  # its tree, when the merge said (else looked up)


MAINTAIN_EVERY = 25  # landings between two `git maintenance run --auto` (see git.NO_AUTO)


def run_mainline(ctx: JobContext, batch: tuple[str, ...]) -> None:
    """Land the batch, or give back what can't land now (reasons in the tail)."""
    # The worktree is made ready only when a gate has to run in it: a batch the judge's gate
    # already passed lands without touching it.
    ctx.prepared = False
    st = ctx.store.state()
    queue = [st.tasks[tid] for tid in batch if tid in st.tasks and st.tasks[tid].state == TaskState.LANDING]
    ctx.say(f"▶ mainline: {', '.join(t.id for t in queue)} ({len(queue)} accepted)")
    ctx.heart.update(job="mainline", task=queue[0].id if queue else None, phase="stack")
    for rnd in range(MAX_ROUNDS):
        if not queue:
            break
        base = git.branch_head(ctx.repo, ctx.main)
        assert base is not None
        stack, conflicted = _stack(ctx, base, queue, reuse=rnd == 0)
        for task, files in conflicted:
            conflict(ctx, task, files)
            queue.remove(task)
        if not stack:
            continue
        ctx.heart.update(phase=f"gate {len(stack)}")
        culprit, failure, good = _check(ctx, stack)
        if culprit is not None:
            assert failure is not None
            if main_is_red(ctx, base, culprit, failure, f"the mainline gate of {culprit.id}", when_unnamed=False):
                let_go(ctx, "main is red: waiting for the regression fix")
                return idle(ctx)
            reasons = f"fails the gate when stacked on {ctx.main}: `{failure.failed}`: {failure.last_line()}"
            history.write(
                ctx.paths,
                culprit.id,
                f"mainline-{culprit.judge_rounds}",
                {"Outcome": reasons, "Test results": failure.output[-2000:]},
            )
            ctx.store.append(
                ev.Verdict(actor=ctx.sid, task=culprit.id, slave=ctx.sid, verdict="rework", reasons=reasons)
            )
            ctx.say(f"  ✗ {culprit.id} breaks the gate in the batch: back to rework")
            queue = [t for t in queue if t.id != culprit.id]
            if good is not None:
                # The prefix before the culprit passed the gate: land it as it is.
                prefix = stack[: good + 1]
                cand, shas = _candidate(ctx, base, prefix)
                if mainline.land(ctx.paths, ctx.main, cand, _fence(ctx, prefix)).ok:
                    _done(ctx, prefix, shas, base)
                    landed_ids = {s.task.id for s in prefix}
                    queue = [t for t in queue if t.id not in landed_ids]
            continue
        cand, shas = _candidate(ctx, base, stack)
        landed = mainline.land(ctx.paths, ctx.main, cand, _fence(ctx, stack))
        if landed.ok:
            _done(ctx, stack, shas, base)
            return idle(ctx)
        if landed.reason == "lost":
            ctx.say("  ✗ this batch was taken from this slave (presumed hung): not landing it")
            return idle(ctx)
        if landed.reason != "moved":
            ctx.store.append(
                ev.Risk(actor=ctx.sid, task=queue[0].id, slave=ctx.sid, kind="mainline", message=landed.reason)
            )
            let_go(ctx, landed.reason)
            ctx.say(f"  ! can't land: {landed.reason}")
            ctx.stopping.wait(min(30.0, ctx.cfg.heartbeat_secs * 4))  # a person's edits won't go away at once
            return idle(ctx)
        ctx.say(f"  {ctx.main} moved: stacking again on the new head")
    let_go(ctx, f"{ctx.main} kept moving")
    idle(ctx)


def _stack(
    ctx: JobContext, base: str, queue: list[Task], reuse: bool = True
) -> tuple[list[Stacked], list[tuple[Task, tuple[str, ...]]]]:
    """Each task squashed onto the one before, from `base`. With `reuse`, a first task the judge
    accepted on this very `base` is the judge's own commit (built the same way, its tree gated)."""
    stack: list[Stacked] = []
    conflicted = []
    tip, tip_tree = base, None
    for task in queue:
        built = task.candidate
        if reuse and not stack and len(built) == 3 and built[1] == base and git.has_object(ctx.repo, built[0]):
            tip, tip_tree = built[0], built[2]
            stack.append(Stacked(task, tip, tip_tree))
            continue
        cand = mainline.build_on(ctx.repo, tip, task, tip_tree)
        if cand.conflicts:
            conflicted.append((task, cand.conflicts))
            continue
        tree = cand.tree if cand.sha else (stack[-1].tree if stack else None)
        tip = cand.sha or tip  # no commit: nothing to add, it lands as a no-op
        tip_tree = tree or tip_tree
        stack.append(Stacked(task, tip, tree))
    return stack, conflicted


def _gate(ctx: JobContext, item: Stacked) -> GateResult:
    def ready() -> None:
        if not ctx.prepared:
            prepare_worktree(ctx)
            ctx.prepared = True

    return ctx.gate_tree(item.task.id, "mainline", item.sha, item.tree, ready)


def _check(ctx: JobContext, stack: list[Stacked]) -> tuple[Task | None, GateResult | None, int | None]:
    """Gate the stack: (None, None, None) when what would land passed; else the first task that
    fails, its failure, and the index of the last stacked commit known to pass (or None)."""
    if ctx.cfg.batch_commits == "each":
        for n, item in enumerate(stack):
            if len(stack) > 1:
                ctx.say(f"  gating {ctx.main} + {', '.join(s.task.id for s in stack[: n + 1])}")
            result = _gate(ctx, item)
            if not result.passed:
                return item.task, result, n - 1 if n else None
        return None, None, None
    result = _gate(ctx, stack[-1])
    if result.passed:
        return None, None, None
    return _bisect(ctx, stack, result)


def _candidate(ctx: JobContext, base: str, stack: list[Stacked]) -> tuple[mainline.Candidate, list[str]]:
    """What main moves to, and the commit that holds each task: the tip itself (one commit per
    task, each gated, or a batch with one real change), or one commit with the tip's tree — the
    tree the gate passed — holding the whole batch."""
    tip = stack[-1].sha
    if ctx.cfg.batch_commits == "each" or len({s.sha for s in stack} - {base}) <= 1:
        return mainline.Candidate(base, tip), [s.sha for s in stack]
    message = mainline.batch_message([s.task for s in stack])
    one = git.commit_tree(ctx.repo, git.tree_of(ctx.repo, tip), base, message)
    return mainline.Candidate(base, one), [one] * len(stack)


def _bisect(ctx: JobContext, stack: list[Stacked], failed: GateResult) -> tuple[Task, GateResult, int | None]:
    """The first task whose prefix of the stack fails the gate (the whole stack is known to fail),
    its failure, and the index of the stack commit just before it if the gate passed there."""
    lo, hi = 0, len(stack) - 1  # the first failing prefix ends somewhere in stack[lo..hi]
    failure = failed
    good: int | None = None
    while lo < hi:
        mid = (lo + hi) // 2
        ctx.say(f"  bisect: gating {ctx.main} + {', '.join(s.task.id for s in stack[: mid + 1])}")
        result = _gate(ctx, stack[mid])
        if result.passed:
            lo, good = mid + 1, mid
        else:
            hi, failure = mid, result
    return stack[lo].task, failure, good if good == lo - 1 else None


def _fence(ctx: JobContext, stack: list[Stacked]) -> AbstractContextManager[bool]:
    return ctx.holding([s.task.id for s in stack], TaskState.LANDING)


def _done(ctx: JobContext, stack: list[Stacked], shas: list[str], base: str) -> None:
    evs: list[Event] = []
    under, prev = base, base  # what each task's commit sits on: main's head, or the commit before it
    for item, sha in zip(stack, shas, strict=True):
        if sha != prev:  # a batch in one commit holds all its tasks on the same base
            under, prev = prev, sha
        evs.append(ev.Mainlined(actor=ctx.sid, task=item.task.id, slave=ctx.sid, sha=sha, base=under))
        for n, title in enumerate(item.task.follow_ups, 1):
            # Follow-ups exist only once their parent is on main.
            evs.append(
                ev.TaskAdded(
                    actor=ctx.sid,
                    task=f"{item.task.id}-F{n}",
                    title=title,
                    prompt=title,
                    parent=item.task.id,
                    tags=("follow-up",),
                )
            )
    if ctx.store.state().main_red:
        evs.append(ev.MainGreen(actor=ctx.sid, sha=shas[-1]))

    landed = {f for item in stack for f in item.task.touched}

    def decide(st: State) -> list[Event]:
        # main has moved: submitted tasks that no longer merge go back to their authors in the
        # same append, so no judge (a task held behind these was waiting for exactly this moment)
        # can take one in between.
        return [*evs, *overlap.after_main_moved(ctx.cfg, st, ctx.sid, landed)]

    sent = ctx.store.transact(decide)
    if ctx.prepared:
        git.detach(ctx.worktree, ctx.main)
    ctx.landings += 1
    if ctx.landings % MAINTAIN_EVERY == 0:
        git.maintain(ctx.repo)
    ctx.say(f"  ✓ landed {', '.join(s.task.id for s in stack)} on {ctx.main} as {shas[-1][:10]}")
    for e in sent:
        if isinstance(e, ev.TaskRefresh):
            ctx.say(f"  ↩ {e.task}: {e.reasons}")


KIND = JobKind(
    "mainline",
    claim=lambda job, sid, _key: [ev.LandingClaimed(actor=sid, task=tid, slave=sid) for tid in job.batch],
    run=lambda ctx, job: run_mainline(ctx, job.batch),
    on_error=release_all,
)
