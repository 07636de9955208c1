"""The tail stream: one event (plus its task's running totals) → one line, or nothing.

The format is the seed plan's, to the letter:

    TAG | t+5m | tok 1.2k $0.41 | slave | task | short message | files/tests

- TAG is four characters (`FIX ` padded), coloured by the seed's map: INFO gray, RISK yellow,
  BLOK red, TODO cyan, FIX green, TEST blue, DONE magenta.
- `t+` is the time since the task was added (a per-task clock, so a task retried months later
  reads `t+3mo`); an event without a task counts from the first event of the log.
- `tok` is the task's total so far, work and judge together (`tok 1.2k $0.41`). When the judge's
  share is more than 15 % of that cost, ` judge $0.09` is appended and drawn in the accent colour.
- The last field (only when there is one) lists file and test references as paths only: no line
  numbers, no test names, at most three and `+N`.
- A line is at most 140 characters: the message is shortened first, then the line, with `…`.

Which events make a line (cadence: task start and finish, retry/backoff, errors, test runs — never
heartbeats or other routine chatter):

| event | tag | message |
|---|---|---|
| task.added | TODO | `new: TITLE` (`regression: TITLE`, `follow-up: TITLE` by tag) |
| task.claimed | INFO, FIX during rework | `start: TITLE`, `start attempt N: TITLE`, `rework: TITLE` |
| task.submitted | INFO, FIX during rework | `submitted: SUMMARY`, `rework submitted: SUMMARY` (+ files) |
| task.judge_claimed | INFO | `judging: TITLE` |
| task.verdict done / rework / blocked | INFO / TODO / BLOK | `accepted: …`, `rework asked: …`, the reasons |
| task.landing_released | INFO | `landing let go: REASON` (task.landing makes no line: TEST and DONE follow) |
| task.mainlined | DONE | `landed SHA: TITLE` |
| task.blocked | BLOK | the reason |
| task.failed | RISK | `attempt N failed: ERROR` |
| task.released | RISK if its slave died, else INFO | the reason |
| task.judge_released, task.cancelled, task.note | INFO | the reason / note |
| task.retried, task.split, task.rescoped | TODO | `back in the queue`, `split`, `rescoped: WHY` |
| attempt.finished | RISK (auth: BLOK) | only when it failed for good; transient ones show as retry.wait |
| retry.wait | RISK | `retry N in 4s: REASON` (backoff) |
| gate.ran, health.ran | TEST | `gate passed (work, 1.2s)` / `gate FAILED: CMD: LAST LINE` (+ test paths) |
| risk | RISK (auth: BLOK) | `KIND: MESSAGE` (+ files) |
| credential.exhausted | BLOK | `credential NAME spent, resets in 2h` |
| budget.warned / budget.exceeded | RISK / BLOK | `budget daily_usd 80% spent on 2026-12-01: $8.10 of $10.00` |
| scheduler.targets / .capped | INFO | `targets: integrate, work ≤2 judge ≤1 of 4 (WHY)`, `cap 2 … by user: WHY` |
| main.red / main.green | BLOK / FIX | `main is red at SHA (WHERE)`, `main is green again at SHA` |
| preflight.claimed / preflight.ran | INFO / TEST passed, BLOK failed | `gate preflight: …` what it found |
| setup.failed / setup.ok / setup.retry | BLOK / FIX / INFO | `worktree.setup failed: CMD …` (not the task's fault) |
| task.held / task.refresh | RISK / TODO | `held behind T1 …`, `back to its author: REASONS` |
| slave.started / slave.stopped / slave.paused, fleet.paused / fleet.resumed, credential.restored | INFO | short |
| anything else (batch.*, …) | INFO | its type and message, so new event kinds show up without a change here |
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..state import events as ev
from ..state.events import Event
from ..text import sanitize
from ..units import elapsed, money, tokens

__all__ = ["elapsed", "money", "tokens"]  # re-exported: the tail's units

MAX_LEN = 140
JUDGE_SHARE = 0.15
COLOURS = {
    "INFO": "gray",
    "RISK": "yellow",
    "BLOK": "red",
    "TODO": "cyan",
    "FIX": "green",
    "TEST": "blue",
    "DONE": "magenta",
}


@dataclass(frozen=True)
class TaskInfo:
    """What the tail knows about a task at the time of an event: its running totals."""

    title: str = ""
    added: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0  # work + judge
    judge_cost_usd: float = 0.0
    attempt: int = 0  # work claims so far
    rework: bool = False  # the judge asked for rework and it has not been accepted since


@dataclass(frozen=True)
class Line:
    tag: str  # the 4-character tag as shown, e.g. "FIX "
    colour: str  # the seed's colour for the tag
    text: str  # the whole line, at most MAX_LEN characters
    accent: str = ""  # a part of `text` to draw in the accent colour (the judge's cost)
    ts: float = 0.0
    task: str | None = None
    slave: str = ""


def advance(info: TaskInfo | None, e: Event) -> TaskInfo | None:
    """The task's totals after `e` (pure; the tail folds these as it reads the log)."""
    task = e.task_id
    if task is None:
        return info
    if info is None:
        if not isinstance(e, ev.TaskAdded):
            return TaskInfo(title=task)  # a log that starts mid-way (e.g. hand-trimmed)
        return TaskInfo(title=e.title or task, added=e.ts)
    if isinstance(e, ev.TaskClaimed):
        return dataclasses.replace(info, attempt=info.attempt + 1)
    if isinstance(e, ev.Verdict):
        return dataclasses.replace(info, rework=e.verdict == "rework")
    if isinstance(e, ev.Mainlined | ev.TaskBlocked | ev.TaskCancelled | ev.TaskRetried):
        return dataclasses.replace(info, rework=False)
    if isinstance(e, ev.AttemptFinished):
        u = e.usage
        judge = u.cost_usd if e.role == "judge" else 0.0
        return dataclasses.replace(
            info,
            tokens=info.tokens + u.tokens,
            cost_usd=round(info.cost_usd + u.cost_usd, 6),
            judge_cost_usd=round(info.judge_cost_usd + judge, 6),
        )
    return info


