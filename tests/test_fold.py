"""The event log, the fold and the store: transition table, purity, snapshots, concurrency."""

from __future__ import annotations

import copy
import json
import multiprocessing
import shutil
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from clanker.errors import IllegalTransition
from clanker.state import atomic
from clanker.state import log as events
from clanker.state.codec import from_json, to_json
from clanker.state.events import Event
from clanker.state.fold import fold
from clanker.state.legal import HOLDER_ONLY, check
from clanker.state.model import ANNOTATIONS, TRANSITIONS, SlaveInfo, State, Task, TaskState
from clanker.state.paths import Paths
from clanker.state.reconcile import leftovers
from clanker.state.snapshot import state_from_json, state_to_json
from clanker.state.store import SNAPSHOT_EVERY_BYTES, Store
from clanker.state.usage import Usage

from .helpers import event

# --- helpers --------------------------------------------------------------------------------------

TRIGGERS = sorted({trig for _, trig in TRANSITIONS})
STATES: list[TaskState | None] = [None, *TaskState]


def ev_for(trig: str, task: str = "T1", actor: str = "c1", **extra: Any) -> Event:
    """An event that fires `trig` (`task.verdict:done` → a task.verdict with verdict=done)."""
    data: dict[str, Any] = {}
    if trig.startswith("task.verdict:"):
        data["verdict"] = trig.split(":", 1)[1]
        trig = "task.verdict"
    if trig == "task.added":
        data["title"] = f"title of {task}"
    if trig in ("task.claimed", "task.judge_claimed", "task.landing"):
        data["slave"] = actor
    if trig == "task.mainlined":
        data["sha"] = "a" * 40
    data.update(extra)
    return event(trig, actor, task, data)


# The shortest legal path of triggers from "absent" to every state, found from the table itself.
def _paths_to_states() -> dict[TaskState | None, list[str]]:
    found: dict[TaskState | None, list[str]] = {None: []}
    todo: deque[TaskState | None] = deque([None])
    while todo:
        cur = todo.popleft()
        for (frm, trig), to in sorted(TRANSITIONS.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            if frm == cur and to not in found:
                found[to] = [*found[cur], trig]
                todo.append(to)
    return found


PATH_TO = _paths_to_states()


def store_in(tmp: Path, actor: str = "test") -> Store:
    return Store(Paths(tmp), actor)


def bring_to(store: Store, state: TaskState | None, task: str = "T1") -> None:
    for trig in PATH_TO[state]:
        store.append(ev_for(trig, task))
    current = store.state().task(task)
    assert (current.state if current else None) == state


def read_snapshot(store: Store) -> dict[str, Any]:
    snap = atomic.read_json(store.paths.snapshot)
    assert isinstance(snap, dict)
    return snap


def log_bytes(store: Store) -> bytes:
    return store.paths.events.read_bytes() if store.paths.events.exists() else b""


def replay(store: Store) -> State:
    return fold(State(), events.read_from(store.paths.events, 0))


def sample_log() -> list[Event]:
    return [
        event("slave.started", "c1", None, {"slave": "c1", "pid": 101, "pane": "%3"}, ts=1.0),
        ev_for("task.added", "T1", paths=["src/a.py"], tags=["x"], priority=2),
        ev_for("task.added", "T2"),
        ev_for("task.claimed", "T1", "c1"),
        event(
            "attempt.finished",
            "c1",
            "T1",
            {
                "role": "work",
                "usage": {"input": 10, "output": 5, "turns": 1, "cost_usd": 0.25},
                "session_id": "s-1",
            },
        ),
        ev_for("task.failed", "T1", error="gate failed"),
        ev_for("task.claimed", "T1", "c2"),
        ev_for("task.submitted", "T1", files=["src/a.py", "src/b.py"], summary="did it"),
        ev_for("task.judge_claimed", "T1", "c3"),
        event("attempt.finished", "c3", "T1", {"role": "judge", "usage": {"input": 7, "output": 3}}),
        ev_for("task.verdict:done", "T1", reasons="fine"),
        ev_for("task.landing", "T1", "c3"),
        ev_for("task.mainlined", "T1"),
        event("risk", "c1", "T2", {"kind": "conflict"}),
        event("fleet.paused", "cli", None, {"slave": "c2"}),
        ev_for("task.cancelled", "T2"),
    ]


def emit(store: Store, type_: str, task: str | None = None, **data: Any) -> None:
    store.append(event(type_, store.actor, task, data))


def with_offsets(evs: list[Event]) -> list[tuple[Event, int]]:
    return [(e, i + 1) for i, e in enumerate(evs)]


# --- the transition table ---------------------------------------------------------------------------


def test_every_state_is_reachable_from_absent() -> None:
    assert set(PATH_TO) == set(STATES)


LEGAL: list[tuple[TaskState | None, str]] = sorted(TRANSITIONS, key=lambda k: (str(k[0]), k[1]))


@pytest.mark.parametrize(("state", "trig"), LEGAL, ids=str)
def test_legal_transition_applies_through_the_store(tmp_path: Path, state: TaskState | None, trig: str) -> None:
    store = store_in(tmp_path)
    bring_to(store, state)
    before = log_bytes(store)
    store.append(ev_for(trig))
    task = store.state().task("T1")
    assert task is not None
    assert task.state == TRANSITIONS[(state, trig)]
    written = log_bytes(store)[len(before) :].decode()
    assert written.count("\n") == 1 and json.loads(written)["type"] == trig.split(":")[0]
    assert replay(store) == store.state()


ILLEGAL = [(s, t) for s in STATES for t in TRIGGERS if (s, t) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "trig"), ILLEGAL, ids=str)
def test_illegal_transition_is_refused_and_not_written(tmp_path: Path, state: TaskState | None, trig: str) -> None:
    store = store_in(tmp_path)
    bring_to(store, state)
    before_log, before_state = log_bytes(store), store.state()
    with pytest.raises(IllegalTransition) as info:
        store.append(ev_for(trig))
    assert f"can't apply {trig} in state {state or 'absent'}" in str(info.value)
    assert info.value.task == "T1" and info.value.event == trig
    assert log_bytes(store) == before_log
    assert store.state() == before_state
    assert store_in(tmp_path).state() == before_state


