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
| task.retried, task.split | TODO | `back in the queue`, `split` |
| attempt.finished | RISK (auth: BLOK) | only when it failed for good; transient ones show as retry.wait |
| retry.wait | RISK | `retry N in 4s: REASON` (backoff) |
| gate.ran, health.ran | TEST | `gate passed (work, 1.2s)` / `gate FAILED: CMD: LAST LINE` (+ test paths) |
| risk | RISK (auth: BLOK) | `KIND: MESSAGE` (+ files) |
| credential.exhausted | BLOK | `credential NAME spent, resets in 2h` |
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

from ..state.model import Event, Usage
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
# Routine events that never make a line (heartbeat-like chatter, or covered by another line).
QUIET = frozenset(
    {"slave.spawned", "agent.waiting", "health.claimed", "task.landing", "task.touched", "preflight.requested"}
)


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


def advance(info: TaskInfo | None, ev: Event) -> TaskInfo | None:
    """The task's totals after `ev` (pure; the tail folds these as it reads the log)."""
    if ev.task is None:
        return info
    d = ev.data
    if info is None:
        if ev.type != "task.added":
            return TaskInfo(title=ev.task)  # a log that starts mid-way (e.g. hand-trimmed)
        return TaskInfo(title=str(d.get("title", ev.task)), added=ev.ts)
    if ev.type == "task.claimed":
        return dataclasses.replace(info, attempt=info.attempt + 1)
    if ev.type == "task.verdict":
        return dataclasses.replace(info, rework=d.get("verdict") == "rework")
    if ev.type in ("task.mainlined", "task.blocked", "task.cancelled", "task.retried"):
        return dataclasses.replace(info, rework=False)
    if ev.type == "attempt.finished":
        u = Usage.from_json(d.get("usage") if isinstance(d.get("usage"), dict) else None)
        judge = u.cost_usd if d.get("role") == "judge" else 0.0
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


def _added(ev: Event, info: TaskInfo) -> Described:
    tags = ev.data.get("tags") or ()
    kind = next((k for k in ("regression", "follow-up") if k in tags), "new")
    return "TODO", f"{kind}: {info.title}", [str(p) for p in ev.data.get("paths") or ()]


def _claimed(ev: Event, info: TaskInfo) -> Described:
    if info.rework:
        return "FIX", f"rework: {info.title}", []
    if info.attempt > 1:
        return "INFO", f"start attempt {info.attempt}: {info.title}", []
    return "INFO", f"start: {info.title}", []


def _submitted(ev: Event, info: TaskInfo) -> Described:
    files = [str(f) for f in ev.data.get("files") or ()]
    summary = ev.data.get("summary") or "no summary"
    if info.rework:
        return "FIX", f"rework submitted: {summary}", files
    return "INFO", f"submitted: {summary}", files


def _verdict(ev: Event, info: TaskInfo) -> Described | None:
    verdict, reasons = ev.data.get("verdict"), ev.data.get("reasons") or ""
    if verdict == "rework":
        return "TODO", f"rework asked: {reasons}", []
    if verdict == "blocked":
        return "BLOK", f"judge blocked it: {reasons}", []
    return "INFO", f"accepted: {reasons}" if reasons else "accepted", []


def _released(ev: Event, info: TaskInfo) -> Described:
    reason = str(ev.data.get("reason") or "released")
    died = "dead" in reason or "restarted" in reason
    return ("RISK" if died else "INFO"), f"released: {reason}", []


def _attempt(ev: Event, info: TaskInfo) -> Described | None:
    outcome = ev.data.get("outcome")
    if outcome in (None, "ok", "transient"):
        return None  # success is told by the submit/verdict line, a transient failure by retry.wait
    role = ev.data.get("role", "work")
    tag = "BLOK" if outcome == "auth" else "RISK"
    return tag, f"{role} agent {outcome}: {ev.data.get('error') or 'no message'}", []


