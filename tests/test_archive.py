"""The archive: finished tasks leave the live state (and every live read) yet stay known, counted
and readable, come back when an event names them, and a snapshot is only trusted with its archive."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from clanker.fleet.scheduler import choose_job
from clanker.state import archive
from clanker.state import log as events
from clanker.state.events import Event
from clanker.state.fold import fold
from clanker.state.intake import added_event, get, import_events, next_id
from clanker.state.model import State, Task
from clanker.state.paths import Paths
from clanker.state.store import Store
from clanker.state.usage import Usage

from .helpers import event


def lifecycle(tid: str, n: int, cancel: bool = False) -> list[Event]:
    """A task added, worked (with a cost), judged and landed — or cancelled."""
    w, j = f"c{n % 3 + 1}", f"c{(n + 1) % 3 + 1}"
    added = event("task.added", "cli", tid, {"title": f"Task {n}", "prompt": f"do {n}"})
    if cancel:
        return [added, event("task.cancelled", "cli", tid, {"reason": "not wanted"})]
    usage = {"input": 10 * n, "output": n, "cost_usd": 0.01 * n}
    return [
        added,
        event("task.claimed", w, tid, {"slave": w}),
        event("attempt.finished", w, tid, {"slave": w, "role": "work", "attempt": 1, "outcome": "ok", "usage": usage}),
        event("task.submitted", w, tid, {"slave": w, "summary": "did it", "files": [f"a{n}/f"]}),
        event("task.judge_claimed", j, tid, {"slave": j}),
        event("task.verdict", j, tid, {"slave": j, "verdict": "done"}),
        event("task.landing", j, tid, {"slave": j}),
        event("task.mainlined", j, tid, {"slave": j, "sha": f"{n:040x}"}),
    ]


def history(n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(1, n + 1):
        out += lifecycle(f"T{i}", i, cancel=i % 5 == 0)
    out.append(event("task.added", "cli", "LIVE", {"title": "still to do", "depends_on": ["T1"]}))
    return out


def small(store: Store) -> Store:
    store.keep_finished, store.live_max, store.fold_chunk = 3, 6, 7
    return store


def archived(paths: Paths, n: int, actor: str = "t") -> Store:
    """A store over a history of `n` tasks, its snapshot written (older finished tasks archived)."""
    events.append(paths.events, history(n))
    store = small(Store(paths, actor))
    store.state()
    store.save_snapshot()
    return store


def whole(st: State, paths: Paths) -> dict[str, Task]:
    """Every task, live or read back from the archive."""
    return {**{t.id: t for t in archive.tasks_of(paths.archive, st.archive)}, **st.tasks}


def test_finished_tasks_leave_the_live_state_yet_stay_known_counted_and_readable(paths: Paths) -> None:
    evs = history(30)
    events.append(paths.events, evs)
    plain = fold(State(), events.read_from(paths.events, 0))  # no archive: everything live
    store = small(Store(paths, "t"))
    st = store.state()
    assert len(st.tasks) <= store.live_max  # archived while folding, not only at the end
    store.save_snapshot()
    st = store.state()
    assert len(st.tasks) == 3 + 1  # the newest finished ones and the live one
    assert "LIVE" in st.tasks and st.total == plain.total == 31
    assert st.counts() == plain.counts() and st.counts()["cancelled"] == 6
    assert (st.work_usage, st.judge_usage) == (plain.work_usage, plain.judge_usage)
    assert st.work_usage.cost_usd > 0
    assert whole(st, paths) == plain.tasks
    assert st.task("T1") == plain.tasks["T1"] and get(st, "T2") == plain.tasks["T2"]
    assert st.known("T1") and st.state_of("T1") == "done" and st.state_of("T5") == "cancelled"
    lines = paths.archive.read_text().splitlines()
    assert len(lines) == 1 + 27  # the header, then each archived task once


def test_a_new_reader_trusts_the_snapshot_only_with_its_archive(paths: Paths) -> None:
    first = archived(paths, 20, "a")
    want = first.state()
    every = whole(want, paths)
    again = Store(paths, "b").state()
    assert again.archive.entries and again.total == want.total
    assert whole(again, paths) == every
    paths.archive.unlink()  # the cache the index points into is gone: fold the log again
    cold = Store(paths, "c").state()
    assert not cold.archive.entries and cold.total == want.total
    assert cold.tasks == every


def test_an_event_about_an_archived_task_brings_it_back(paths: Paths) -> None:
    store = archived(paths, 20, "t")
    st = store.state()
    assert "T5" in st.archive and "T5" not in st.tasks  # cancelled long ago
    cost = st.work_usage
    late = {"slave": "c9", "role": "work", "attempt": 9, "outcome": "ok", "usage": {"input": 5, "cost_usd": 1.0}}
    store.append(event("attempt.finished", "c9", "T1", late))  # a late report about a landed task
    store.append(event("task.retried", "cli", "T5"))
    st = store.state()
    assert st.tasks["T5"].state == "ready" and "T5" not in st.archive
    assert st.tasks["T1"].work.cost_usd == pytest.approx(0.01 + 1.0) and "T1" not in st.archive
    assert st.work_usage.cost_usd == pytest.approx(cost.cost_usd + 1.0)
    assert st.counts() == fold(State(), events.read_from(paths.events, 0)).counts()
    assert Store(paths, "fresh").state().tasks["T5"].state == "ready"  # from the snapshot, or the log


def test_archiving_at_any_point_changes_nothing_but_where_tasks_live(paths: Paths) -> None:
    rng = random.Random(7)
    evs = history(25)
    evs += [event("task.retried", "cli", "T10"), event("task.note", "cli", "T3", {"text": "later"})]
    store = Store(paths, "t")
    store.keep_finished, store.live_max = 2, 10**9
    pos = 0
    while pos < len(evs):
        step = rng.randint(1, 12)
        events.append(paths.events, evs[pos : pos + step])
        pos += step
        store.state()
        if rng.random() < 0.5:
            store.save_snapshot()  # archives what finished long enough ago
    st = store.state()
    plain = fold(State(), events.read_from(paths.events, 0))
    assert st.archive.entries
    assert whole(st, paths) == plain.tasks
    assert st.counts() == plain.counts() and st.total == plain.total


def test_two_processes_archive_each_task_once(paths: Paths) -> None:
    events.append(paths.events, history(12))
    a, b = small(Store(paths, "a")), small(Store(paths, "b"))
    a.state(), b.state()
    a.save_snapshot()
    b.save_snapshot()  # finds a's lines for the same tasks and takes them
    a.save_snapshot()
    lines = paths.archive.read_text().splitlines()[1:]
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == 12 - 3
    assert whole(a.state(), paths) == whole(b.state(), paths)


def test_intake_and_the_scheduler_know_archived_tasks(paths: Paths) -> None:
    store = archived(paths, 10, "t")
    st = store.state()
    assert "T1" in st.archive
    assert next_id(st) == "T12"  # never an archived task's id
    with pytest.raises(Exception, match="exists already"):
        added_event(st, {"id": "T1", "title": "again"})
    added = added_event(st, {"title": "after T2", "depends_on": ["T2"]})
    assert added.depends_on == ("T2",)
    rows: list[dict[str, Any]] = [{"title": "Task 1", "prompt": "do 1"}, {"id": "T3", "title": "x"}]
    assert import_events(st, rows) == []  # archived rows are not imported again
    job = choose_job(st, "c1", slaves=2, alive=frozenset({"c1", "c2"}), now=0.0)
    assert job is not None and job.task == "LIVE"  # its dependency T1 is done, in the archive


def test_task_list_shows_the_live_ones_and_all_with_all(paths: Paths) -> None:
    from clanker.commands.task import list_tasks

    store = archived(paths, 8, "t")
    out: list[str] = []
    list_tasks(store, False, out.append)
    assert len(out) == 4 + 1 and out[-1] == "… and 5 older finished task(s): `clanker task list --all`"
    out.clear()
    list_tasks(store, True, out.append, everything=True)
    rows = json.loads(out[0])
    assert [r["id"] for r in rows][:5] == ["T1", "T2", "T3", "T4", "T5"] and len(rows) == 9
    assert rows[0]["cost_usd"] == pytest.approx(0.01)


def test_usage_subtracts() -> None:
    a, b = Usage(10, 5, 1, 1, 2, 0.5), Usage(4, 2, 1, 0, 1, 0.2)
    assert (a - b) + b == a


def test_status_counts_archived_tasks(paths: Paths) -> None:
    from clanker.commands.status import render, to_json

    store = archived(paths, 15, "t")
    st = store.state()
    text = render(st, [])
    assert text.splitlines()[0].startswith("tasks 16  ready:1  done:12  cancelled:3")
    assert "DONE (12, average" in text and "… and 2 more" in text
    data = to_json(st, [])
    assert data["archived"] == 12 and data["counts"] == {"done": 12, "cancelled": 3, "ready": 1}