def test_a_batch_with_one_illegal_event_writes_nothing(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    bring_to(store, TaskState.READY)
    before = log_bytes(store)
    with pytest.raises(IllegalTransition, match="can't apply task.submitted in state ready"):
        store.append(ev_for("task.claimed"), ev_for("task.released"), ev_for("task.submitted"))
    assert log_bytes(store) == before
    # The same events in a legal order are checked against each other, not only the first state.
    store.append(ev_for("task.claimed"), ev_for("task.submitted"))
    assert store.state().tasks["T1"].state == TaskState.NEEDS_JUDGE


@pytest.mark.parametrize("annotation", sorted(ANNOTATIONS))
def test_annotations_need_an_existing_task_but_never_move_it(tmp_path: Path, annotation: str) -> None:
    store = store_in(tmp_path)
    with pytest.raises(IllegalTransition, match=f"can't apply {annotation} in state absent"):
        store.append(event(annotation, "c1", "T1", {}))
    assert log_bytes(store) == b""
    for state in (TaskState.READY, TaskState.JUDGING, TaskState.DONE, TaskState.CANCELLED):
        tid = f"T-{state}"
        bring_to(store, state, tid)
        store.append(event(annotation, "c1", tid, {"kind": "note"}))
        t = store.state().tasks[tid]
        assert t.state == state


def test_events_without_a_task_are_always_legal(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    emit(store, "slave.started", slave="c1", pid=42, pane="%1")
    emit(store, "fleet.paused")
    emit(store, "fleet.paused", slave="c2")
    st1 = store.state()
    assert st1.slaves["c1"] == SlaveInfo("c1", 42, "%1", st1.slaves["c1"].started, False)
    assert st1.paused == frozenset({"*", "c2"})
    emit(store, "fleet.resumed", slave="c2")
    assert store.state().paused == frozenset({"*"})
    emit(store, "slave.stopped", slave="c1")
    emit(store, "fleet.resumed")
    st2 = store.state()
    assert st2.paused == frozenset() and st2.slaves["c1"].stopped
    assert st2.events == 6


HOLDER_CASES = (
    [(TaskState.CLAIMED, t) for t in ("task.submitted", "task.released", "task.failed")]
    + [
        (TaskState.JUDGING, t)
        for t in ("task.judge_released", "task.verdict:done", "task.verdict:rework", "task.mainlined")
    ]
    + [(TaskState.LANDING, t) for t in ("task.mainlined", "task.verdict:rework", "task.landing_released")]
)


@pytest.mark.parametrize(("state", "trig"), HOLDER_CASES, ids=str)
def test_only_the_holder_may_move_a_task_on(tmp_path: Path, state: TaskState, trig: str) -> None:
    store = store_in(tmp_path)
    bring_to(store, state)  # held by c1
    assert store.state().tasks["T1"].slave == "c1"
    before = log_bytes(store)
    with pytest.raises(IllegalTransition) as info:
        store.append(ev_for(trig, "T1", "c2", slave="c2"))
    assert f"can't apply {trig} by c2 (held by c1) in state {state}" in str(info.value)
    assert log_bytes(store) == before
    store.append(ev_for(trig, "T1", "c1", slave="c1"))
    assert store.state().tasks["T1"].state == TRANSITIONS[(state, trig)]


def test_a_released_slave_cannot_submit_what_another_now_holds(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    store.append(ev_for("task.added"), ev_for("task.claimed", "T1", "c1"))
    store.append(ev_for("task.released", "T1", "ctl", reason="c1 presumed dead"))
    store.append(ev_for("task.claimed", "T1", "c2"))
    with pytest.raises(IllegalTransition, match=r"task.submitted by c1 \(held by c2\)"):
        store.append(ev_for("task.submitted", "T1", "c1", slave="c1"))
    store.append(ev_for("task.submitted", "T1", "c2", slave="c2"))
    t = store.state().tasks["T1"]
    assert t.state == TaskState.NEEDS_JUDGE and t.author == "c2" and t.attempts == 2


def test_check_agrees_with_the_table() -> None:
    st0 = fold(State(), with_offsets([ev_for("task.added")]))
    check(st0, ev_for("task.claimed"))
    with pytest.raises(IllegalTransition):
        check(st0, ev_for("task.mainlined"))
    with pytest.raises(IllegalTransition):
        check(st0, ev_for("task.verdict:maybe"))


def test_fold_skips_an_illegal_event_found_in_a_hand_edited_log(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    bring_to(store, TaskState.READY)
    events.append(store.paths.events, [ev_for("task.mainlined"), ev_for("task.claimed")])
    t = store_in(tmp_path).state().tasks["T1"]
    assert t.state == TaskState.CLAIMED and t.sha is None and t.attempts == 1


# --- fold semantics and purity ----------------------------------------------------------------------


def test_fold_of_a_lifecycle() -> None:
    st1 = fold(State(), with_offsets(sample_log()))
    t1, t2 = st1.tasks["T1"], st1.tasks["T2"]
    assert t1.state == TaskState.DONE and t1.sha == "a" * 40
    assert t1.attempts == 2 and t1.author == "c2" and t1.slave is None and t1.judge_rounds == 1
    assert t1.errors == ("gate failed",) and t1.touched == ("src/a.py", "src/b.py") and t1.summary == "did it"
    assert t1.work == Usage(10, 5, 0, 0, 1, 0.25) and t1.judge == Usage(7, 3)
    assert t1.usage.tokens == 25 and t1.sessions == ("s-1",)
    assert t1.paths == ("src/a.py",) and t1.tags == ("x",) and t1.priority == 2 and t1.branch == "clanker/T1"
    assert t2.state == TaskState.CANCELLED
    assert st1.mainlined == 1 and st1.conflicts == 1 and st1.events == len(sample_log())
    assert st1.paused == frozenset({"c2"}) and st1.slaves["c1"].pid == 101
    assert st1.offset == len(sample_log())


def test_the_judge_s_reworks_are_counted_apart_from_conflicts_and_start_again_when_rescoped() -> None:
    evs = [event("task.added", "cli", "T1", {"title": "t"})]
    for conflict in (False, True, False):
        evs += [
            event("task.claimed", "c1", "T1", {"slave": "c1"}),
            event("task.submitted", "c1", "T1", {"slave": "c1"}),
            event("task.judge_claimed", "c2", "T1", {"slave": "c2"}),
            event("task.verdict", "c2", "T1", {"slave": "c2", "verdict": "rework", "conflict": conflict}),
        ]
    t = fold(State(), with_offsets(evs)).tasks["T1"]
    assert (t.reworks, t.conflicts, t.judge_rounds) == (2, 1, 3)
    evs += [event("task.blocked", "c2", "T1", {"reason": "2 rework verdicts"}),
            event("task.rescoped", "c3", "T1", {"prompt": "said better"})]  # fmt: skip
    t = fold(State(), with_offsets(evs)).tasks["T1"]
    assert t.reworks == 0 and t.state == TaskState.READY and t.prompt == "said better"


def test_fold_is_deterministic_and_pure() -> None:
    evs = sample_log()
    evs_copy = copy.deepcopy(evs)
    once = fold(State(), with_offsets(evs))
    twice = fold(State(), with_offsets(evs))
    assert once == twice
    assert evs == evs_copy  # the events (and their data dicts) are untouched

    mid = fold(State(), with_offsets(evs[:6]))
    mid_json = json.dumps(state_to_json(mid), sort_keys=True)
    mid_tasks = dict(mid.tasks)
    rest = [(e, 6 + i + 1) for i, e in enumerate(evs[6:])]
    after = fold(mid, rest)
    assert json.dumps(state_to_json(mid), sort_keys=True) == mid_json
    assert mid.tasks == mid_tasks and mid.tasks["T1"].state == TaskState.READY
    # Folding in two steps gives the same state as folding in one.
    assert after == once


def test_fold_of_nothing_is_the_same_state() -> None:
    st1 = fold(State(), with_offsets(sample_log()))
    assert fold(st1, []) == st1


# --- snapshots ---------------------------------------------------------------------------------------


def test_snapshot_round_trip_through_json_text() -> None:
    st1 = fold(State(), with_offsets(sample_log()))
    st1 = fold(st1, [(event("fleet.paused", "cli", None, {}), 99)])
    text = json.dumps(state_to_json(st1))
    back = state_from_json(json.loads(text))
    assert back == st1
    assert isinstance(back.tasks["T1"].touched, tuple) and isinstance(back.tasks["T1"].state, TaskState)
    assert back.tasks["T1"].work == Usage(10, 5, 0, 0, 1, 0.25)


def test_snapshot_round_trip_of_the_empty_state() -> None:
    assert state_from_json(json.loads(json.dumps(state_to_json(State())))) == State()


def _fill(store: Store, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        emit(store, "task.added", f"T{i}", title=f"task {i}")


def test_store_catches_up_from_the_snapshot(tmp_path: Path) -> None:
    a = store_in(tmp_path, "a")
    _fill(a, 3)
    a.save_snapshot()
    snap = read_snapshot(a)
    assert snap["head"] == events.head(a.paths.events)
    assert snap["state"]["offset"] == events.size(a.paths.events)
    # Mark the snapshot so we can tell whether a new store starts from it instead of replaying.
    snap["state"]["tasks"][0]["title"] = "from the snapshot"
    atomic.write_json(a.paths.snapshot, snap)
    _fill(a, 2, start=4)
    b = store_in(tmp_path, "b")
    st_b = b.state()
    assert st_b.tasks["T1"].title == "from the snapshot"
    assert sorted(st_b.tasks) == ["T1", "T2", "T3", "T4", "T5"]
    assert st_b.offset == events.size(a.paths.events) and st_b.events == 5
    # b keeps folding new events incrementally as a appends them.
    emit(a, "task.claimed", "T5", slave="c1")
    assert b.state().tasks["T5"].state == TaskState.CLAIMED
    assert b.state().tasks["T1"].title == "from the snapshot"


def test_store_ignores_a_snapshot_of_another_log(tmp_path: Path) -> None:
    a = store_in(tmp_path)
    _fill(a, 3)
    a.save_snapshot()
    snap = read_snapshot(a)
    snap["state"]["tasks"][0]["title"] = "from the snapshot"
    snap["head"] = '{"v":1,"type":"task.added","task":"OTHER"}\n'
    atomic.write_json(a.paths.snapshot, snap)
    st1 = store_in(tmp_path).state()
    assert st1.tasks["T1"].title == "task 1"
    assert st1 == replay(a)


def test_store_ignores_a_snapshot_beyond_the_end_of_the_log(tmp_path: Path) -> None:
    a = store_in(tmp_path)
    _fill(a, 2)
    a.save_snapshot()
    snap = read_snapshot(a)
    snap["state"]["offset"] += 1000
    snap["state"]["tasks"][0]["title"] = "from the snapshot"
    atomic.write_json(a.paths.snapshot, snap)
    assert store_in(tmp_path).state().tasks["T1"].title == "task 1"


@pytest.mark.parametrize("junk", ["not json at all", '{"head": 1}', '{"head": "x", "state": {"tasks": 3}}'])
def test_store_survives_a_broken_snapshot(tmp_path: Path, junk: str) -> None:
    a = store_in(tmp_path)
    _fill(a, 2)
    a.paths.snapshot.write_text(junk)
    assert store_in(tmp_path).state() == replay(a)


def test_store_writes_a_snapshot_as_the_log_grows(tmp_path: Path) -> None:
    a = store_in(tmp_path)
    big = "x" * 2000
    n = SNAPSHOT_EVERY_BYTES // 2000 + 5
    for i in range(n):
        emit(a, "task.added", f"T{i}", title=big)
    snap = read_snapshot(a)
    assert isinstance(snap, dict)
    assert snap["state"]["offset"] >= SNAPSHOT_EVERY_BYTES
    assert state_from_json(snap["state"]) == replay_upto(a, snap["state"]["offset"])
    assert snap["head"] == events.head(a.paths.events)


def replay_upto(store: Store, offset: int) -> State:
    return fold(State(), [(e, end) for e, end in events.read_from(store.paths.events, 0) if end <= offset])


# --- the log itself ----------------------------------------------------------------------------------


def _line(ev: Event) -> bytes:
    return (json.dumps(to_json(ev), separators=(",", ":")) + "\n").encode()


def test_read_from_skips_a_partial_last_line_and_resumes_there(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    e1, e2, e3 = ev_for("task.added", "A"), ev_for("task.added", "B"), ev_for("task.added", "C")
    l1, l2, l3 = _line(e1), _line(e2), _line(e3)
    log.write_bytes(l1 + l2 + l3[:10])
    got = list(events.read_from(log, 0))
    assert [e.task_id for e, _ in got] == ["A", "B"]
    assert [end for _, end in got] == [len(l1), len(l1) + len(l2)]
    resume = got[-1][1]
    assert list(events.read_from(log, resume)) == []  # still in progress
    with open(log, "ab") as f:
        f.write(l3[10:])
    more = list(events.read_from(log, resume))
    assert [e.task_id for e, _ in more] == ["C"]
    assert more[0][1] == len(l1) + len(l2) + len(l3) == events.size(log)
    assert more[0][0] == from_json(json.loads(l3))


def test_read_from_never_yields_a_last_line_without_its_newline_even_if_it_parses(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    l1, l2 = _line(ev_for("task.added", "A")), _line(ev_for("task.added", "B"))
    log.write_bytes(l1 + l2[:-1])  # all of B's JSON, but its write is not finished
    assert [(e.task_id, end) for e, end in events.read_from(log, 0)] == [("A", len(l1))]
    with open(log, "ab") as f:
        f.write(b"\n")
    assert [(e.task_id, end) for e, end in events.read_from(log, len(l1))] == [("B", len(l1) + len(l2))]


def test_read_from_skips_junk_lines_but_counts_their_bytes(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    good = _line(ev_for("task.added", "A"))
    junk = b"garbage\n" + b'{"no_type": 1}\n' + b"[1, 2]\n" + b"\xff\xfe\n"
    log.write_bytes(junk + good)
    got = list(events.read_from(log, 0))
    assert [e.task_id for e, _ in got] == ["A"] and got[0][1] == len(junk) + len(good)


def test_a_torn_line_never_eats_the_next_event(tmp_path: Path) -> None:
    # A half line left at the end of the log (a writer killed mid-write, a full disk): the next
    # append used to be glued to it and lost with it — here the task.mainlined that ends a landing.
    store = store_in(tmp_path)
    bring_to(store, TaskState.LANDING)
    with open(store.paths.events, "ab") as f:
        f.write(_line(ev_for("task.note", "T1", note="x"))[:25])
    store.append(ev_for("task.mainlined", "T1", "c1"))
    assert store.state().tasks["T1"].state == TaskState.DONE
    assert replay(store).tasks["T1"].state == TaskState.DONE, "a fresh reader sees it too"
    skipped: list[int] = []
    assert [e.type for e, _ in events.read_from(store.paths.events, 0, skipped)][-1] == "task.mainlined"
    assert len(skipped) == 1
    [(line, why)] = events.unreadable(store.paths.events)
    assert line == len(PATH_TO[TaskState.LANDING]) + 1 and why.startswith("not JSON")


def test_a_landing_whose_commit_is_on_main_is_completed_from_git(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    for tid in ("T1", "T2"):
        for trig in PATH_TO[TaskState.ACCEPTED]:
            store.append(ev_for(trig, tid, "c9"))
    store.append(ev_for("task.landing", "T1", "c1"))
    store.append(ev_for("task.landing", "T2", "c1"))
    # c1 is between jobs and still holds both: T1 is on main (git says so), T2 is not.
    landed = {"T1": "b" * 40}
    evs = store.transact(lambda st: leftovers(st, "c1", landed.get))
    assert [(e.type, e.task_id) for e in evs] == [("task.mainlined", "T1"), ("task.landing_released", "T2")]
    st = store.state()
    assert st.tasks["T1"].state == TaskState.DONE and st.tasks["T2"].state == TaskState.ACCEPTED
    assert leftovers(st, "c1", landed.get) == [], "nothing left to heal"
    assert leftovers(st, "c2", landed.get) == []


def test_read_from_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert list(events.read_from(tmp_path / "nope.log", 0)) == []
    assert events.size(tmp_path / "nope.log") == 0 and events.head(tmp_path / "nope.log") == ""


def test_event_json_round_trip_keeps_unicode_and_data() -> None:
    ev = event("task.added", "cli", "T1", {"title": 'é "q" $(x)\n', "paths": ["a"]}, ts=12.5)
    log_line = json.dumps(to_json(ev), ensure_ascii=False)
    assert from_json(json.loads(log_line)) == ev


def test_store_does_not_fold_a_half_written_event(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    _fill(store, 1)
    line = _line(ev_for("task.added", "T2"))
    with open(store.paths.events, "ab") as f:
        f.write(line[:-5])
    assert sorted(store.state().tasks) == ["T1"]
    with open(store.paths.events, "ab") as f:
        f.write(line[-5:])
    assert sorted(store.state().tasks) == ["T1", "T2"]


# --- concurrent writers ---------------------------------------------------------------------------


def _raw_writer(path: str, writer: int, count: int) -> None:
    pad = "p" * (300 + 97 * writer)  # lines of different lengths, some well over 1 KiB in total
    for i in range(count):
        events.append(Path(path), [event("task.note", f"w{writer}", f"W{writer}", {"note": f"{writer}:{i}:{pad}"})])


def _store_writer(repo: str, writer: int, count: int) -> None:
    store = Store(Paths(Path(repo)), f"w{writer}")
    for i in range(count):
        emit(store, "task.added", f"W{writer}-{i}", title=f"from {writer}")
        emit(store, "task.claimed", f"W{writer}-{i}", slave=f"c{writer}")


def _run_all(target: Any, args: list[tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_appends_never_tear_a_line(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    writers, count = 4, 500
    _run_all(_raw_writer, [(str(log), w, count) for w in range(writers)])
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    seen: dict[int, list[int]] = {w: [] for w in range(writers)}
    for raw in lines[:-1]:
        obj = json.loads(raw)  # a torn or interleaved line would not parse
        w, i, pad = obj["note"].split(":")
        assert pad == "p" * (300 + 97 * int(w))
        seen[int(w)].append(int(i))
    assert seen == {w: list(range(count)) for w in range(writers)}
    assert len(list(events.read_from(log, 0))) == writers * count


def test_concurrent_store_transactions_stay_legal(tmp_path: Path) -> None:
    writers, count = 3, 40
    Store(Paths(tmp_path), "init")
    _run_all(_store_writer, [(str(tmp_path), w, count) for w in range(writers)])
    st1 = store_in(tmp_path).state()
    assert len(st1.tasks) == writers * count
    assert all(t.state == TaskState.CLAIMED and t.attempts == 1 for t in st1.tasks.values())
    assert st1.events == 2 * writers * count


# --- a random walk over the table ----------------------------------------------------------------

POOL = ["T1", "T2", "T3"]
SLAVES = ["c1", "c2"]


# Mostly move tasks forward, so random walks reach judging, rework and done, not only cancel/split.
FORWARD: dict[TaskState | None, list[str]] = {
    None: ["task.added"],
    TaskState.READY: ["task.claimed"],
    TaskState.CLAIMED: ["task.submitted", "task.submitted", "task.failed"],
    TaskState.NEEDS_JUDGE: ["task.judge_claimed"],
    TaskState.JUDGING: ["task.verdict:done", "task.verdict:done", "task.verdict:rework", "task.judge_released"],
    TaskState.ACCEPTED: ["task.landing"],
    TaskState.LANDING: ["task.mainlined", "task.mainlined", "task.verdict:rework", "task.landing_released"],
    TaskState.REWORK: ["task.claimed"],
    TaskState.BLOCKED: ["task.retried"],
    TaskState.CANCELLED: ["task.retried"],
}


class LogMachine(RuleBasedStateMachine):
    """Random task events through Store.append; the fold must agree with a model of the table."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="clanker-fold-"))
        self.store = store_in(self.dir, "m1")
        self.other = store_in(self.dir, "m2")  # a second writer sharing the log
        self.model: dict[str, TaskState] = {}
        self.attempts: dict[str, int] = {}
        self.shas: dict[str, str] = {}
        self.holder: dict[str, str | None] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _apply(self, writer: Store, ev: Event) -> None:
        task = ev.task_id
        assert task is not None
        data = ev.payload()
        before_log = log_bytes(writer)
        key = (
            self.model.get(task),
            ev.type if ev.type != "task.verdict" else f"task.verdict:{data['verdict']}",
        )
        signer = data.get("slave") or None if type(ev) in HOLDER_ONLY else None
        holder_ok = signer is None or self.holder.get(task) == signer
        # One mainline job at a time: a second slave can't claim a landing while one lands.
        landers = {self.holder.get(t) for t, s in self.model.items() if s == TaskState.LANDING}
        one_lander = ev.type != "task.landing" or not landers or landers == {data.get("slave")}
        legal = (key in TRANSITIONS and holder_ok and one_lander) or (ev.type in ANNOTATIONS and task in self.model)
        try:
            writer.append(ev)
        except IllegalTransition as e:
            assert not legal, f"{key} is in the table but was refused: {e}"
            assert log_bytes(writer) == before_log
            return
        assert legal, f"{key} is not in the table but was accepted"
        if ev.type not in ANNOTATIONS:
            self.model[task] = TRANSITIONS[key]
        if ev.type in ("task.claimed", "task.judge_claimed", "task.landing"):
            self.holder[task] = str(data["slave"])
        elif ev.type not in ANNOTATIONS:
            self.holder[task] = None  # an accepted task waits for the mainline queue, held by nobody
        if ev.type == "task.mainlined":
            self.shas[task] = str(data["sha"])

    @rule(
        task=st.sampled_from(POOL),
        trig=st.sampled_from(TRIGGERS),
        slave=st.sampled_from(SLAVES),
        second=st.booleans(),
        sign=st.booleans(),
    )
    def transition(self, task: str, trig: str, slave: str, second: bool, sign: bool) -> None:
        extra: dict[str, Any] = {}
        if trig == "task.mainlined":
            extra["sha"] = f"{len(self.shas) + 1:040x}"
        if sign and trig.split(":")[0] in {c.TYPE for c in HOLDER_ONLY}:
            extra["slave"] = slave  # who says it did this: only the holder may
        self._apply(self.other if second else self.store, ev_for(trig, task, slave, **extra))

    @rule(
        task=st.sampled_from(POOL),
        picks=st.lists(st.integers(0, 99), min_size=1, max_size=8),
        slave=st.sampled_from(SLAVES),
    )
    def legal_steps(self, task: str, picks: list[int], slave: str) -> None:
        """Steer towards the deep states: fire triggers the table allows from the task's state."""
        for pick in picks:
            now = self.model.get(task)
            options = FORWARD.get(now, []) if pick < 80 else []
            options = options or sorted(trig for (frm, trig) in TRANSITIONS if frm == now)
            if options:
                signer = (self.holder.get(task) or slave) if pick % 7 else slave
                self.transition(task, options[pick % len(options)], signer, pick % 2 == 0, pick % 3 != 0)

    @rule(task=st.sampled_from(POOL), role=st.sampled_from(["work", "judge"]), tokens=st.integers(0, 1000))
    def annotate(self, task: str, role: str, tokens: int) -> None:
        usage = {"input": tokens, "output": 1, "cost_usd": tokens / 1000}
        self._apply(self.store, event("attempt.finished", "c1", task, {"role": role, "usage": usage}))

    @rule(verdict=st.sampled_from(["maybe", "", "DONE"]), task=st.sampled_from(POOL))
    def bogus_verdict(self, verdict: str, task: str) -> None:
        with pytest.raises(IllegalTransition):
            self.store.append(event("task.verdict", "c1", task, {"verdict": verdict}))

    @rule()
    def snapshot(self) -> None:
        self.store.save_snapshot()

    @rule()
    def restart(self) -> None:
        """A new process: starts from state.json (if any) and the tail of the log."""
        self.other = store_in(self.dir, "m2")

    @invariant()
    def fold_of_the_log_is_the_store_state(self) -> None:
        full = replay(self.store)
        assert full == self.store.state()
        assert full == self.other.state()

    @invariant()
    def states_follow_the_table(self) -> None:
        st1 = self.store.state()
        assert {tid: t.state for tid, t in st1.tasks.items()} == self.model
        reachable = set(PATH_TO)
        assert all(t.state in reachable for t in st1.tasks.values())

    @invariant()
    def holders_follow_the_claims(self) -> None:
        assert {tid: t.slave for tid, t in self.store.state().tasks.items()} == {
            tid: self.holder.get(tid) for tid in self.model
        }

    @invariant()
    def done_tasks_have_their_sha(self) -> None:
        for t in self.store.state().tasks.values():
            if t.state == TaskState.DONE:
                assert t.sha is not None and t.sha == self.shas[t.id]

    @invariant()
    def attempts_never_decrease(self) -> None:
        for t in self.store.state().tasks.values():
            assert t.attempts >= self.attempts.get(t.id, 0)
            assert t.attempts >= t.attempt_base >= 0
            self.attempts[t.id] = t.attempts


def test_random_event_sequences_keep_the_invariants() -> None:
    run_state_machine_as_test(  # type: ignore[no-untyped-call,unused-ignore]
        LogMachine, settings=settings(max_examples=25, stateful_step_count=30, deadline=None, database=None)
    )


def test_task_defaults() -> None:
    t = Task("T1", "x")
    assert t.state == TaskState.READY and t.usage == Usage() and t.attempts_since_retry == 0


# --- jobs that are not tasks: one holder at a time ----------------------------------------------


@pytest.mark.parametrize(
    ("claim", "finish", "extra"),
    [
        ("health.claimed", "health.ran", {}),
        ("plan.claimed", "plan.done", {"request": ""}),
        ("preflight.claimed", "preflight.ran", {"key": "k"}),
    ],
)
def test_a_job_held_by_one_slave_can_not_be_claimed_or_finished_by_another(
    tmp_path: Path, claim: str, finish: str, extra: dict[str, Any]
) -> None:
    store = store_in(tmp_path)
    if claim == "plan.claimed":
        emit(store, "plan.requested", request="", reason="asked")
    emit(store, claim, slave="c1", **extra)
    log = log_bytes(store)
    with pytest.raises(IllegalTransition, match="held by c1"):
        emit(store, claim, slave="c2", **extra)  # appended by hand: a second claim is refused
    with pytest.raises(IllegalTransition, match="held by c1"):
        emit(store, finish, slave="c2", **extra)
    assert log_bytes(store) == log
    emit(store, finish, slave="c1", **extra)
    with pytest.raises(IllegalTransition, match="free"):
        emit(store, finish, slave="c1", **extra)  # nothing to finish once it is done


def test_only_one_slave_lands_on_main_at_a_time(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    for tid in ("T1", "T2"):
        for trig in PATH_TO[TaskState.ACCEPTED]:
            store.append(ev_for(trig, tid, "c9"))
    store.append(ev_for("task.landing", "T1", "c1"))
    with pytest.raises(IllegalTransition, match="main is being landed by c1"):
        store.append(ev_for("task.landing", "T2", "c2"))
    store.append(ev_for("task.landing", "T2", "c1"))  # the same lander's batch may grow


def test_the_events_of_one_append_reach_the_log_in_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader woken by a write sees all of a transaction: a task blocked together with the
    planner request it leads to, never the block alone (a run once ended on that half)."""
    import os

    log = tmp_path / "events.log"
    events.append(log, [ev_for("task.added", "T1")])
    writes: list[bytes] = []
    write = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    batch = [
        ev_for("task.blocked", "T1", reason="out_of_budget"),
        event("plan.requested", "c1", None, {"request": "T1"}),
    ]
    events.append(log, batch, locked=True)
    assert len(writes) == 1 and writes[0].count(b"\n") == 2
    assert [e.type for e, _ in events.read_from(log, 0)] == ["task.added", "task.blocked", "plan.requested"]


def test_a_fold_gives_a_state_with_every_field_set_and_the_dataclass_s_own_equality() -> None:
    import dataclasses

    from clanker.state.events import TaskAdded
    from clanker.state.model import State

    folded = fold(State(), [(TaskAdded(actor="cli", task="T1", title="One"), 10)])
    assert set(vars(folded)) == {f.name for f in dataclasses.fields(State)}, "the fold fills State in directly"
    assert folded == dataclasses.replace(State(tasks=folded.tasks), offset=10, events=1)
    assert folded.tasks["T1"].title == "One" and folded.offset == 10
