"""The scheduler's pure decisions, as case tables over states built by folding real events."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from clanker.config import BudgetConfig
from clanker.errors import IllegalTransition
from clanker.fleet.scheduler import (
    Inputs,
    choose_job,
    conflict_rate,
    fleet_targets,
    gate_status,
    inputs_of,
    targets,
    targets_event,
)
from clanker.jobs.base import Job
from clanker.jobs.plan import advice_events, parse_advice
from clanker.state.events import AttemptFinished, SchedulerCapped, SchedulerTargets, TaskAdded, TaskCancelled
from clanker.state.events import Event as Ev
from clanker.state.fold import fold
from clanker.state.legal import check
from clanker.state.model import State, TaskState
from clanker.state.usage import Usage

from .helpers import event

ALIVE = frozenset({"c1", "c2", "c3"})
JUDGE = "cj"  # a judge slave id used to move tasks through judging in the fixtures


# --- building states from events ------------------------------------------------------------------


def build(*groups: Iterable[Ev]) -> State:
    """Fold the events in order, checking each is legal first (fold itself would skip it)."""
    st = State()
    for n, ev in enumerate((e for g in groups for e in g), 1):
        check(st, ev)
        st = fold(st, [(ev, n)])
    return st


_clock = iter(range(1, 1_000_000))


def ev(type_: str, task: str | None = None, actor: str = "cli", **data: Any) -> Ev:
    return event(type_, actor, task, data, ts=float(next(_clock)))  # every event a little later


def added(tid: str, **data: Any) -> list[Ev]:
    return [ev("task.added", tid, title=f"task {tid}", **data)]


def working(tid: str, slave: str, **data: Any) -> list[Ev]:
    return [*added(tid, **data), ev("task.claimed", tid, slave, slave=slave)]


def needs_judge(tid: str, author: str, files: tuple[str, ...] = (), **data: Any) -> list[Ev]:
    return [*working(tid, author, **data), ev("task.submitted", tid, author, files=list(files), summary="s")]


def judging(tid: str, author: str, judge: str = JUDGE, **data: Any) -> list[Ev]:
    return [*needs_judge(tid, author, **data), ev("task.judge_claimed", tid, judge, slave=judge)]


def rework(tid: str, author: str, **data: Any) -> list[Ev]:
    return [*judging(tid, author, **data), ev("task.verdict", tid, JUDGE, verdict="rework", reasons="again")]


def accepted(tid: str, **data: Any) -> list[Ev]:
    return [*judging(tid, "c9", **data), ev("task.verdict", tid, JUDGE, verdict="done")]


def done(tid: str, **data: Any) -> list[Ev]:
    return [
        *judging(tid, "c9", **data),
        ev("task.verdict", tid, JUDGE, verdict="done"),
        ev("task.landing", tid, JUDGE, slave=JUDGE),
        ev("task.mainlined", tid, JUDGE, sha="f" * 40),
    ]


def paused(slave: str | None = None) -> list[Ev]:
    return [ev("fleet.paused", None, **({"slave": slave} if slave else {}))]


def resumed(slave: str | None = None) -> list[Ev]:
    return [ev("fleet.resumed", None, **({"slave": slave} if slave else {}))]


def conflicts(n: int) -> list[Ev]:
    return [ev("risk", None, "c1", kind="conflict") for _ in range(n)]


def test_fixtures_reach_the_states_they_claim() -> None:
    st = build(
        added("A"),
        working("B", "c1"),
        needs_judge("C", "c2"),
        judging("D", "c3"),
        rework("E", "c1"),
        done("F"),
    )
    states = {tid: t.state for tid, t in st.tasks.items()}
    assert states == {
        "A": TaskState.READY,
        "B": TaskState.CLAIMED,
        "C": TaskState.NEEDS_JUDGE,
        "D": TaskState.JUDGING,
        "E": TaskState.REWORK,
        "F": TaskState.DONE,
    }
    assert st.tasks["E"].author == "c1" and st.tasks["E"].slave is None


# --- targets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slaves", "ready", "backlog", "rate", "cap", "expected"),
    [
        # explore: plenty of ready work, every slave may work
        (3, 6, 0, 0.0, 1, ("explore", 3, 1)),
        (1, 2, 0, 0.0, 1, ("explore", 1, 1)),
        (64, 200, 0, 0.0, 64, ("explore", 64, 64)),
        # execute: no cap below the slaves (a phase never idles anyone by itself)
        (3, 5, 0, 0.0, 1, ("execute", 3, 1)),
        (4, 0, 0, 0.0, 1, ("execute", 4, 1)),
        (8, 3, 0, 0.0, 2, ("execute", 8, 2)),
        (1, 0, 0, 0.0, 1, ("execute", 1, 1)),
        (1, 0, 1, 0.0, 1, ("execute", 1, 1)),  # one waiting judgement is not a backlog
        (6, 0, 5, 0.0, 1, ("execute", 6, 1)),
        # integrate: judging is behind (judging goes first in choose_job); it wins over explore
        (1, 0, 2, 0.0, 1, ("integrate", 1, 1)),
        (3, 100, 3, 0.0, 1, ("integrate", 3, 1)),
        (4, 0, 4, 0.0, 1, ("integrate", 4, 1)),
        (10, 0, 12, 0.0, 3, ("integrate", 10, 3)),
        # conflict throttle halves the work target, never below one, only above 30 %
        (4, 8, 0, 0.31, 1, ("explore", 2, 1)),
        (4, 8, 0, 0.3, 1, ("explore", 4, 1)),
        (1, 2, 0, 0.9, 1, ("explore", 1, 1)),
        (3, 0, 3, 0.5, 1, ("integrate", 1, 1)),
        (8, 0, 0, 1.0, 1, ("execute", 4, 1)),
        # the judge cap is clamped to [1, slaves]
        (3, 0, 0, 0.0, 5, ("execute", 3, 3)),
        (3, 0, 0, 0.0, 0, ("execute", 3, 1)),
    ],
)
def test_targets(slaves: int, ready: int, backlog: int, rate: float, cap: int, expected: tuple[str, int, int]) -> None:
    got = targets(Inputs(slaves, ready, backlog, rate, cap))
    assert got.key == expected and got.cap == slaves
    assert 1 <= got.work <= slaves and 1 <= got.judge <= slaves
    assert bool(got.why) == (got.work < slaves)  # a target held below the cap says why


@pytest.mark.parametrize(
    ("before", "slaves", "ready", "backlog", "phase"),
    [
        # integrate: entered at a backlog of max(2, slaves), kept down to max(1, slaves // 2)
        ("execute", 8, 0, 7, "execute"),
        ("execute", 8, 0, 8, "integrate"),
        ("integrate", 8, 0, 5, "integrate"),
        ("integrate", 8, 0, 4, "integrate"),
        ("integrate", 8, 0, 3, "execute"),
        ("integrate", 2, 0, 1, "integrate"),
        ("integrate", 2, 0, 0, "execute"),
        ("integrate", 8, 20, 3, "explore"),  # left integrate with plenty ready: straight to explore
        # explore: entered at 2·slaves ready, kept down to slaves ready
        ("execute", 4, 7, 0, "execute"),
        ("execute", 4, 8, 0, "explore"),
        ("explore", 4, 5, 0, "explore"),
        ("explore", 4, 4, 0, "explore"),
        ("explore", 4, 3, 0, "execute"),
        ("", 4, 5, 0, "execute"),  # nothing recorded yet: the entry levels
        ("explore", 4, 5, 4, "integrate"),  # a backlog wins over ready work
    ],
)
def test_the_phase_has_hysteresis(before: str, slaves: int, ready: int, backlog: int, phase: str) -> None:
    assert targets(Inputs(slaves, ready, backlog, phase=before)).phase == phase


def test_the_phase_does_not_flap_as_one_task_lands_and_one_is_submitted() -> None:
    """A backlog going 8, 7, 8, 7, … at 8 slaves: one change into integrate, then none."""
    phase, changes = "execute", 0
    for backlog in [8, 7] * 10:
        new = targets(Inputs(8, 0, backlog, phase=phase)).phase
        changes += new != phase
        phase = new
    assert (phase, changes) == ("integrate", 1)
    without = sum(1 for a, b in itertools.pairwise([8, 7] * 10) if (a >= 8) != (b >= 8))
    assert without == 19  # what the entry level alone would do


@pytest.mark.parametrize(
    ("caps", "slaves", "cap", "work", "why"),
    [
        ((), 6, 6, 6, ""),
        ((("planner", 3, "tasks overlap in src/"),), 6, 3, 3, "cap 3 from planner (tasks overlap in src/)"),
        ((("user", 2, ""),), 6, 2, 2, "cap 2 from user"),
        ((("planner", 4, "a"), ("user", 2, "b")), 6, 2, 2, "cap 2 from user (b)"),
        ((("planner", 2, "a"), ("user", 4, "b")), 6, 2, 2, "cap 2 from planner (a)"),
        # advice only ever lowers: above the hard cap, or 0, it changes nothing
        ((("planner", 12, "go wide"),), 6, 6, 6, ""),
        ((("user", 6, "same"),), 6, 6, 6, ""),
        ((("user", 0, ""),), 6, 6, 6, ""),
    ],
)
def test_advice_only_ever_lowers_the_cap(
    caps: tuple[tuple[str, int, str], ...], slaves: int, cap: int, work: int, why: str
) -> None:
    got = targets(Inputs(slaves, 20, 0, caps=caps))
    assert (got.cap, got.work, got.why) == (cap, work, why)
    assert got.cap <= slaves and got.judge <= got.cap


@pytest.mark.parametrize(
    ("pace", "rate", "caps", "work"),
    [
        (None, 0.0, (), 8),
        (1.0, 0.0, (), 8),  # the budget lasts the day exactly: no throttle
        (2.5, 0.0, (), 8),  # it lasts longer: never above the cap
        (0.5, 0.0, (), 4),  # it runs out halfway through what is left of the day: half as many
        (0.3, 0.0, (), 2),
        (0.01, 0.0, (), 1),  # never below one
        (0.0, 0.0, (), 1),
        (0.6, 0.5, (), 4),  # conflicts halve to 4; the burn allows 4.8: the lower stands
        (0.4, 0.5, (), 3),  # the burn is lower than the conflict throttle
        (0.5, 0.0, (("user", 4, ""),), 2),  # the burn scales the advised cap
    ],
)
def test_a_burn_that_would_spend_the_daily_budget_early_throttles_work(
    pace: float | None, rate: float, caps: tuple[tuple[str, int, str], ...], work: int
) -> None:
    got = targets(Inputs(8, 20, 0, rate, 1, pace, caps))
    assert got.work == work
    assert ("budget burn" in got.why) == (pace is not None and int(8 * pace) < min(8, 4 if rate else 8))


def test_a_spent_budget_or_a_short_machine_holds_all_work_and_says_why() -> None:
    held = targets(Inputs(4, 10, 0, 0.5, 2, 0.5, (("user", 3, ""),), "explore", "capacity: 300 MB free"))
    assert (held.work, held.judge, held.cap, held.why) == (0, 2, 3, "capacity: 300 MB free")
    st = build(added("T1"))
    limits = BudgetConfig(daily_usd=1.0)
    spent = fold(st, [(AttemptFinished(actor="c1", task="T1", role="work", slave="c1",
                                       usage=Usage(input=10, cost_usd=1.5), ts=1_000.0), st.offset + 1)])  # fmt: skip
    inp, tg = fleet_targets(spent, 3, 1, limits, 1_000.0 + 60)
    assert inp.held is not None and inp.held.startswith("budget: daily_usd $1.50 of $1.00")
    assert (tg.work, tg.why) == (0, inp.held)
    inp, tg = fleet_targets(st, 3, 1, limits, 1_000.0, room="capacity: load 9.1 over 8")
    assert (inp.held, tg.work) == ("capacity: load 9.1 over 8", 0)
    (said,) = targets_event(st, inp, tg, "c1")
    assert isinstance(said, SchedulerTargets) and said.held == "capacity: load 9.1 over 8" and said.work == 0
    assert fleet_targets(st, 3, 1, limits, 1_000.0)[1].work == 3  # nothing spent, room enough


@pytest.mark.parametrize(
    ("groups", "rate"),
    [
        ([], 0.0),
        ([conflicts(1)], 1.0),
        ([conflicts(3), done("T1")], 0.75),
        ([conflicts(1), done("T1"), done("T2"), done("T3")], 0.25),
        ([[ev("risk", None, kind="slow")], done("T1")], 0.0),
    ],
)
def test_conflict_rate(groups: list[list[Ev]], rate: float) -> None:
    assert conflict_rate(build(*groups)) == pytest.approx(rate)


def test_the_conflict_rate_is_about_the_newest_outcomes_not_the_whole_history() -> None:
    def landed(n: int) -> list[Ev]:
        return [e for k in range(n) for e in done(f"L{k}")]

    assert conflict_rate(build(conflicts(10), landed(40))) == pytest.approx(10 / 50)
    calm = build(conflicts(10), landed(60))  # sixty clean landings since: the old conflicts are out of the window
    assert conflict_rate(calm) == 0.0 and calm.conflicts == 10
    assert conflict_rate(build(landed(60), conflicts(25))) == pytest.approx(25 / 50)


# --- choose_job -----------------------------------------------------------------------------------

W, J = "work", "judge"


def case(name: str, groups: list[list[Ev]], me: str, expected: Job | None, **kwargs: Any) -> Any:
    return pytest.param(groups, me, kwargs, expected, id=name)


CASES = [
    # own rework first, before judging and before higher-priority new work
    case(
        "own rework first",
        [rework("T1", "c1"), added("T2", priority=9), needs_judge("T3", "c2")],
        "c1",
        Job(W, "T1"),
    ),
    case(
        "others' rework is not mine while its author lives",
        [rework("T1", "c1"), added("T2")],
        "c2",
        Job(W, "T2"),
    ),
    case(
        "own rework by regression tag",
        [rework("T1", "c1"), rework("T2", "c1", tags=["regression"])],
        "c1",
        Job(W, "T2"),
    ),
    case(
        "own rework waits at the work target: it is work too",
        [working("T1", "c2"), working("T2", "c3"), rework("T3", "c1")],
        "c1",
        None,
        slaves=2,
    ),
    case(
        "own regression rework even at the work target",
        [working("T1", "c2"), working("T2", "c3"), rework("T3", "c1", tags=["regression"])],
        "c1",
        Job(W, "T3"),
        slaves=2,
    ),
    case(
        "own rework waits while an accepted task with its files lands, and works meanwhile",
        [
            rework("T3", "c1", files=("src/a.py",)),
            accepted("T4", files=("src/a.py",)),
            working("T6", "c2"),
            added("T5"),
        ],
        "c1",
        Job(W, "T5"),
        batch_wait_secs=99.0,
    ),
    case(
        "own rework once the task it met has landed",
        [rework("T3", "c1", files=("src/a.py",)), done("T4", files=("src/a.py",)), added("T5")],
        "c1",
        Job(W, "T3"),
    ),
    case(
        "own rework when what is accepted does not meet it",
        [
            rework("T3", "c1", files=("src/a.py",)),
            accepted("T4", files=("docs/b.md",)),
            working("T6", "c2"),
            added("T5"),
        ],
        "c1",
        Job(W, "T3"),
        batch_wait_secs=99.0,
    ),
    # judging
    case(
        "judge another slave's work before new work",
        [needs_judge("T1", "c1"), added("T2")],
        "c2",
        Job(J, "T1"),
    ),
    case("never judge your own work", [needs_judge("T1", "c1")], "c1", None),
    case(
        "skip your own, judge the next",
        [needs_judge("T1", "c1"), needs_judge("T2", "c2")],
        "c1",
        Job(J, "T2"),
    ),
    case(
        "own work waits for judging, new work goes on",
        [needs_judge("T1", "c1"), added("T2")],
        "c1",
        Job(W, "T2"),
    ),
    case("judge cap reached", [judging("T1", "c1"), needs_judge("T2", "c1")], "c3", None, judge_cap=1),
    case("judge cap has room", [judging("T1", "c1"), needs_judge("T2", "c1")], "c3", Job(J, "T2"), judge_cap=2),
    case(
        "judge cap never above the slave count",
        [judging("T1", "c1"), needs_judge("T2", "c1")],
        "c3",
        None,
        judge_cap=5,
        slaves=1,
    ),
    case(
        "a slave that can't judge takes work",
        [needs_judge("T1", "c1"), added("T2")],
        "c2",
        Job(W, "T2"),
        can_judge=False,
    ),
    case(
        "backlog judged by order",
        [needs_judge("T1", "c1"), needs_judge("T2", "c1", priority=3)],
        "c2",
        Job(J, "T2"),
    ),
    # work caps
    case("work cap reached", [working("T1", "c1"), working("T2", "c2"), added("T3")], "c3", None, slaves=2),
    case(
        "work cap has room",
        [working("T1", "c1"), working("T2", "c2"), added("T3")],
        "c3",
        Job(W, "T3"),
        slaves=3,
    ),
    case(
        "integrate phase: a slave with nothing to judge (the judge cap is reached) works",
        [
            judging("T0", "c1"),
            *(needs_judge(f"T{i}", "c1") for i in range(1, 5)),
            working("T5", "c2"),
            working("T6", "c3"),
            added("T7"),
        ],
        "c4",
        Job(W, "T7"),
        slaves=4,
        alive=frozenset({"c1", "c2", "c3", "c4"}),
    ),
    case(
        "execute phase with a small backlog",
        [judging("T0", "c1"), needs_judge("T1", "c1"), working("T5", "c2"), working("T6", "c3"), added("T7")],
        "c4",
        Job(W, "T7"),
        slaves=4,
        alive=frozenset({"c1", "c2", "c3", "c4"}),
    ),
    case(
        "conflicts throttle new work",
        [
            conflicts(3),
            done("D1"),
            working("T1", "c1"),
            working("T2", "c2"),
            *(added(f"R{i}") for i in range(8)),
        ],
        "c3",
        None,
        slaves=4,
    ),
    case(
        "no conflicts, no throttle",
        [done("D1"), working("T1", "c1"), working("T2", "c2"), *(added(f"R{i}") for i in range(8))],
        "c3",
        Job(W, "R0"),
        slaves=4,
    ),
    # ownership keys: top-level directory
    case(
        "same top-level dir is blocked",
        [
            working("T1", "c1", paths=["src/a.py"]),
            added("T2", paths=["src/b.py"], priority=5),
            added("T3", paths=["docs/x.md"]),
        ],
        "c2",
        Job(W, "T3"),
    ),
    case(
        "all candidates blocked",
        [working("T1", "c1", paths=["src/a.py"]), added("T2", paths=["src/deep/b.py"])],
        "c2",
        None,
    ),
    case(
        "paths are normalised",
        [working("T1", "c1", paths=["./src/a.py"]), added("T2", paths=["/src/b.py"])],
        "c2",
        None,
    ),
    case(
        "a task without paths is never blocked",
        [working("T1", "c1", paths=["src/a.py"]), added("T2")],
        "c2",
        Job(W, "T2"),
    ),
    case(
        "top-level files are their own key",
        [
            working("T1", "c1", paths=["setup.py"]),
            added("T2", paths=["setup.py"], priority=1),
            added("T3", paths=["setup.cfg"]),
        ],
        "c2",
        Job(W, "T3"),
    ),
    case(
        "touched files hold keys too",
        [
            needs_judge("T1", "c1", files=("lib/x.py",)),
            added("T2", paths=["lib/y.py"], priority=1),
            added("T3"),
        ],
        "c2",
        Job(W, "T3"),
        can_judge=False,
    ),
    case(
        "rework holds its keys",
        [
            rework("T1", "c1", paths=["src/a.py"]),
            added("T2", paths=["src/b.py"], priority=1),
            added("T3", paths=["docs/a"]),
        ],
        "c2",
        Job(W, "T3"),
    ),
    case(
        "judging holds its keys",
        [judging("T1", "c1", paths=["src/a.py"]), added("T2", paths=["src/b.py"], priority=1), added("T3")],
        "c2",
        Job(W, "T3"),
    ),
    case(
        "done tasks release their keys",
        [done("T1", paths=["src/a.py"]), added("T2", paths=["src/b.py"])],
        "c2",
        Job(W, "T2"),
    ),
    case(
        "blocked tasks release their keys",
        [
            added("T1", paths=["src/a.py"]),
            [ev("task.blocked", "T1", reason="no")],
            added("T2", paths=["src/b.py"]),
        ],
        "c2",
        Job(W, "T2"),
    ),
    # ownership keys: owner_files makes files under a hot directory their own keys
    case(
        "owner_files: different hot files may run together",
        [
            working("T1", "c1", paths=["src/a.py"]),
            added("T2", paths=["src/b.py"], priority=5),
            added("T3", paths=["docs/x.md"]),
        ],
        "c2",
        Job(W, "T2"),
        owner_files=("src",),
    ),
    case(
        "owner_files: the same hot file is blocked",
        [
            working("T1", "c1", paths=["src/a.py"]),
            added("T2", paths=["src/a.py"], priority=5),
            added("T3", paths=["docs/x.md"]),
        ],
        "c2",
        Job(W, "T3"),
        owner_files=("src",),
    ),
    case(
        "owner_files: glob patterns",
        [working("T1", "c1", paths=["src/a.py"]), added("T2", paths=["src/b.py"], priority=5)],
        "c2",
        Job(W, "T2"),
        owner_files=("src/*.py",),
    ),
    case(
        "owner_files: a cold path in the same dir still takes the whole dir",
        [working("T1", "c1", paths=["src/a.py"]), added("T2", paths=["src/b.txt"], priority=5)],
        "c2",
        None,
        owner_files=("src/*.py",),
    ),
    # dependencies
    case(
        "depends on a ready task",
        [added("T1"), added("T2", depends_on=["T1"], priority=9)],
        "c1",
        Job(W, "T1"),
    ),
    case("depends on a done task", [done("T1"), added("T2", depends_on=["T1"])], "c1", Job(W, "T2")),
    case(
        "depends on one done and one not",
        [done("T1"), added("T3"), added("T2", depends_on=["T1", "T3"], priority=9)],
        "c1",
        Job(W, "T3"),
    ),
    case("depends on an unknown task", [added("T2", depends_on=["nope"])], "c1", None),
    # order: regression tag, then priority, then age
    case("regression first", [added("T1", priority=5), added("T2", tags=["regression"])], "c1", Job(W, "T2")),
    case("higher priority first", [added("T1", priority=1), added("T2", priority=5)], "c1", Job(W, "T2")),
    case("negative priority last", [added("T1", priority=-1), added("T2")], "c1", Job(W, "T2")),
    case("older first on a tie", [added("T9"), added("T1")], "c1", Job(W, "T9")),
    case(
        "regressions by priority",
        [added("T1", tags=["regression"]), added("T2", tags=["regression", "x"], priority=2)],
        "c1",
        Job(W, "T2"),
    ),
    # paused
    case("a paused slave gets nothing", [paused("c1"), rework("T1", "c1"), added("T2")], "c1", None),
    case("others still work while one is paused", [paused("c1"), added("T2")], "c2", Job(W, "T2")),
    case("a paused fleet gets nothing", [paused(), needs_judge("T1", "c1"), added("T2")], "c2", None),
    case("resumed fleet works again", [paused(), resumed(), added("T2")], "c2", Job(W, "T2")),
    case("resumed slave works again", [paused("c2"), resumed("c2"), added("T2")], "c2", Job(W, "T2")),
    case("resuming one slave does not lift a fleet pause", [paused(), resumed("c2"), added("T2")], "c2", None),
    # orphaned rework
    case("orphaned rework is taken", [rework("T1", "c9")], "c1", Job(W, "T1")),
    case(
        "rework of a live author is left alone",
        [rework("T1", "c9")],
        "c1",
        None,
        alive=frozenset({"c1", "c9"}),
    ),
    case("new work before orphans", [rework("T1", "c9"), added("T2")], "c1", Job(W, "T2")),
    case("orphans by order", [rework("T1", "c8"), rework("T2", "c9", priority=2)], "c1", Job(W, "T2")),
    # the gate preflight: nothing but it (and the planner) until the gate is trusted
    case(
        "a due preflight comes before everything",
        [rework("T1", "c1"), added("T2")],
        "c1",
        Job("preflight"),
        gate="pending",
    ),
    case("nothing while another slave preflights", [added("T1")], "c1", None, gate="running"),
    case("nothing while the preflight failed", [added("T1"), needs_judge("T2", "c2")], "c1", None, gate="failed"),
    case(
        "the planner may plan while the gate is untrusted",
        [[ev("plan.requested", request="")]],
        "c1",
        Job("plan", ""),
        gate="failed",
        can_plan=True,
    ),
    # overlap: a submitted task held behind an earlier live one is not judged yet
    case(
        "held behind a live task: not judged",
        [needs_judge("T1", "c2"), needs_judge("T2", "c3"), [ev("task.held", "T2", behind=["T1"])]],
        "c1",
        Job(J, "T1"),
    ),
    case(
        "held behind a landed task: judged",
        [done("T1"), needs_judge("T2", "c3"), [ev("task.held", "T2", behind=["T1"])]],
        "c1",
        Job(J, "T2"),
    ),
    case(
        "held behind a blocked task: judged",
        [
            added("T1"),
            [ev("task.blocked", "T1", reason="x")],
            needs_judge("T2", "c3"),
            [ev("task.held", "T2", behind=["T1"])],
        ],
        "c1",
        Job(J, "T2"),
    ),
    # nothing to do
    case("empty state", [], "c1", None),
    case("only finished tasks", [done("T1"), added("T2"), [ev("task.cancelled", "T2")]], "c1", None),
]


@pytest.mark.parametrize(("groups", "me", "kwargs", "expected"), CASES)
def test_choose_job(groups: list[list[Ev]], me: str, kwargs: dict[str, Any], expected: Job | None) -> None:
    state = build(*groups)
    opts: dict[str, Any] = {"slaves": 3, "alive": ALIVE, **kwargs}
    got = choose_job(state, me, **opts)
    assert got == expected
    if got is not None and got.kind in (W, J):
        task = state.tasks[got.task]
        if got.kind == J:
            assert task.state == TaskState.NEEDS_JUDGE and task.author != me
        else:
            assert task.state in (TaskState.READY, TaskState.REWORK)


def preflit(key: str, passed: bool, trusted: bool | None = None) -> list[Ev]:
    data = {"slave": "c1", "key": key, "passed": passed, "sha": "s", "kind": "ok" if passed else "gate"}
    if trusted is not None:
        data["trusted"] = trusted
    return [ev("preflight.claimed", None, "c1", slave="c1", key=key), ev("preflight.ran", None, "c1", **data)]


@pytest.mark.parametrize(
    ("groups", "enabled", "expected"),
    [
        ([], False, "trusted"),
        ([], True, "pending"),
        ([[ev("preflight.claimed", None, "c1", slave="c1", key="k")]], True, "running"),
        ([preflit("k", True)], True, "trusted"),
        ([preflit("k", False)], True, "failed"),
        ([preflit("k", False, trusted=True)], True, "trusted"),  # a regression: the gate is fine
        ([preflit("old", True)], True, "pending"),  # other settings since
        ([preflit("k", True), [ev("preflight.requested", None, "ctl", reason="a new run")]], True, "pending"),
        ([preflit("k", False), [ev("preflight.claimed", None, "c2", slave="c2", key="k")]], True, "running"),
    ],
)
def test_gate_status(groups: list[list[Ev]], enabled: bool, expected: str) -> None:
    assert gate_status(build(*groups), "k", enabled) == expected


def test_a_second_preflight_claim_is_refused() -> None:
    state = build([ev("preflight.claimed", None, "c1", slave="c1", key="k")])
    with pytest.raises(IllegalTransition):
        check(state, ev("preflight.claimed", None, "c2", slave="c2", key="k"))
    released = fold(state, [(ev("preflight.released", None, "ctl", slave="c1"), 1)])
    assert released.preflight_slave is None and released.preflight_wanted
    check(released, ev("preflight.claimed", None, "c2", slave="c2", key="k"))


def test_setup_failures_are_kept_per_slave_until_it_works_or_a_fresh_worktree_passes() -> None:
    failed = [ev("setup.failed", None, s, slave=s, command="npm ci", main_sha="a", log="l") for s in ("c1", "c2")]
    state = build(failed)
    assert sorted(state.setup_failed) == ["c1", "c2"]
    assert sorted(fold(state, [(ev("setup.ok", None, "c1", slave="c1"), 9)]).setup_failed) == ["c2"]
    assert fold(state, [(ev("setup.retry", None, "doctor", reason="x"), 9)]).setup_failed == {}
    assert build(failed, preflit("k", True)).setup_failed == {}


def test_touched_files_grow_a_tasks_keys_while_it_works() -> None:
    state = build(working("T1", "c1"), [ev("task.touched", "T1", "c1", slave="c1", files=["src/a.py"])])
    assert state.tasks["T1"].touched == ("src/a.py",)
    blocked = build(
        working("T1", "c1"), [ev("task.touched", "T1", "c1", files=["src/a.py"])], added("T2", paths=["src/b.py"])
    )
    assert choose_job(blocked, "c2", slaves=3, alive=ALIVE) is None  # src is held by T1's live edits


def test_choose_job_is_pure() -> None:
    state = build(rework("T1", "c1"), added("T2"), needs_judge("T3", "c2"))
    before = dict(state.tasks)
    jobs = [choose_job(state, me, slaves=3, alive=ALIVE) for me in ("c1", "c2", "c3", "c1")]
    assert jobs == [Job(W, "T1"), Job(W, "T2"), Job(J, "T3"), Job(W, "T1")]
    assert state.tasks == before


# --- why a slave is idle ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "kw", "why"),
    [
        ([], {}, "nothing to do"),
        ([[ev("fleet.paused", None, slave="c1")], added("T1")], {}, "paused"),
        ([added("T1")], {"gate": "failed"}, "held: gate preflight failed"),
        ([added("T1")], {"held": "budget: daily_usd $1.20 of $1.00"}, "held: budget: daily_usd $1.20 of $1.00"),
        ([working("T1", "c2"), added("T2", depends_on=["T1"])], {}, "waiting: T2 depends on T1"),
        ([working("T1", "c2", paths=["src"]), added("T2", paths=["src"])], {}, "locked by T1"),
        ([needs_judge("T1", "c1")], {}, "waiting: T1 needs another slave's judgement"),
        ([judging("T1", "c2"), needs_judge("T2", "c3")], {}, "held: 1 judging, judge cap 1, backlog 1"),
        ([working("T1", "c2"), working("T3", "c3"), added("T2")], {"slaves": 2}, "held: execute phase, work target 2"),
        (
            [rework("T3", "c1", files=("src/a.py",)), accepted("T4", files=("src/a.py",)), working("T6", "c2")],
            {},
            "waiting: T3 is reworked once T4 has landed",
        ),
        (
            [working("T1", "c2"), working("T2", "c3"), rework("T3", "c1")],
            {"slaves": 2},
            "held: execute phase, work target 2",
        ),
        (
            [
                working("T1", "c2"),
                added("T2"),
                [ev("scheduler.capped", None, "cli", source="user", cap=1, reason="lunch")],
            ],
            {},
            "held: execute phase, work target 1 (cap 1 from user (lunch))",
        ),
        (
            [working("T1", "c2"), working("T4", "c3"), added("T2"), needs_judge("T5", "c1"), needs_judge("T6", "c1")],
            {"slaves": 2},
            "held: integrate phase, backlog 2, work target 2",
        ),  # fmt: skip
    ],
)
def test_an_idle_slave_says_what_holds_it(groups: list[list[Ev]], kw: dict[str, Any], why: str) -> None:
    from clanker.fleet.scheduler import why_idle

    st = build(*groups)
    slaves = kw.pop("slaves", 3)
    assert choose_job(st, "c1", slaves=slaves, alive=ALIVE, **{k: v for k, v in kw.items() if k == "gate"},
                      held=bool(kw.get("held"))) is None  # fmt: skip
    assert why in why_idle(st, "c1", slaves=slaves, **kw)


def test_a_change_of_targets_is_one_event_with_its_inputs() -> None:
    st = build(added("T1"), added("T2"), working("T3", "c2"))
    inp = inputs_of(st, 3, 1)
    tg = targets(inp)
    (said,) = targets_event(st, inp, tg, "c1")
    assert isinstance(said, SchedulerTargets)
    assert (said.phase, said.work, said.judge, said.cap, said.slaves) == ("execute", 3, 1, 3, 3)
    assert (said.ready, said.backlog, said.conflict_rate, said.pace, said.why) == (2, 0, 0.0, None, "")
    st = fold(st, [(said, st.offset + 1)])
    assert st.targets == ("execute", 3, 1)
    assert targets_event(st, inputs_of(st, 3, 1), targets(inputs_of(st, 3, 1)), "c1") == []  # no change: quiet
    # a person caps the fleet at 2: the inputs carry it, and the targets change once
    st = build(added("T1"), added("T2"), working("T3", "c2"), [said],
               [ev("scheduler.capped", None, "cli", source="user", cap=2, reason="saving money")])  # fmt: skip
    inp = inputs_of(st, 3, 1)
    assert inp.caps == (("user", 2, "saving money"),) and inp.phase == "execute"
    (again,) = targets_event(st, inp, targets(inp), "c1")
    assert isinstance(again, SchedulerTargets)
    assert (again.cap, again.work, again.why) == (2, 2, "cap 2 from user (saving money)")
    lifted = build(added("T1"), [ev("scheduler.capped", None, "cli", source="user", cap=2)],
                   [ev("scheduler.capped", None, "cli", source="user", cap=0)])  # fmt: skip
    assert lifted.caps == {} and targets(inputs_of(lifted, 3)).cap == 3


def test_the_inputs_count_only_regressions_while_main_is_red() -> None:
    st = build(added("T1"), added("R1", tags=["regression"]), needs_judge("T2", "c2"), [ev("main.red", None, sha="a")])
    inp = inputs_of(st, 4)
    assert (inp.ready, inp.backlog) == (1, 0)


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        ("TASK: {}\nCONCURRENCY: 2 — the tasks all touch src/api", (2, "the tasks all touch src/api")),
        ("CONCURRENCY: 3: fragile migration", (3, "fragile migration")),
        ("CONCURRENCY:1", (1, "")),
        ("CONCURRENCY: 4 - a\nCONCURRENCY: 2 - b", (2, "b")),  # the last one counts
        ("concurrency is fine as it is", None),
        ("CONCURRENCY: many", None),
        ("NO TASKS", None),
    ],
)
def test_the_planner_advice_line(text: str, advice: tuple[int, str] | None) -> None:
    assert parse_advice(text) == advice


@pytest.mark.parametrize(
    ("standing", "advice", "slaves", "said"),
    [
        (None, (2, "overlap"), 4, (2, "overlap")),
        (None, (4, "as many as there are"), 4, None),  # the planner may only go lower
        (None, (9, "more"), 4, None),
        (None, None, 4, None),
        ((2, "overlap"), (2, "overlap"), 4, None),  # the same advice again: nothing new to say
        ((2, "overlap"), (3, "less overlap now"), 4, (3, "less overlap now")),
        ((2, "overlap"), None, 4, (0, "")),  # an answer without advice lifts the old one
        ((2, "overlap"), (7, "more"), 4, (0, "")),
    ],
)
def test_the_newest_planner_answer_s_advice_stands(
    standing: tuple[int, str] | None, advice: tuple[int, str] | None, slaves: int, said: tuple[int, str] | None
) -> None:
    groups = (
        [[ev("scheduler.capped", None, "c1", source="planner", cap=standing[0], reason=standing[1])]]
        if standing
        else []
    )
    st = build(*groups, [ev("scheduler.capped", None, "cli", source="user", cap=1)])
    out = advice_events(st, advice, slaves, "c2")
    assert [(e.cap, e.reason) for e in out if isinstance(e, SchedulerCapped)] == ([said] if said else [])
    assert all(isinstance(e, SchedulerCapped) and e.source == "planner" for e in out)  # a person's cap stays


# --- the simulated fleet (scripts/bench scheduler) -------------------------------------------------


def test_the_simulated_fleet_lands_every_task_with_the_real_scheduler() -> None:
    from clanker.fleet.simulate import Workload, simulate

    free = Workload(tasks=12, files=10_000, seed=3)
    a, f = simulate(free, 4, adaptive=True), simulate(free, 4, adaptive=False)
    assert a == f and a.conflicts == 0  # nothing conflicts: the throttle never moves, the runs are the same
    assert a.most_at_work == 4 and a.makespan > 0
    heavy = Workload(tasks=12, files=3, seed=3)
    a, f = simulate(heavy, 4, adaptive=True), simulate(heavy, 4, adaptive=False)
    assert f.conflicts > 0 and a.agent_secs < f.agent_secs  # conflicts halve the work target: fewer wasted runs
    assert simulate(heavy, 4, adaptive=True) == a  # a seed is one workload: the same result every time


@pytest.mark.parametrize(
    ("mainlined", "reviewed", "docs", "asked", "due"),
    [
        (0, (0, ""), "abc", (), None),  # nothing landed, no baseline: nothing to compare
        (9, (0, "abc"), "abc", (), None),
        (10, (0, "abc"), "abc", (), "10 landings since the plan was last compared with main"),
        (12, (10, "abc"), "abc", (), None),  # reviewed at 10: two more is not enough
        (12, (10, "abc"), "abd", (), "the plan documents changed"),
        (30, (0, "abc"), "abc", ("review",), None),  # asked already
        (30, (0, "abc"), "", (), None),  # no plan documents
    ],
)
def test_the_plan_is_reviewed_after_landings_or_a_docs_change(
    mainlined: int, reviewed: tuple[int, str], docs: str, asked: tuple[str, ...], due: str | None
) -> None:
    import dataclasses

    from clanker.jobs.review import review_due

    st = dataclasses.replace(State(), mainlined=mainlined, reviewed=reviewed, plan_requests=asked)
    assert review_due(st, 10, docs) == due


def test_the_planner_merges_queued_tasks_that_overlap_into_one_keeping_them() -> None:
    from clanker.jobs.plan import merge_events, parse_merges
    from clanker.state.intake import DEFAULT_BRANCHES

    text = 'TASK: {"title": "x"}\nMERGE: {"tasks": ["T1", "T2"], "title": "Login, whole", "prompt": "do both"}\n'
    text += 'MERGE: {"tasks": ["T3"], "title": "one is not a merge"}\nMERGE: not json\n'
    specs = parse_merges(text)
    assert specs == [{"tasks": ["T1", "T2"], "title": "Login, whole", "prompt": "do both"}]
    st = build(added("T1", paths=["src/login"]), added("T2", paths=["src/login/form"]), working("T3", "c1"))
    out = merge_events(st, specs, "c2", DEFAULT_BRANCHES)
    assert [e.type for e in out] == ["task.added", "task.cancelled", "task.cancelled"]
    new = out[0]
    assert isinstance(new, TaskAdded) and (new.task, new.title, new.parent) == ("T4", "Login, whole", "T1")
    assert new.paths == ("src/login", "src/login/form")  # the merged tasks' paths, when it names none
    assert all(isinstance(e, TaskCancelled) and e.reason == "merged into T4 by the planner" for e in out[1:])
    busy = [{"tasks": ["T1", "T3"], "title": "with one in hand"}]
    assert merge_events(st, busy, "c2", DEFAULT_BRANCHES) == []  # T3 is being worked on: no merge