# --- units -------------------------------------------------------------------------------------


def judge_heavy(info: TaskInfo) -> bool:
    """The seed's 15 % rule: the judge cost more than 15 % of everything the task cost."""
    return info.judge_cost_usd > JUDGE_SHARE * info.cost_usd and info.judge_cost_usd > 0


# --- references: paths only ---------------------------------------------------------------------

_PATHLIKE = re.compile(r"(?:\.{0,2}/)?(?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\.[A-Za-z][A-Za-z0-9]{0,5}\b")


def as_path(ref: str) -> str:
    """`./tests/test_x.py::test_y` → `tests/test_x.py`; `src/a.py:12:3` → `src/a.py`."""
    ref = ref.strip().strip("`'\"(),")
    ref = ref.split("::", 1)[0]
    ref = re.sub(r"(?::\d+)+:?$", "", ref)
    return ref[2:] if ref.startswith("./") else ref


def refs(items: Iterable[str], limit: int = 3) -> str:
    seen = list(dict.fromkeys(p for p in (as_path(sanitize(i)) for i in items) if p and " " not in p))
    shown = ", ".join(seen[:limit])
    return shown + (f" +{len(seen) - limit}" if len(seen) > limit else "")


def paths_in(text: str) -> list[str]:
    """Path-like words in a command or its output (`pytest tests/test_a.py::t` → tests/test_a.py)."""
    return [as_path(m.group(0)) for m in _PATHLIKE.finditer(text)]


# --- the line ------------------------------------------------------------------------------------


def short(text: object) -> str:
    """One line of plain text: escape sequences and control characters gone, spaces collapsed."""
    return " ".join(sanitize(str(text)).split())


def _last_line(text: object) -> str:
    """The last line that says something (the gate's own `$ cmd` and `(exit N)` lines don't)."""
    lines = [ln for ln in str(text or "").splitlines() if ln.strip() and not ln.startswith(("(exit ", "$ "))]
    return lines[-1] if lines else ""


Described = tuple[str, str, list[str]]  # tag, message, file/test refs
DESCRIBE: dict[type[Event], Callable[[Any, TaskInfo], Described | None]] = {}  # event class → its line


F = TypeVar("F", bound=Callable[..., Any])


def says(*classes: type[Event]) -> Callable[[F], F]:
    """Register the function that describes events of these classes."""

    def register(fn: F) -> F:
        for cls in classes:
            DESCRIBE[cls] = fn
        return fn

    return register


