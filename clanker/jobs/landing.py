"""`clanker land [TASK…]`: mainline submitted tasks now, for people who review by hand (flocks' land).

The person is the judge: each task the workers submitted (its gate passed) is replayed onto main,
squashed, gated and fast-forwarded by the same deterministic code the judge uses. Empty branches
are skipped, a conflict doesn't stop the others (it is listed with the command to retry), and the
`land.validate` commands run on main afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from ..config import Config
from ..errors import UsageError
from ..project.gate import GateResult
from ..project.workspace import SetupFailed, Workspace
from ..state import events as ev
from ..state.model import State, Task, TaskState
from ..state.paths import Paths
from ..state.store import Store
from ..system import git
from . import mainline

LANDER = "land"  # the holder name while `clanker land` has a task


class Report(msgspec.Struct):
    landed: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (task, sha)
    skipped: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (task, why)
    conflicts: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (task, files)
    failed: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (task, why)
    validate_ok: bool | None = None

    @property
    def code(self) -> int:
        return 0 if not (self.conflicts or self.failed) and self.validate_ok is not False else 1


def candidates(state: State, ids: list[str]) -> list[Task]:
    if not ids:
        return [t for t in state.tasks.values() if t.state == TaskState.NEEDS_JUDGE]
    out = []
    for tid in ids:
        t = state.tasks.get(tid)
        if t is None:
            raise UsageError(f"no task {tid!r}: `clanker task list` shows the ids")
        if t.state != TaskState.NEEDS_JUDGE:
            raise UsageError(f"task {tid} is {t.state}: only submitted tasks (needs_judge) can be landed")
        out.append(t)
    return out


def plan(cfg: Config, tasks: list[Task]) -> list[tuple[Task, int]]:
    """Each task with the number of commits its branch has on top of main."""
    return [
        (t, git.commits_ahead(cfg.repo, cfg.mainline_branch, t.branch) if git.branch_exists(cfg.repo, t.branch) else 0)
        for t in tasks
    ]


def land(cfg: Config, tasks: list[Task], say: Callable[[str], None]) -> Report:
    paths = Paths(cfg.repo, cfg.worktrees)
    store = Store(paths, "cli")
    report = Report()
    main = cfg.mainline_branch
    with tempfile.TemporaryDirectory(prefix="clanker-land-") as tmp:
        wt = Path(tmp) / "wt"
        git.ensure_worktree(cfg.repo, wt, main)
        ws = Workspace(cfg, paths, "land", wt, 0, say)
        try:
            for task in tasks:
                _land_one(cfg, store, ws, task, report, say)
            if report.landed and cfg.land_validate:
                result = _gate(ws, cfg.land_validate, main)
                report.validate_ok = result.passed
                say(f"validate: {'passed' if result.passed else f'FAILED at `{result.failed}`: {result.last_line()}'}")
        finally:
            git.run(["worktree", "remove", str(wt)], cfg.repo, check=False)
            git.run(["worktree", "prune"], cfg.repo, check=False)
    return report


def _gate(ws: Workspace, commands: tuple[str, ...], sha: str) -> GateResult:
    try:
        return ws.gate(commands, sha)
    except SetupFailed as e:
        return GateResult(False, e.tail, 0.0, f"worktree.setup: {e.command}")


def _land_one(cfg: Config, store: Store, ws: Workspace, task: Task, report: Report, say: Callable[[str], None]) -> None:
    main = cfg.mainline_branch
    if not git.branch_exists(cfg.repo, task.branch) or not git.commits_ahead(cfg.repo, main, task.branch):
        report.skipped.append((task.id, "empty branch"))
        say(f"{task.id}: skipped (no commits on {task.branch})")
        return
    try:
        store.append(ev.JudgeClaimed(actor="cli", task=task.id, slave=LANDER))
    except Exception as e:  # noqa: BLE001 - a slave took it meanwhile: leave it to the judge
        report.skipped.append((task.id, f"taken by a judge meanwhile ({e})"))
        return
    for _ in range(3):
        cand = mainline.build(cfg.repo, main, task)
        if cand.conflicts:
            files = ", ".join(cand.conflicts)
            report.conflicts.append((task.id, files))
            store.append(ev.JudgeReleased(actor="cli", task=task.id, slave=LANDER, reason=f"conflict in {files}"))
            say(f"{task.id}: CONFLICT in {files} — rebase {task.branch} onto {main}, then `clanker land {task.id}`")
            return
        if cand.sha:
            gate = _gate(ws, cfg.gate, cand.sha)
            if not gate.passed:
                why = f"gate failed after rebase: `{gate.failed}`: {gate.last_line()}"
                report.failed.append((task.id, why))
                store.append(ev.JudgeReleased(actor="cli", task=task.id, slave=LANDER, reason=why))
                say(f"{task.id}: not landed — {why}")
                return
        landed = mainline.land(store.paths, main, cand)
        if landed.ok:
            store.append(
                ev.Verdict(actor="cli", task=task.id, slave=LANDER, verdict="done", reasons="landed by hand"),
                ev.LandingClaimed(actor="cli", task=task.id, slave=LANDER),
                ev.Mainlined(actor="cli", task=task.id, slave=LANDER, sha=landed.sha or "", base=cand.base),
            )
            report.landed.append((task.id, landed.sha or ""))
            say(f"{task.id}: landed as {(landed.sha or '')[:10]} — {task.title}")
            return
        if landed.reason != "moved":
            report.failed.append((task.id, landed.reason))
            store.append(ev.JudgeReleased(actor="cli", task=task.id, slave=LANDER, reason=landed.reason))
            say(f"{task.id}: not landed — {landed.reason}")
            return
    report.failed.append((task.id, f"{main} kept moving"))
    store.append(ev.JudgeReleased(actor="cli", task=task.id, slave=LANDER, reason=f"{main} kept moving"))


def summary(report: Report) -> str:
    lines = [
        f"landed {len(report.landed)}, skipped {len(report.skipped)}, conflicts {len(report.conflicts)}, "
        f"failed {len(report.failed)}"
    ]
    for tid, files in report.conflicts:
        lines.append(f"  conflict {tid}: {files} — retry with `clanker land {tid}` after rebasing its branch")
    for tid, why in report.failed:
        lines.append(f"  failed {tid}: {why}")
    if report.validate_ok is False:
        lines.append("  validate commands failed on main: see above")
    return "\n".join(lines)