def _gate(ev: Event, info: TaskInfo) -> Described:
    name = "health check" if ev.type == "health.ran" else "gate"
    role = ev.data.get("role")
    if ev.data.get("passed"):
        secs = ev.data.get("seconds")
        detail = ", ".join(x for x in (str(role or ""), f"{secs}s" if secs is not None else "") if x)
        return "TEST", f"{name} passed" + (f" ({detail})" if detail else ""), []
    failed = str(ev.data.get("failed") or "")
    output = ev.data.get("tail") or ev.data.get("output") or ""
    last = _last_line(output)
    where = f" ({role})" if role else ""
    msg = f"{name} FAILED{where}" + (f": `{failed}`" if failed else "") + (f": {last}" if last else "")
    return "TEST", msg, paths_in(failed) + paths_in(str(output))


def _risk(ev: Event, info: TaskInfo) -> Described:
    kind = str(ev.data.get("kind") or "risk")
    tag = "BLOK" if kind == "auth" else "RISK"
    return tag, f"{kind}: {ev.data.get('message') or ''}", [str(f) for f in ev.data.get("files") or ()]


def _credential(ev: Event, info: TaskInfo) -> Described:
    name = ev.data.get("credential") or "?"
    until = ev.data.get("until")
    when = f", resets in {elapsed(float(until) - ev.ts)}" if isinstance(until, int | float) else ""
    return "BLOK", f"credential {name} spent{when}", []


def _main_red(ev: Event, info: TaskInfo) -> Described:
    where = f" ({ev.data['where']})" if ev.data.get("where") else ""
    return "BLOK", f"main is red at {str(ev.data.get('sha') or '')[:8]}{where}", []


def _preflight(ev: Event, info: TaskInfo) -> Described:
    d = ev.data
    kind = d.get("kind")
    if d.get("passed"):
        return "TEST", f"gate preflight passed ({d.get('seconds', 0):.1f}s): the gate tests the worktree", []
    failed = f"`{d.get('failed')}`" if d.get("failed") else ""
    opened = [str(f) for f in d.get("opened") or ()]
    if kind == "setup":
        return "BLOK", f"gate preflight: worktree.setup fails in a fresh worktree: {failed}", []
    if kind == "trap":
        return "BLOK", "gate preflight: the gate reads your checkout, not the worktree", opened
    if kind == "regression":
        return "BLOK", f"gate preflight: main's gate fails: {failed}: {_last_line(d.get('tail'))}", []
    last = _last_line(d.get("tail"))
    return "BLOK", f"gate preflight: fails on main in a fresh worktree (environment): {failed}: {last}", []


def _setup_failed(ev: Event, info: TaskInfo) -> Described:
    d = ev.data
    last = _last_line(d.get("tail"))
    return "BLOK", f"worktree.setup failed (the environment, not the task): `{d.get('command')}`: {last}", []


def _fixed(tag: str, text: str) -> Callable[[Event, TaskInfo], Described]:
    return lambda ev, info: (tag, text, [])


def _reason(tag: str, prefix: str, key: str = "reason") -> Callable[[Event, TaskInfo], Described]:
    return lambda ev, info: (tag, f"{prefix}: {ev.data[key]}" if ev.data.get(key) else prefix, [])


def _fleet(ev: Event, info: TaskInfo) -> Described:
    who = ev.data.get("slave") or "*"
    verb = "paused" if ev.type == "fleet.paused" else "resumed"
    return "INFO", f"{verb} {'the whole fleet' if who == '*' else who}", []


def _generic(ev: Event, info: TaskInfo) -> Described:
    detail = next((ev.data[k] for k in ("message", "reason", "summary", "note") if ev.data.get(k)), "")
    return "INFO", f"{ev.type}: {detail}" if detail else ev.type, []