@says(ev.TaskAdded)
def _added(e: ev.TaskAdded, info: TaskInfo) -> Described:
    kind = next((k for k in ("regression", "follow-up") if k in e.tags), "new")
    return "TODO", f"{kind}: {info.title}", list(e.paths)


@says(ev.TaskClaimed)
def _claimed(e: ev.TaskClaimed, info: TaskInfo) -> Described:
    if info.rework:
        return "FIX", f"rework: {info.title}", []
    if info.attempt > 1:
        return "INFO", f"start attempt {info.attempt}: {info.title}", []
    return "INFO", f"start: {info.title}", []


@says(ev.TaskSubmitted)
def _submitted(e: ev.TaskSubmitted, info: TaskInfo) -> Described:
    summary = e.summary or "no summary"
    if info.rework:
        return "FIX", f"rework submitted: {summary}", list(e.files)
    return "INFO", f"submitted: {summary}", list(e.files)


@says(ev.JudgeClaimed)
def _judge_claimed(e: ev.JudgeClaimed, info: TaskInfo) -> Described:
    return "INFO", f"judging: {info.title}", []


@says(ev.Verdict)
def _verdict(e: ev.Verdict, info: TaskInfo) -> Described:
    if e.verdict == "rework":
        return "TODO", f"rework asked: {e.reasons}", []
    if e.verdict == "blocked":
        return "BLOK", f"judge blocked it: {e.reasons}", []
    return "INFO", f"accepted: {e.reasons}" if e.reasons else "accepted", []


@says(ev.TaskReleased)
def _released(e: ev.TaskReleased, info: TaskInfo) -> Described:
    reason = e.reason or "released"
    died = "dead" in reason or "restarted" in reason
    return ("RISK" if died else "INFO"), f"released: {reason}", []


@says(ev.AttemptFinished)
def _attempt(e: ev.AttemptFinished, info: TaskInfo) -> Described | None:
    if e.outcome in ("", "ok", "transient"):
        return None  # success is told by the submit/verdict line, a transient failure by retry.wait
    tag = "BLOK" if e.outcome == "auth" else "RISK"
    return tag, f"{e.role} agent {e.outcome}: {e.error or 'no message'}", []


@says(ev.GateRan, ev.HealthRan)
def _gate(e: ev.GateRan | ev.HealthRan, info: TaskInfo) -> Described:
    name = "health check" if isinstance(e, ev.HealthRan) else "gate"
    if isinstance(e, ev.HealthRan) and e.stale:
        return "INFO", f"health check of {e.sha[:10]} failed, but main moved on green since: dropped", []
    role = e.role if isinstance(e, ev.GateRan) else ""
    if e.passed:
        detail = ", ".join(x for x in (role, f"{e.seconds}s") if x)
        return "TEST", f"{name} passed" + (f" ({detail})" if detail else ""), []
    failed = e.failed or ""
    last = _last_line(e.tail)
    where = f" ({role})" if role else ""
    msg = f"{name} FAILED{where}" + (f": `{failed}`" if failed else "") + (f": {last}" if last else "")
    return "TEST", msg, paths_in(failed) + paths_in(e.tail)


@says(ev.Risk)
def _risk(e: ev.Risk, info: TaskInfo) -> Described:
    tag = "BLOK" if e.kind == "auth" else "RISK"
    return tag, f"{e.kind}: {e.message}", list(e.files)


@says(ev.CredentialExhausted)
def _credential(e: ev.CredentialExhausted, info: TaskInfo) -> Described:
    when = f", resets in {elapsed(e.until - e.ts)}" if e.until else ""
    return "BLOK", f"credential {e.credential or '?'} spent{when}", []


def _spend(e: ev.BudgetWarned) -> str:
    if e.budget.endswith("_usd"):
        return f"${e.used:.2f} of ${e.limit:.2f}"
    return f"{int(e.used):,} of {int(e.limit):,} tokens"


@says(ev.BudgetWarned)
def _budget_warned(e: ev.BudgetWarned, info: TaskInfo) -> Described:
    period = "in total" if e.period == "total" else f"on {e.period}"
    return "RISK", f"budget {e.budget} 80% spent {period}: {_spend(e)}", []


