"""The tail formatter, rule by rule from the seed's Tail Stream Spec (case tables), and the feed that
reads events.log incrementally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clanker.state import log as events
from clanker.state.events import REGISTRY, Event
from clanker.tui.feed import Feed
from clanker.tui.tail import COLOURS, MAX_LEN, TaskInfo, advance, as_path, elapsed, format_line, money, refs, tokens

from .helpers import event

T0 = 1_700_000_000.0
INFO = TaskInfo(title="Add a settings file", added=T0, tokens=1234, cost_usd=0.41)


def ev(type_: str, task: str | None = "T3", at: float = 300, actor: str = "c1", **data: Any) -> Event:
    return event(type_, actor, task, {"slave": actor, **data}, ts=T0 + at)


# --- units -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (300, "5m"),
        (3599, "59m"),
        (3600, "1h"),
        (2 * 3600, "2h"),
        (86399, "23h"),
        (86400, "1d"),
        (3 * 86400, "3d"),
        (30 * 86400 - 1, "29d"),
        (30 * 86400, "1mo"),
        (95 * 86400, "3mo"),
        (400 * 86400, "13mo"),
    ],
)
def test_elapsed_uses_short_units(seconds: float, shown: str) -> None:
    assert elapsed(seconds) == shown


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1.0k"),
        (1234, "1.2k"),
        (1299, "1.2k"),
        (9999, "9.9k"),
        (12_345, "12k"),
        (999_999, "999k"),
        (1_234_567, "1.2M"),
        (12_345_678, "12M"),
    ],
)
def test_tokens_are_short(n: int, shown: str) -> None:
    assert tokens(n) == shown


@pytest.mark.parametrize(
    ("usd", "shown"), [(0, "$0.00"), (0.41, "$0.41"), (0.004, "$0.004"), (0.0099, "$0.010"), (12.5, "$12.50")]
)
def test_money(usd: float, shown: str) -> None:
    assert money(usd) == shown


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("tests/test_x.py::test_y", "tests/test_x.py"),
        ("./src/a.py:12:3", "src/a.py"),
        ("src/a.py:12:", "src/a.py"),
        ("`gate.sh`", "gate.sh"),
        ("docs/usage.md", "docs/usage.md"),
    ],
)
def test_refs_are_paths_only(ref: str, path: str) -> None:
    assert as_path(ref) == path


def test_refs_are_deduplicated_and_capped() -> None:
    assert refs(["a.py", "./a.py", "b.py:3"]) == "a.py, b.py"
    assert refs([f"f{i}.py" for i in range(7)]) == "f0.py, f1.py, f2.py +4"
    assert refs(["not a path with spaces", "ok.txt"]) == "ok.txt"


def test_the_colour_map_is_the_seeds() -> None:
    assert COLOURS == {
        "INFO": "gray",
        "RISK": "yellow",
        "BLOK": "red",
        "TODO": "cyan",
        "FIX": "green",
        "TEST": "blue",
        "DONE": "magenta",
    }


# --- lines -----------------------------------------------------------------------------------------

HEAVY = TaskInfo(title="Heavy", added=T0, tokens=5000, cost_usd=0.40, judge_cost_usd=0.07)  # 17.5 %
EXACT = TaskInfo(title="Exact", added=T0, tokens=5000, cost_usd=0.40, judge_cost_usd=0.06)  # 15 %: not more
REWORK = TaskInfo(title="Fix it", added=T0, tokens=800, cost_usd=0.2, attempt=2, rework=True)
SECOND = TaskInfo(title="Again", added=T0, attempt=2)
GATE_TAIL = "$ pytest -q\ntests/test_x.py::test_y FAILED\nsrc/app.py:12: AssertionError\n1 failed\n(exit 1)\n"

CASES: list[tuple[str, Event, TaskInfo | None, str | None]] = [
    # The seed's own example shape.
    ("start", ev("task.claimed"), INFO, "INFO | t+5m | tok 1.2k $0.41 | c1 | T3 | start: Add a settings file"),
    ("start again", ev("task.claimed"), SECOND, "INFO | t+5m | tok 0 $0.00 | c1 | T3 | start attempt 2: Again"),
    ("rework start", ev("task.claimed"), REWORK, "FIX  | t+5m | tok 800 $0.20 | c1 | T3 | rework: Fix it"),
    (
        "added",
        ev("task.added", at=0, actor="cli", title="Add a settings file", paths=["etc"]),
        TaskInfo(title="Add a settings file", added=T0),
        "TODO | t+0s | tok 0 $0.00 | cli | T3 | new: Add a settings file | etc",
    ),
    (
        "regression added",
        ev("task.added", at=0, title="Regression: gate", tags=["regression"]),
        TaskInfo(title="Regression: gate", added=T0),
        "TODO | t+0s | tok 0 $0.00 | c1 | T3 | regression: Regression: gate",
    ),
    (
        "submitted",
        ev("task.submitted", at=7200, summary="changed etc/settings.ini", files=["etc/settings.ini"]),
        INFO,
        "INFO | t+2h | tok 1.2k $0.41 | c1 | T3 | submitted: changed etc/settings.ini | etc/settings.ini",
    ),
    (
        "rework submitted",
        ev("task.submitted", summary="added the comment", files=["lib/bye.sh"]),
        REWORK,
        "FIX  | t+5m | tok 800 $0.20 | c1 | T3 | rework submitted: added the comment | lib/bye.sh",
    ),
    (
        "judging",
        ev("task.judge_claimed", actor="c2"),
        INFO,
        "INFO | t+5m | tok 1.2k $0.41 | c2 | T3 | judging: Add a settings file",
    ),
    (
        "rework asked",
        ev("task.verdict", verdict="rework", reasons="add a comment"),
        INFO,
        "TODO | t+5m | tok 1.2k $0.41 | c1 | T3 | rework asked: add a comment",
    ),
    (
        "judge blocks",
        ev("task.verdict", verdict="blocked", reasons="needs a product decision"),
        INFO,
        "BLOK | t+5m | tok 1.2k $0.41 | c1 | T3 | judge blocked it: needs a product decision",
    ),
    (
        "accepted",
        ev("task.verdict", verdict="done", reasons="ok"),
        INFO,
        "INFO | t+5m | tok 1.2k $0.41 | c1 | T3 | accepted: ok",
    ),
    (
        "landed",
        ev("task.mainlined", at=3 * 86400, sha="b14b63aea9ff"),
        INFO,
        "DONE | t+3d | tok 1.2k $0.41 | c1 | T3 | landed b14b63ae: Add a settings file",
    ),
    (
        "blocked",
        ev("task.blocked", at=95 * 86400, reason="auth: run `claude /login`"),
        INFO,
        "BLOK | t+3mo | tok 1.2k $0.41 | c1 | T3 | blocked: auth: run `claude /login`",
    ),
    (
        "attempt failed",
        ev("task.failed", error="gate failed: `sh gate.sh`: boom"),
        SECOND,
        "RISK | t+5m | tok 0 $0.00 | c1 | T3 | attempt 2 failed: gate failed: `sh gate.sh`: boom",
    ),
    (
        "released by a dead slave",
        ev("task.released", actor="ctl", reason="slave is dead (stale heartbeat, no process)"),
        INFO,
        "RISK | t+5m | tok 1.2k $0.41 | ctl | T3 | released: slave is dead (stale heartbeat, no process)",
    ),
    (
        "released for budget",
        ev("task.released", reason="out of budget until 18:00", refund=True),
        INFO,
        "INFO | t+5m | tok 1.2k $0.41 | c1 | T3 | released: out of budget until 18:00",
    ),
    (
        "gate passed",
        ev("gate.ran", role="work", passed=True, seconds=1.2),
        INFO,
        "TEST | t+5m | tok 1.2k $0.41 | c1 | T3 | gate passed (work, 1.2s)",
    ),
    (
        "gate failed: test paths only",
        ev("gate.ran", role="judge", passed=False, failed="pytest -q tests/test_x.py", tail=GATE_TAIL),
        INFO,
        "TEST | t+5m | tok 1.2k $0.41 | c1 | T3 | gate FAILED (judge): `pytest -q tests/test_x.py`: 1 failed"
        " | tests/test_x.py, src/app.py",
    ),
    (
        "health check",
        ev("health.ran", None, passed=False, failed="sh gate.sh", tail="GATE_FAIL marker present"),
        None,
        "TEST | t+5m | tok - | c1 | - | health check FAILED: `sh gate.sh`: GATE_FAIL marker present | gate.sh",
    ),
    (
        "retry backoff",
        ev("retry.wait", wait=2, delay=3.6, reason="API Error: 529 Overloaded"),
        INFO,
        "RISK | t+5m | tok 1.2k $0.41 | c1 | T3 | retry 2 in 4s: API Error: 529 Overloaded",
    ),
    (
        "agent out of budget",
        ev("attempt.finished", role="work", outcome="out_of_budget", error="Credit balance is too low"),
        INFO,
        "RISK | t+5m | tok 1.2k $0.41 | c1 | T3 | work agent out_of_budget: Credit balance is too low",
    ),
    (
        "agent auth is a blocker",
        ev("attempt.finished", role="judge", outcome="auth", error="Not logged in"),
        INFO,
        "BLOK | t+5m | tok 1.2k $0.41 | c1 | T3 | judge agent auth: Not logged in",
    ),
    ("agent ok: no line", ev("attempt.finished", outcome="ok"), INFO, None),
    ("agent transient: retry.wait says it", ev("attempt.finished", outcome="transient"), INFO, None),
    (
        "conflict is a risk",
        ev("risk", kind="conflict", message="conflicts with main in: a.txt", files=["a.txt"]),
        INFO,
        "RISK | t+5m | tok 1.2k $0.41 | c1 | T3 | conflict: conflicts with main in: a.txt | a.txt",
    ),
    (
        "judge auth is a blocker",
        ev("risk", kind="auth", message="judge agent: run `claude /login`"),
        INFO,
        "BLOK | t+5m | tok 1.2k $0.41 | c1 | T3 | auth: judge agent: run `claude /login`",
    ),
    (
        "credential spent",
        ev("credential.exhausted", None, credential="team-1", until=T0 + 300 + 7300),
        None,
        "BLOK | t+5m | tok - | c1 | - | credential team-1 spent, resets in 2h",
    ),
    (
        "main red",
        ev("main.red", None, sha="abcdef1234", where="the health check"),
        None,
        "BLOK | t+5m | tok - | c1 | - | main is red at abcdef12 (the health check)",
    ),  # fmt: skip
    (
        "main green",
        ev("main.green", None, sha="abcdef1234"),
        None,
        "FIX  | t+5m | tok - | c1 | - | main is green again at abcdef12",
    ),
    (
        "pause",
        ev("fleet.paused", None, actor="ctl", slave="*"),
        None,
        "INFO | t+5m | tok - | all | - | paused the whole fleet",
    ),
    ("resume one", ev("fleet.resumed", None, slave="c2"), None, "INFO | t+5m | tok - | c2 | - | resumed c2"),
    ("slave up", ev("slave.started", None, pid=7), None, "INFO | t+5m | tok - | c1 | - | slave up"),
    (
        "targets changed",
        ev("scheduler.targets", None, phase="integrate", work=2, judge=1, cap=4, why="conflict rate 40%"),
        None,
        "INFO | t+5m | tok - | c1 | - | targets: integrate, work ≤2 judge ≤1 of 4 (conflict rate 40%)",
    ),
    (
        "capped",
        ev("scheduler.capped", None, actor="cli", source="user", cap=2, reason="saving money"),
        None,
        "INFO | t+5m | tok - | cli | - | cap 2 agents at once by user: saving money",
    ),
    (
        "cap lifted",
        ev("scheduler.capped", None, actor="c2", source="planner", cap=0),
        None,
        "INFO | t+5m | tok - | c2 | - | cap by planner lifted",
    ),
    ("spawned: quiet", ev("slave.spawned", None), None, None),
    (
        "cancelled",
        ev("task.cancelled", actor="cli", reason="cancelled by the user"),
        INFO,
        "INFO | t+5m | tok 1.2k $0.41 | cli | T3 | cancelled: cancelled by the user",
    ),  # fmt: skip
    (
        "retried",
        ev("task.retried", actor="cli"),
        INFO,
        "TODO | t+5m | tok 1.2k $0.41 | cli | T3 | retry: back in the queue",
    ),
    ("touched files are quiet", ev("task.touched", files=["a.py"]), INFO, None),
    ("preflight asked for is quiet", ev("preflight.requested", None, reason="a new run"), None, None),
    (
        "preflight passed",
        ev("preflight.ran", None, passed=True, kind="ok", seconds=2.25),
        None,
        "TEST | t+5m | tok - | c1 | - | gate preflight passed (2.2s): the gate tests the worktree",
    ),
    (
        "preflight trap",
        ev("preflight.ran", None, passed=False, kind="trap", opened=["src/pkg/core.py", "src/pkg/__init__.py"]),
        None,
        "BLOK | t+5m | tok - | c1 | - | gate preflight: the gate reads your checkout, not the worktree | "
        "src/pkg/core.py, src/pkg/__init__.py",
    ),
    (
        "preflight environment",
        ev(
            "preflight.ran",
            None,
            passed=False,
            kind="gate",
            failed="pytest -q",
            tail="E   ModuleNotFoundError\n(exit 1)",
        ),
        None,
        "BLOK | t+5m | tok - | c1 | - | gate preflight: fails on main in a fresh worktree (environment): `pytest -q`: "
        "E ModuleNotFoundError",
    ),
    (
        "setup failed",
        ev("setup.failed", None, slave="c2", command="npm ci", tail="$ npm ci\nnpm ERR! 404\n(exit 1)"),
        None,
        "BLOK | t+5m | tok - | c2 | - | worktree.setup failed (the environment, not the task): `npm ci`: npm ERR! 404",
    ),
    (
        "setup works",
        ev("setup.ok", None, slave="c2"),
        None,
        "FIX  | t+5m | tok - | c2 | - | worktree.setup works again",
    ),
    (
        "held",
        ev("task.held", behind=["T1"]),
        INFO,
        "RISK | t+5m | tok 1.2k $0.41 | c1 | T3 | held behind T1 until it lands",
    ),
    (
        "refresh",
        ev("task.refresh", reasons="main moved and now conflicts with it in: a.txt", files=["a.txt"]),
        INFO,
        "TODO | t+5m | tok 1.2k $0.41 | c1 | T3 | back to its author: main moved and now conflicts with it in: a.txt "
        "| a.txt",
    ),
    (
        "unknown kinds still show",
        ev("plan.requested", None, request="T2", reason="blocked"),
        None,
        "INFO | t+5m | tok - | c1 | - | plan.requested: blocked",
    ),
    (
        "judge cost > 15 %: accent",
        ev("task.mainlined", sha="abc"),
        HEAVY,
        "DONE | t+5m | tok 5.0k $0.40 judge $0.07 | c1 | T3 | landed abc: Heavy",
    ),  # fmt: skip
    (
        "judge cost = 15 %: none",
        ev("task.mainlined", sha="abc"),
        EXACT,
        "DONE | t+5m | tok 5.0k $0.40 | c1 | T3 | landed abc: Exact",
    ),
]


@pytest.mark.parametrize(("name", "event", "info", "text"), CASES, ids=[c[0] for c in CASES])
def test_format_line(name: str, event: Event, info: TaskInfo | None, text: str | None) -> None:
    line = format_line(event, info, origin=T0)
    if text is None:
        assert line is None
        return
    assert line is not None
    assert line.text == text
    assert len(line.tag) == 4 and line.text.startswith(line.tag + " | ")
    assert line.colour == COLOURS[line.tag.strip()]
    assert len(line.text) <= MAX_LEN


def test_every_kind_of_event_makes_a_line_or_is_quiet() -> None:
    for name, cls in REGISTRY.items():
        task = "T3" if "task" in cls.__struct_fields__ else None
        line = format_line(ev(name, task), None, T0)
        assert line is None or (line.text and len(line.text) <= MAX_LEN), name


def test_judge_cost_is_the_accent_only_above_15_percent() -> None:
    heavy = format_line(ev("task.mainlined", sha="a"), HEAVY, T0)
    exact = format_line(ev("task.mainlined", sha="a"), EXACT, T0)
    assert heavy is not None and heavy.accent == "judge $0.07" and heavy.accent in heavy.text
    assert exact is not None and exact.accent == "" and "judge" not in exact.text
    free = format_line(ev("task.mainlined", sha="a"), TaskInfo(title="x", added=T0), T0)
    assert free is not None and free.accent == ""  # no cost at all: nothing to compare


def test_blockers_and_risks_stay_apart() -> None:
    risky = [ev("risk", kind=k, message="m") for k in ("conflict", "stall", "crash", "mainline")]
    blocking = [ev("task.blocked", reason="r"), ev("task.verdict", verdict="blocked"), ev("risk", kind="auth")]
    assert {line.tag for e in risky if (line := format_line(e, INFO, T0))} == {"RISK"}
    assert {line.tag for e in blocking if (line := format_line(e, INFO, T0))} == {"BLOK"}


def test_long_lines_are_cut_at_140_with_an_ellipsis_keeping_the_fields() -> None:
    long = ev("task.blocked", reason="because " * 40, files=[])
    line = format_line(long, INFO, T0)
    assert line is not None and len(line.text) == MAX_LEN and line.text.endswith("…")
    assert line.text.startswith("BLOK | t+5m | tok 1.2k $0.41 | c1 | T3 | blocked: because")
    with_files = ev("risk", kind="conflict", message="x" * 300, files=["src/a.py", "src/b.py"])
    line = format_line(with_files, INFO, T0)
    assert line is not None and len(line.text) == MAX_LEN
    assert line.text.endswith("… | src/a.py, src/b.py"), "the message is cut, the file refs stay"
    huge = ev("risk", "T" + "9" * 60, actor="c" + "1" * 70, kind="stall", message="m", files=["p" * 90 + ".py"])
    line = format_line(huge, INFO, T0)
    assert line is not None and len(line.text) <= MAX_LEN and line.text.endswith("…")


def test_text_from_agents_is_one_clean_line() -> None:
    nasty = ev("task.failed", error="boom\x1b]2;pwned\x07 \x1b[31mred\x1b[0m\nsecond\tline")
    line = format_line(nasty, INFO, T0)
    assert line is not None
    assert line.text.endswith("attempt 0 failed: boom red second line")
    assert "\x1b" not in line.text and "\n" not in line.text


def test_task_less_events_count_from_the_origin() -> None:
    line = format_line(ev("fleet.paused", None, at=7200, slave="*"), None, origin=T0 + 3600)
    assert line is not None and " | t+1h | " in line.text


# --- totals ------------------------------------------------------------------------------------------


def test_advance_keeps_running_totals_and_the_rework_flag() -> None:
    u = {"input": 1000, "output": 200, "cost_usd": 0.3}
    j = {"input": 100, "output": 10, "cost_usd": 0.1}
    seq = [
        ev("task.added", at=0, title="Do it"),
        ev("task.claimed"),
        ev("attempt.finished", role="work", outcome="ok", usage=u),
        ev("task.submitted"),
        ev("task.judge_claimed", actor="c2"),
        ev("attempt.finished", role="judge", outcome="ok", usage=j),
        ev("task.verdict", verdict="rework", reasons="more"),
        ev("task.claimed"),
    ]
    info: TaskInfo | None = None
    for e in seq:
        info = advance(info, e)
    assert info == TaskInfo(
        title="Do it", added=T0, tokens=1310, cost_usd=0.4, judge_cost_usd=0.1, attempt=2, rework=True
    )
    info = advance(info, ev("task.verdict", verdict="done"))
    assert info is not None and not info.rework
    assert advance(None, ev("gate.ran")) == TaskInfo(title="T3"), "a log that starts mid-way"
    assert advance(info, ev("fleet.paused", None)) is info


# --- the feed: incremental reading -----------------------------------------------------------------------


def test_feed_reads_the_log_incrementally(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    events.append(log, [ev("task.added", at=0, actor="cli", title="First"), ev("task.claimed")])
    feed = Feed(log)
    assert feed.poll() == 2 and feed.offset == log.stat().st_size
    assert [line.tag for line in feed.lines] == ["TODO", "INFO"]
    assert feed.poll() == 0, "nothing new: nothing read"
    usage = {"input": 1500, "cost_usd": 0.5}
    events.append(
        log, [ev("attempt.finished", role="work", outcome="ok", usage=usage), ev("task.mainlined", sha="abc")]
    )
    with open(log, "a") as f:
        f.write(json.dumps(ev("task.blocked").payload())[:20])  # a write in progress: not read yet
    assert feed.poll() == 2
    assert feed.lines[-1].text == "DONE | t+5m | tok 1.5k $0.50 | c1 | T3 | landed abc: First"
    assert feed.offset < log.stat().st_size and feed.last_task == {"c1": "T3"}
    assert feed.count == 4