DESCRIBE: dict[str, Callable[[Event, TaskInfo], Described | None]] = {
    "task.added": _added,
    "task.claimed": _claimed,
    "task.submitted": _submitted,
    "task.judge_claimed": lambda ev, info: ("INFO", f"judging: {info.title}", []),
    "task.verdict": _verdict,
    "task.landing_released": _reason("INFO", "landing let go"),
    "task.mainlined": lambda ev, info: ("DONE", f"landed {str(ev.data.get('sha') or '')[:8]}: {info.title}", []),
    "task.blocked": _reason("BLOK", "blocked"),
    "task.failed": lambda ev, info: ("RISK", f"attempt {info.attempt} failed: {ev.data.get('error') or '?'}", []),
    "task.released": _released,
    "task.judge_released": _reason("INFO", "judge let go"),
    "task.cancelled": _reason("INFO", "cancelled"),
    "task.retried": _fixed("TODO", "retry: back in the queue"),
    "task.split": lambda ev, info: ("TODO", "split into " + ", ".join(map(str, ev.data.get("children") or [])), []),
    "task.note": _reason("INFO", "note", "note"),
    "attempt.finished": _attempt,
    "retry.wait": lambda ev, info: (
        "RISK",
        f"retry {ev.data.get('wait', '?')} in {float(ev.data.get('delay') or 0):.0f}s: {ev.data.get('reason') or ''}",
        [],
    ),
    "gate.ran": _gate,
    "health.ran": _gate,
    "risk": _risk,
    "credential.exhausted": _credential,
    "health.released": _reason("INFO", "health check let go"),
    "main.red": _main_red,
    "main.green": lambda ev, info: ("FIX", f"main is green again at {str(ev.data.get('sha') or '')[:8]}", []),
    "credential.restored": lambda ev, info: ("INFO", f"credential {ev.data.get('credential') or '?'} usable again", []),
    "slave.started": _fixed("INFO", "slave up"),
    "slave.stopped": _fixed("INFO", "slave stopped"),
    "slave.dead": _fixed("RISK", "slave dead"),
    "slave.paused": lambda ev, info: ("INFO", f"paused: credential {ev.data.get('credential') or '?'} spent", []),
    "fleet.paused": _fleet,
    "fleet.resumed": _fleet,
    "preflight.claimed": _fixed("INFO", "gate preflight: the gate on main in a fresh worktree"),
    "preflight.ran": _preflight,
    "preflight.released": _reason("INFO", "gate preflight let go"),
    "setup.failed": _setup_failed,
    "setup.ok": _fixed("FIX", "worktree.setup works again"),
    "setup.retry": _reason("INFO", "trying worktree.setup again"),
    "task.held": lambda ev, info: (
        "RISK",
        "held behind " + ", ".join(map(str, ev.data.get("behind") or [])) + " until it lands",
        [],
    ),
    "task.refresh": lambda ev, info: (
        "TODO",
        f"back to its author: {ev.data.get('reasons') or 'main moved'}",
        [str(f) for f in ev.data.get("files") or ()],
    ),
}


def format_line(ev: Event, info: TaskInfo | None, origin: float) -> Line | None:
    """The tail line for `ev`, given its task's totals *after* the event (see `advance`), or None
    when the event makes no line. `origin` is when the log began (the clock of task-less events)."""
    if ev.type in QUIET:
        return None
    described = DESCRIBE.get(ev.type, _generic)(ev, info or TaskInfo(title=ev.task or ""))
    if described is None:
        return None
    tag, message, files = described
    start = info.added if info is not None and info.added is not None else origin
    who = ev.data.get("slave") or ev.actor
    slave = "all" if who == "*" else short(who) or "-"
    accent = ""
    if info is not None and ev.task is not None:
        tok = f"tok {tokens(info.tokens)} {money(info.cost_usd)}"
        if judge_heavy(info):
            accent = f"judge {money(info.judge_cost_usd)}"
            tok += " " + accent
    else:
        tok = "tok -"
    head = [tag.ljust(4), f"t+{elapsed(ev.ts - start)}", tok, slave, short(ev.task or "-")]
    tail = refs(files)
    text = _fit(head, short(message), tail)
    return Line(tag.ljust(4), COLOURS[tag], text, accent, ev.ts, ev.task, slave)


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