@says(ev.BudgetExceeded)
def _budget_exceeded(e: ev.BudgetExceeded, info: TaskInfo) -> Described:
    period = "in total" if e.period == "total" else f"on {e.period}"
    return "BLOK", f"budget {e.budget} spent {period}: {_spend(e)}; no new agent run starts", []


@says(ev.SchedulerTargets)
def _targets(e: ev.SchedulerTargets, info: TaskInfo) -> Described:
    why = f" ({e.why})" if e.why else ""
    return "INFO", f"targets: {e.phase}, work ≤{e.work} judge ≤{e.judge} of {e.cap}{why}", []


@says(ev.SchedulerCapped)
def _capped(e: ev.SchedulerCapped, info: TaskInfo) -> Described:
    if e.cap <= 0:
        return "INFO", f"cap by {e.source} lifted", []
    return "INFO", f"cap {e.cap} agents at once by {e.source}" + (f": {e.reason}" if e.reason else ""), []


@says(ev.TaskRescoped)
def _rescoped(e: ev.TaskRescoped, info: TaskInfo) -> Described:
    return "TODO", "rescoped by the planner" + (f": {e.reason}" if e.reason else "") + "; back in the queue", []


@says(ev.MainRed)
def _main_red(e: ev.MainRed, info: TaskInfo) -> Described:
    where = f" ({e.where})" if e.where else ""
    return "BLOK", f"main is red at {e.sha[:8]}{where}", []


@says(ev.MainGreen)
def _main_green(e: ev.MainGreen, info: TaskInfo) -> Described:
    return "FIX", f"main is green again at {e.sha[:8]}", []


@says(ev.FleetPaused, ev.FleetResumed)
def _fleet(e: ev.FleetPaused | ev.FleetResumed, info: TaskInfo) -> Described:
    who = e.slave or "*"
    verb = "paused" if isinstance(e, ev.FleetPaused) else "resumed"
    return "INFO", f"{verb} {'the whole fleet' if who == '*' else who}", []


@says(ev.PreflightRan)
def _preflight(e: ev.PreflightRan, info: TaskInfo) -> Described:
    if e.passed:
        return "TEST", f"gate preflight passed ({e.seconds:.1f}s): the gate tests the worktree", []
    failed = f"`{e.failed}`" if e.failed else ""
    if e.kind == "setup":
        return "BLOK", f"gate preflight: worktree.setup fails in a fresh worktree: {failed}", []
    if e.kind == "trap":
        return "BLOK", "gate preflight: the gate reads your checkout, not the worktree", list(e.opened)
    last = _last_line(e.tail)
    if e.kind == "regression":
        return "BLOK", f"gate preflight: main's gate fails: {failed}: {last}", []
    return "BLOK", f"gate preflight: fails on main in a fresh worktree (environment): {failed}: {last}", []


@says(ev.SetupFailed)
def _setup_failed(e: ev.SetupFailed, info: TaskInfo) -> Described:
    last = _last_line(e.tail)
    return "BLOK", f"worktree.setup failed (the environment, not the task): `{e.command}`: {last}", []


@says(ev.TaskHeld)
def _held(e: ev.TaskHeld, info: TaskInfo) -> Described:
    return "RISK", "held behind " + ", ".join(e.behind) + " until it lands", []


@says(ev.TaskConflicted)
def _conflicted(e: ev.TaskConflicted, info: TaskInfo) -> Described:
    return "RISK", "merging main left conflicts: its agent resolves them", list(e.files)


@says(ev.TaskRefresh)
def _refresh(e: ev.TaskRefresh, info: TaskInfo) -> Described:
    return "TODO", f"back to its author: {e.reasons or 'main moved'}", list(e.files)


@says(ev.TaskFailed)
def _failed(e: ev.TaskFailed, info: TaskInfo) -> Described:
    return "RISK", f"attempt {info.attempt} failed: {e.error or '?'}", []


@says(ev.Mainlined)
def _mainlined(e: ev.Mainlined, info: TaskInfo) -> Described:
    return "DONE", f"landed {e.sha[:8]}: {info.title}", []


@says(ev.TaskSplit)
def _split(e: ev.TaskSplit, info: TaskInfo) -> Described:
    return "TODO", "split into " + ", ".join(e.children), []


