"""The work job: implement a task in the slave's own worktree, commit, gate, summarise, submit."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from .. import executors
from ..agents import adapter_for
from ..agents.base import AgentResult, Outcome, Ran
from ..agents.runner import RunResult
from ..errors import GitError, UsageError
from ..executors.ssh import SshHost
from ..project.gate import GateResult
from ..project.workspace import SetupFailed
from ..state import events as ev
from ..state.events import Event
from ..state.intake import Branches
from ..state.model import State, Task, TaskState
from ..system import git
from ..system import proc as procs
from ..system.remote import RemoteError
from . import history, overlap
from .base import Job, JobKind
from .common import idle, out_of_budget, prepare_worktree, replan
from .context import JobContext
from .prompts import worker_prompt
from .watch import ConflictWatch


def take_branch(ctx: JobContext, branch: str) -> None:
    """If another slave's worktree still has the branch checked out (it died or was presumed dead),
    commit what it left there to the branch and let go of it, so this worktree can check it out."""
    for w in git.worktrees(ctx.repo):
        if w.branch == branch and w.path != ctx.worktree and w.path.is_relative_to(ctx.paths.worktrees):
            if git.porcelain(w.path):
                git.commit_all(w.path, f"wip: work left in {w.path.name} when {ctx.sid} took over")
            git.detach(w.path)
            ctx.say(f"took {branch} over from {w.path.name}")


def run_work(ctx: JobContext, task: Task) -> None:
    try:
        # Refused when the task was added; a log from before that check may still hold one.
        Branches.of(ctx.cfg).check_safe(task.branch)
    except UsageError as bad:
        ctx.store.append(ev.TaskBlocked(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=str(bad)))
        ctx.say(f"  ✗ {task.id} blocked: {bad}")
        return
    prepare_worktree(ctx)
    try:
        branch_at, main_at = git.checkout_branch(ctx.worktree, task.branch, ctx.main)
    except GitError:
        # Only now look for another worktree holding the branch (one a dead slave left).
        take_branch(ctx, task.branch)
        branch_at, main_at = git.checkout_branch(ctx.worktree, task.branch, ctx.main)
    conflicts: list[str] = []
    if branch_at != main_at and git.commits_ahead(ctx.repo, branch_at, main_at):  # main moved on
        # Bring the branch up to date with main; the agent resolves any conflict markers.
        conflicts = git.merge_no_commit(ctx.worktree, ctx.main)
        if not conflicts:
            ctx.commit_held(task.id, f"merge {ctx.main} into {task.branch}")
        else:
            ctx.store.append(ev.TaskConflicted(actor=ctx.sid, task=task.id, slave=ctx.sid, files=tuple(conflicts)))
    attempt = task.attempts
    kind = "rework" if task.judge_rounds else "work"
    ctx.say(f"▶ {task.id} {kind}: {task.title} (attempt {attempt})")
    ctx.heart.update(job="work", task=task.id, phase="setup")
    if not ctx.executor.remote:
        _environment(ctx)  # an ssh host's clone has its own, set up there by the gate
    ctx.heart.update(phase="agent")
    resume = task.sessions[-1] if task.judge_rounds and task.sessions else None
    prompt = _prompt(ctx, task, conflicts)
    away = executors.of(ctx.executor, ctx.repo, ctx.sid)
    try:
        if isinstance(away, SshHost):
            _up(ctx, task, away)
        ctx.away = away
        with ConflictWatch(ctx.store, task.id, ctx.worktree, ctx.cfg.owner_files, ctx.sid) as watch:
            ctx.on_files = watch.note
            try:
                res = ctx.run_agent_settled(ctx.cfg.agent, "worker", task.id, attempt, prompt, resume)
            finally:
                ctx.on_files = None
                ctx.away = None
        if isinstance(away, SshHost):
            _down(ctx, task, away, attempt)
    except RemoteError as lost:
        _host_lost(ctx, task, lost)
        return
    if res is None and ctx.taken_over() and not ctx.stopping.is_set():
        res = take_over(ctx, ctx.store.state().tasks[task.id])
    if res is None:
        checkpoint(ctx, task, ctx.held or "the slave was asked to stop")
        return
    if res.outcome == Outcome.AUTH:
        fix = adapter_for(ctx.cfg.agent).auth_fix()
        _park(ctx, task, attempt, "agent could not authenticate")
        reason = f"auth: {fix} ({res.result.error[:200]})"
        ctx.store.append(ev.TaskBlocked(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=reason))
        return
    if res.outcome == Outcome.OUT_OF_BUDGET:
        _park(ctx, task, attempt, "agent out of budget")
        out_of_budget(ctx, task, res)
        return
    files = sorted(set(watch.left) | set(res.result.files))  # the watch's last look, after the agent
    # A branch that started at main's commit and still sits there changes exactly what that
    # last look shows (unless the agent committed something itself): no diff needed to know.
    plain = watch.fresh and branch_at == main_at and not conflicts and git.head(ctx.worktree) == branch_at
    shortstat: list[str] = []  # the commit's own summary: what a plain branch changed, no git run for it
    ctx.commit_held(
        task.id,
        f"wip({task.id}): {task.title} (attempt {attempt})",
        bool(watch.left) if watch.fresh else None,
        shortstat if plain else None,
    )
    if res.outcome != Outcome.OK:
        _fail(ctx, task, f"agent failed: {history.short(res.result.error or res.result.text, 200)}")
        return
    left = markers_left(ctx.worktree, (*ctx.store.state().tasks[task.id].merge_conflicts, *conflicts))
    if left:
        # Saved on the branch (no work is lost) but never submitted: the next attempt is told.
        where = "; ".join(f"{path} (line {', '.join(map(str, lines[:3]))})" for path, lines in left.items())
        ctx.say(f"  ✗ conflict markers left in {where}")
        _fail(ctx, task, f"conflict markers left in {where}: resolve them, keeping both sides' intent")
        return
    ctx.say(f"  gate: {len(ctx.cfg.gate)} command(s)" + (f" on {ctx.executor.name}" if away is not None else ""))
    try:
        gate = _remote_gate(ctx, away) if isinstance(away, SshHost) else ctx.gate()
    except RemoteError as lost:
        _host_lost(ctx, task, lost)
        return
    ctx.record_gate(task.id, "work", gate)
    if plain:
        touched, stat = sorted(set(watch.left)), "\n".join(shortstat)
    else:  # one git run for the files and their line counts
        rows = git.numstat(ctx.repo, ctx.main, task.branch)
        touched = [path for _a, _d, path in rows]
        stat = "\n".join(f"{path} +{a} -{d}" for a, d, path in rows[:40])
    summary = history.short(res.result.text) or "no summary"
    history.write(ctx.paths, task.id, f"work-{attempt}", _note(ctx, task, res, gate, touched, stat, attempt))
    if not gate.passed:
        ctx.say(f"  ✗ gate failed: {gate.failed} — {gate.last_line()}")
        last = gate.last_line()[:200]
        _fail(ctx, task, f"gate failed: `{gate.failed}`" + (f": {last}" if last else ""))
        return
    ctx.say(f"  ✓ gate passed; submitting {task.id} for judging ({len(files)} file(s) changed)")
    _finish(ctx)
    follow = follow_ups(res.result.text)
    submitted = ev.TaskSubmitted(
        actor=ctx.sid, task=task.id, slave=ctx.sid, summary=summary, files=tuple(touched), follow_ups=tuple(follow)
    )
    # Replayed onto main and onto earlier overlapping tasks now, so no judge meets the conflict.
    after = overlap.at_submit(ctx.cfg, ctx.store.state(), task, touched, ctx.sid, contains=main_at)
    ctx.store.append(submitted, *after)
    for e in after:
        if isinstance(e, ev.TaskRefresh):
            ctx.say(f"  ! {task.id}: {e.reasons}")
        elif isinstance(e, ev.TaskHeld):
            ctx.say(f"  ! {task.id}: held behind {', '.join(e.behind)} until it lands")


def _up(ctx: JobContext, task: Task, host: SshHost) -> None:
    """The task branch as it is here (a merge's conflicts committed for the agent to resolve)
    checked out in this slave's clone on the host."""
    if git.porcelain(ctx.worktree):
        ctx.commit_held(task.id, f"merge {ctx.main} into {task.branch}: conflicts for the agent to resolve")
    head, main_at = git.head(ctx.worktree), git.branch_head(ctx.repo, ctx.main)
    assert head is not None and main_at is not None
    ctx.heart.update(phase=f"push to {ctx.executor.name}")
    collected = host.up(task.branch, head, ctx.main, main_at)
    if collected is not None:
        # A run here was cut short (the connection dropped) after its agent committed: kept.
        where = ctx.executor.name
        msg = f"work an earlier run left on {where} is kept at {collected} (not merged; `git log {collected}`)"
        ctx.say(f"  ! {msg}")
        ctx.store.append(ev.Risk(actor=ctx.sid, slave=ctx.sid, kind="executor", message=msg))
    if ctx.executor.name in ctx.store.state().down:
        ctx.store.append(ev.ExecutorUp(actor=ctx.sid, executor=ctx.executor.name))
    ctx.heart.update(phase="agent")


def _down(ctx: JobContext, task: Task, host: SshHost, attempt: int) -> None:
    """What the agent left on the host, committed there and fast-forwarded into the branch here."""
    ctx.heart.update(phase=f"fetch from {ctx.executor.name}")
    sha = host.down(task.branch, f"wip({task.id}): {task.title} (attempt {attempt}, on {ctx.executor.name})")
    if not git.ff_checkout(ctx.worktree, sha):
        raise RemoteError(
            ctx.executor.host, "failed", f"the branch fetched from the host does not follow {task.branch}"
        )


def _note(
    ctx: JobContext, task: Task, res: RunResult, gate: GateResult, touched: list[str], stat: str, attempt: int
) -> dict[str, str]:
    """The seed's summary of an attempt: what the agent's SUMMARY block says (decisions,
    assumptions, hazards, TODOs, missing tests), and the facts clanker has — files and diffstat,
    the commands the agent and the gate ran, earlier errors, the gate's test results. A missing
    block is said so, never made up."""
    log = ctx.paths.attempt_log(task.id, attempt, "work").with_suffix(".txt")
    ran = res.result.commands  # with their exit codes, from agents whose streams report commands
    if not ran and log.exists():  # any other agent: its readable log's `$ cmd` lines, codes unknown
        ran = [Ran(c, None) for c in history.commands_in(log.read_text(encoding="utf-8", errors="replace"))]
    block = history.summary_block(res.result.text)
    return {
        "Outcome": ("gate passed" if gate.passed else f"gate failed: {gate.failed}") + f"; agent: {res.outcome}",
        "Files touched": "\n".join(f"- {f}" for f in touched),
        "Diffstat": stat,
        "Commands run": history.commands_run(ran, ctx.cfg.gate, gate),
        **(block or {"Summary block": "missing: the agent wrote no SUMMARY block; these notes are facts only"}),
        "Earlier errors": "\n".join(f"- attempt {i}: {e}" for i, e in enumerate(task.errors, 1)),
        "Agent summary": res.result.text[-2000:],
        "Test results": (history.test_results(gate.output) + "\n\n" + gate.output[-1500:]).strip(),
    }


def _remote_gate(ctx: JobContext, host: SshHost) -> GateResult:
    """The worktree gate where the agent worked (the judge's gate here decides what lands)."""
    ctx.heart.update(phase=f"gate on {ctx.executor.name}")
    w, ws = ctx.cfg.worktree, ctx.workspace
    ports = (int(ws.env()["CLANKER_PORT_BASE"]), w.port_span)
    return host.gate(ctx.cfg.gate, w.setup, ws.fingerprint(), ports, ctx.cfg.gate_timeout_secs)


def _host_lost(ctx: JobContext, task: Task, e: RemoteError) -> None:
    """The executor's host failed us: marked down (tried again after a backoff), and the task
    given back, the attempt not counted, for a slave elsewhere. What was pushed or fetched is on
    the task branch; what the host still holds is collected when it answers again."""
    name = ctx.executor.name
    state = ctx.store.state()
    down = executors.down_event(state, name, f"{e.kind}: {e.message}", ctx.clock.time(), ctx.sid)
    ctx.say(f"  ✗ {name} ({ctx.executor.host}): {e.message}")
    if git.porcelain(ctx.worktree):
        git.stash(ctx.worktree, f"clanker {ctx.sid}: {task.id} left when {name} failed")
    _finish(ctx)
    why = f"{name} failed: {e.message}"[:300]
    ctx.store.append(
        down,
        ev.Risk(actor=ctx.sid, task=task.id, slave=ctx.sid, kind="auth" if e.kind == "auth" else "executor",
                message=why),
        ev.TaskReleased(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=why, refund=True),
    )  # fmt: skip


MARKER = re.compile(r"^(<{7}|>{7})( |$)")


def markers_left(worktree: Path, files: Iterable[str]) -> dict[str, list[int]]:
    """The lines of conflict markers (`<<<<<<< ours`, `>>>>>>> theirs`) still in the files a merge
    left conflicted. Only those files: anything else may hold marker-like text on purpose."""
    found: dict[str, list[int]] = {}
    for rel in dict.fromkeys(files):
        try:
            text = (worktree / rel).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            continue  # resolved by deleting it
        lines = [n for n, line in enumerate(text.splitlines(), 1) if MARKER.match(line)]
        if lines:
            found[rel] = lines
    return found


def _environment(ctx: JobContext) -> None:
    """Set the worktree up for the branch before the agent starts. A failure on main's own setup
    inputs is the environment's (SetupFailed goes up to the slave); on inputs this branch changed,
    the agent works on anyway and the gate reports the failure as this attempt's."""
    try:
        ctx.ensure_env()
    except SetupFailed as e:
        if ctx.workspace.inputs_match(ctx.main):
            raise
        ctx.say(f"  ! {e} — this branch changed the setup inputs; the gate will tell")


FOLLOW_UP = re.compile(r"^\s*FOLLOW-UP:\s*(.+?)\s*$", re.MULTILINE)


def follow_ups(text: str) -> list[str]:
    """Tasks the agent proposes for later (`FOLLOW-UP: title` lines): created once this one is done."""
    return list(dict.fromkeys(FOLLOW_UP.findall(text)))[:5]


def _prompt(ctx: JobContext, task: Task, conflicts: list[str]) -> str:
    return worker_prompt(task, conflicts, template=ctx.cfg.prompt_templates.get("worker"), paths=ctx.paths)


def _park(ctx: JobContext, task: Task, attempt: int, why: str) -> None:
    """Keep what the agent did so far on the task branch and let go of the worktree."""
    ctx.commit_held(task.id, f"wip({task.id}): attempt {attempt} ({why})")
    _finish(ctx)


def _finish(ctx: JobContext) -> None:
    git.detach(ctx.worktree)
    idle(ctx)


def _fail(ctx: JobContext, task: Task, error: str) -> None:
    _finish(ctx)
    done_attempts = task.attempts_since_retry
    if done_attempts >= ctx.cfg.max_attempts:
        # One append, so no other slave can claim the task between the two events.
        ctx.store.append(
            ev.TaskFailed(actor=ctx.sid, task=task.id, slave=ctx.sid, error=error),
            ev.TaskBlocked(actor=ctx.sid, task=task.id, reason=f"{done_attempts} attempts failed; last: {error}"),
            *replan(ctx, task.id),  # attempts used up: the planner may split or re-scope it
        )
    else:
        ctx.store.append(ev.TaskFailed(actor=ctx.sid, task=task.id, slave=ctx.sid, error=error))


def interactive_argv(ctx: JobContext, session: str | None) -> list[str]:
    """The agent's own session, interactive: `claude --resume ID`, `codex resume ID`; for agents
    without sessions, a shell in the worktree."""
    agent = ctx.cfg.agent
    if agent.kind == "claude":
        return [agent.binary or "claude", *(["--resume", session] if session else [])]
    if agent.kind == "codex":
        return [agent.binary or "codex", *(["resume", session] if session else [])]
    return [os.environ.get("SHELL") or "bash"]


def take_over(ctx: JobContext, task: Task) -> RunResult | None:
    """A person works in the slave's pane (the agent's session, or a shell in the worktree) until
    they leave it; what they changed is committed to the task branch and the task goes on through
    the gate and the judge like an agent's work. Released (`takeover --release`): their changes
    are stashed (kept) and the task is given back unspent (None)."""
    session = task.sessions[-1] if task.sessions else None
    argv = interactive_argv(ctx, session)
    ctx.heart.update(phase="taken over by a person")
    ctx.say(f"▶ {task.id} is yours: {' '.join(argv)} in {ctx.worktree} — leave it (exit) to hand back")
    started = time.monotonic()
    env = procs.child_env(ctx.workspace.env())
    code = procs.interactive(argv, ctx.worktree, env, stop=lambda: not ctx.taken_over())
    changed = bool(git.porcelain(ctx.worktree))
    if code is None:  # released from outside while it ran
        if changed:
            git.stash(ctx.worktree, f"clanker {ctx.sid}: {task.id} taken over, then released without changes")
        ctx.say(f"  takeover of {task.id} released: the person's changes are stashed, the task is given back")
        return None
    ctx.commit_held(task.id, f"wip({task.id}): changes by a person who took over {ctx.sid}")
    history.write(ctx.paths, task.id, f"takeover-{task.attempts}", {
        "Outcome": f"a person took over the session ({' '.join(argv)}) and left it (exit {code})",
        "Files touched": "\n".join(f"- {f}" for f in git.changed_files(ctx.repo, ctx.main, task.branch)),
    })  # fmt: skip
    ctx.store.append(ev.TakeoverEnded(actor=ctx.sid, slave=ctx.sid, task=task.id, changed=changed))
    ctx.say(f"  ✓ back from the person ({'changes committed' if changed else 'no changes'}): on to the gate")
    text = "A person took over the session and finished the task by hand."
    return RunResult(AgentResult(text=text), Outcome.OK, code, time.monotonic() - started)


def checkpoint(ctx: JobContext, task: Task, why: str) -> None:
    """Commit whatever is in the worktree to the task branch and release the claim with an event."""
    if git.merge_in_progress(ctx.worktree):
        ctx.commit_held(task.id, f"wip({task.id}): checkpoint with unresolved merge ({why})")
    else:
        ctx.commit_held(task.id, f"wip({task.id}): checkpoint ({why})")
    _finish(ctx)
    st = ctx.store.state().tasks.get(task.id)
    if st and st.state == TaskState.CLAIMED and st.slave == ctx.sid:
        ctx.store.append(ev.TaskReleased(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=why, refund=True))
    ctx.say(f"  checkpointed {task.id} on {task.branch} and released it")


def _on_error(state: State, job: Job, sid: str, error: str) -> list[Event]:
    """A git or tmux failure in the middle of the work: a failed attempt (it counts)."""
    t = state.tasks.get(job.task)
    if t is None or t.slave != sid or t.state != TaskState.CLAIMED:
        return []
    return [ev.TaskFailed(actor=sid, task=job.task, slave=sid, error=error[:300])]


KIND = JobKind(
    "work",
    claim=lambda job, sid, _key: [ev.TaskClaimed(actor=sid, task=job.task, slave=sid)],
    run=lambda ctx, job: run_work(ctx, ctx.store.state().tasks[job.task]),
    on_error=_on_error,
)