@says(ev.RetryWait)
def _retry(e: ev.RetryWait, info: TaskInfo) -> Described:
    return "RISK", f"retry {e.wait} in {e.delay:.0f}s: {e.reason}", []


@says(ev.SlavePaused)
def _slave_paused(e: ev.SlavePaused, info: TaskInfo) -> Described:
    return "INFO", f"paused: credential {e.credential or '?'} spent", []


def _fixed(tag: str, text: str) -> Callable[[Event, TaskInfo], Described]:
    return lambda e, info: (tag, text, [])


def _reason(tag: str, prefix: str, key: str = "reason") -> Callable[[Event, TaskInfo], Described]:
    def describe(e: Event, info: TaskInfo) -> Described:
        value = getattr(e, key, "")
        return tag, f"{prefix}: {value}" if value else prefix, []

    return describe


DESCRIBE.update(
    {
        ev.LandingReleased: _reason("INFO", "landing let go"),
        ev.TaskBlocked: _reason("BLOK", "blocked"),
        ev.JudgeReleased: _reason("INFO", "judge let go"),
        ev.TaskCancelled: _reason("INFO", "cancelled"),
        ev.TaskRetried: _fixed("TODO", "retry: back in the queue"),
        ev.TaskNote: _reason("INFO", "note", "note"),
        ev.HealthReleased: _reason("INFO", "health check let go"),
        ev.SlaveStarted: _fixed("INFO", "slave up"),
        ev.SlaveStopped: _fixed("INFO", "slave stopped"),
        ev.PreflightClaimed: _fixed("INFO", "gate preflight: the gate on main in a fresh worktree"),
        ev.PreflightReleased: _reason("INFO", "gate preflight let go"),
        ev.SetupOk: _fixed("FIX", "worktree.setup works again"),
        ev.SetupRetry: _reason("INFO", "trying worktree.setup again"),
    }
)
# Routine events that never make a line (heartbeat-like chatter, or covered by another line).
QUIET_EVENTS: tuple[type[Event], ...] = (
    ev.SlaveSpawned,
    ev.HealthClaimed,
    ev.LandingClaimed,
    ev.TaskTouched,
    ev.PreflightRequested,
)
QUIET = frozenset(QUIET_EVENTS)


def _generic(e: Event, info: TaskInfo) -> Described:
    """Events without a line of their own show their type and message, so new kinds are seen."""
    fields = e.payload()
    detail = next((fields[k] for k in ("message", "reason", "summary", "note") if fields.get(k)), "")
    return "INFO", f"{e.TYPE}: {detail}" if detail else e.TYPE, []


def format_line(e: Event, info: TaskInfo | None, origin: float) -> Line | None:
    """The tail line for `e`, given its task's totals *after* the event (see `advance`), or None
    when the event makes no line. `origin` is when the log began (the clock of task-less events)."""
    if type(e) in QUIET:
        return None
    described = DESCRIBE.get(type(e), _generic)(e, info or TaskInfo(title=e.task_id or ""))
    if described is None:
        return None
    tag, message, files = described
    start = info.added if info is not None and info.added is not None else origin
    who = getattr(e, "slave", None) or e.actor
    slave = "all" if who == "*" else short(who) or "-"
    accent = ""
    task = e.task_id
    if info is not None and task is not None:
        tok = f"tok {tokens(info.tokens)} {money(info.cost_usd)}"
        if judge_heavy(info):
            accent = f"judge {money(info.judge_cost_usd)}"
            tok += " " + accent
    else:
        tok = "tok -"
    head = [tag.ljust(4), f"t+{elapsed(e.ts - start)}", tok, slave, short(task or "-")]
    tail = refs(files)
    text = _fit(head, short(message), tail)
    return Line(tag.ljust(4), COLOURS[tag], text, accent, e.ts, task, slave)


def _fit(head: list[str], message: str, tail: str) -> str:
    """Join the fields, shortening the message before anything else to stay within MAX_LEN."""
    fixed = " | ".join(head) + " | "
    suffix = f" | {tail}" if tail else ""
    room = MAX_LEN - len(fixed) - len(suffix)
    if len(message) > room:
        room = max(room, 12)
        message = message[: room - 1].rstrip() + "…"
    line = fixed + message + suffix
    return line if len(line) <= MAX_LEN else line[: MAX_LEN - 1] + "…"
