"""`clanker status`: the JSON shape scripts rely on, usage totals, and slave states from heartbeats."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from clanker.commands.status import render, to_json
from clanker.config import Config
from clanker.fleet.rows import slave_rows
from clanker.state import atomic
from clanker.state.events import Event
from clanker.state.fold import fold
from clanker.state.heartbeat import Heart
from clanker.state.legal import check
from clanker.state.model import State
from clanker.state.paths import Paths
from tests.helpers import STATUS_KEYS, clanker, events, make_repo, status

from .helpers import event

TASK_KEYS = {"id", "title", "state", "slave", "attempts", "tokens", "cost_usd"}
SLAVE_KEYS = {"id", "state", "task", "heartbeat_age_s", "pane"}

WORK1 = {"input": 1000, "output": 200, "cache_read": 50, "cache_write": 5, "turns": 3, "cost_usd": 0.125}
WORK2 = {"input": 10, "output": 2, "turns": 1, "cost_usd": 0.0001}
JUDGE = {"input": 300, "output": 40, "turns": 1, "cost_usd": 0.03}


def build(evs: list[Event]) -> State:
    st = State()
    for n, ev in enumerate(evs, 1):
        check(st, ev)
        st = fold(st, [(ev, n)])
    return st


def e(type_: str, task: str | None, **data: Any) -> Event:
    return event(type_, str(data.get("slave", "cli")), task, data)


def usage(task: str, role: str, u: dict[str, Any]) -> Event:
    return e("attempt.finished", task, role=role, usage=u, session_id=f"s-{task}-{role}")


STATE = build(
    [
        e("task.added", "T1", title="Working one"),
        e("task.claimed", "T1", slave="c1"),
        usage("T1", "work", WORK1),
        e("task.failed", "T1", slave="c1", error="gate failed"),
        e("task.claimed", "T1", slave="c1"),
        usage("T1", "work", WORK2),
        e("task.added", "T2", title="Judged one"),
        e("task.claimed", "T2", slave="c3"),
        e("task.submitted", "T2", slave="c3", files=["a"]),
        e("task.judge_claimed", "T2", slave="c4"),
        usage("T2", "judge", JUDGE),
        e("task.added", "T3", title="Waiting for a judge"),
        e("task.claimed", "T3", slave="c2"),
        e("task.submitted", "T3", slave="c2"),
        e("task.added", "T4", title="Untouched ✓"),
        e("fleet.paused", None, slave="c5"),
    ]
)


def beat(paths: Paths, sid: str, pane: str = "", **info: Any) -> None:
    heart = Heart(paths, sid, 5.0, pane=pane)
    heart.update(**info)


def test_to_json_shape(paths: Paths) -> None:
    beat(paths, "c1", pane="%7", job="work", task="T1", phase="agent")
    cfg = Config(repo=paths.repo)
    data = to_json(STATE, slave_rows(cfg, paths, STATE), cfg)
    assert json.loads(json.dumps(data)) == data  # plain JSON all the way down
    assert set(data) == STATUS_KEYS
    sched = data["scheduler"]
    assert {k: sched[k] for k in ("phase", "cap", "slaves", "advice")} == {
        "phase": "execute", "cap": cfg.slaves, "slaves": cfg.slaves, "advice": []
    }  # fmt: skip
    assert set(sched["inputs"]) == {"ready", "backlog", "conflict_rate", "pace", "held"}
    assert [t["id"] for t in data["tasks"]] == ["T1", "T2", "T3", "T4"]
    assert sum(data["counts"].values()) == 4 and data["archived"] == 0
    for t in data["tasks"]:
        assert set(t) >= TASK_KEYS, t
        assert isinstance(t["tokens"], int) and isinstance(t["cost_usd"], float) and isinstance(t["attempts"], int)
    assert [s["id"] for s in data["slaves"]] == ["c1", "c2", "c3"]
    for s in data["slaves"]:
        assert set(s) == SLAVE_KEYS, s


def test_to_json_totals_work_and_judge_usage(paths: Paths) -> None:
    tasks = {t["id"]: t for t in to_json(STATE, [])["tasks"]}
    t1, t2, t3, t4 = tasks["T1"], tasks["T2"], tasks["T3"], tasks["T4"]
    assert t1["tokens"] == (1000 + 200 + 50 + 5) + (10 + 2)
    assert t1["cost_usd"] == pytest.approx(0.1251)
    assert t1["work"]["turns"] == 4 and t1["judge"]["input"] == 0
    assert t1["attempts"] == 2 and t1["state"] == "claimed" and t1["slave"] == "c1"
    assert t1["reason"] == "gate failed" and t1["sha"] is None
    assert t2["tokens"] == 340 and t2["cost_usd"] == pytest.approx(0.03)
    assert t2["state"] == "judging" and t2["slave"] == "c4" and t2["judge"]["output"] == 40
    assert t3["state"] == "needs_judge" and t3["slave"] == "c2"  # nobody holds it: the author is shown
    assert t4 == {**t4, "title": "Untouched ✓", "state": "ready", "slave": None, "tokens": 0, "cost_usd": 0.0}
    grand = sum(t["tokens"] for t in tasks.values())
    assert grand == sum(t.usage.tokens for t in STATE.tasks.values()) == 1267 + 340


def test_slave_states_from_heartbeats(paths: Paths) -> None:
    beat(paths, "c1", pane="%7")  # holds T1 (claimed): working
    beat(paths, "c2", pane="%8")  # holds nothing: idle
    Heart(paths, "c3", 5.0).beat(stopped=True)  # stopped
    beat(paths, "c4", pane="%9")  # holds T2 (judging), beyond the configured count: still listed
    beat(paths, "c5")  # paused
    beat(paths, "ctl")  # the controller is not a slave
    # c6: a heartbeat long gone from a pid that does not exist.
    atomic.write_json(paths.heartbeat("c6"), {"pid": 0, "wall": time.time() - 3600, "phase": "x", "pane": "%1"})
    cfg = Config(repo=paths.repo, slaves=3)
    rows = {r.id: r for r in slave_rows(cfg, paths, STATE)}
    assert list(rows) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert {sid: r.state for sid, r in rows.items()} == {
        "c1": "working",
        "c2": "idle",
        "c3": "stopped",
        "c4": "judging",
        "c5": "paused",
        "c6": "dead",
    }
    assert rows["c1"].task == "T1" and rows["c4"].task == "T2" and rows["c2"].task is None
    assert rows["c1"].pane == "%7" and rows["c5"].pane == ""
    age = rows["c1"].heartbeat_age_s
    assert age is not None and 0 <= age < 60
    c6_age = rows["c6"].heartbeat_age_s
    assert c6_age is not None and c6_age >= 3600
    slaves = {s["id"]: s for s in to_json(STATE, list(rows.values()))["slaves"]}
    assert slaves["c6"] == {"id": "c6", "state": "dead", "task": None, "heartbeat_age_s": c6_age, "pane": "%1"}


def test_slaves_without_a_heartbeat_are_absent(paths: Paths) -> None:
    rows = slave_rows(Config(repo=paths.repo, slaves=2), paths, State())
    assert [(r.id, r.state, r.task, r.heartbeat_age_s, r.pane) for r in rows] == [
        ("c1", "absent", None, None, ""),
        ("c2", "absent", None, None, ""),
    ]
    data = to_json(State(), rows)
    assert data.pop("budget")["budgets"] == []  # no budget set
    assert data.pop("merge_queue")["landed"] == 0
    assert data.pop("scheduler")["phase"] == "execute"
    assert data.pop("executors") == []  # no config given: nothing to say
    assert data == {
        "gate": {"preflight": None, "preflight_running": None, "setup_failed": {}},
        "tasks": [],
        "counts": {},
        "archived": 0,
        "slaves": [
            {"id": "c1", "state": "absent", "task": None, "heartbeat_age_s": None, "pane": ""},
            {"id": "c2", "state": "absent", "task": None, "heartbeat_age_s": None, "pane": ""},
        ],
    }


def test_render_shows_the_totals(paths: Paths) -> None:
    text = render(STATE, slave_rows(Config(repo=paths.repo), paths, STATE))
    assert text.splitlines()[0].startswith("tasks 4  claimed:1  judging:1  needs_judge:1  ready:1")
    assert "tokens 1.6k  cost $0.16 (work $0.13, judge $0.03)" in text
    assert "Untouched ✓" in text and "↳" not in text
    assert "none yet" in render(State(), [])


def test_status_json_through_the_cli(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "repo", config="slaves: 2\n")
    clanker(repo, "task", "add", "first task", "--id", "A1", check=True)
    data = status(repo)  # on a private tmux socket with no server: no panes, no slaves running
    assert set(data) == STATUS_KEYS
    (t,) = data["tasks"]
    assert set(t) >= TASK_KEYS and t["id"] == "A1" and t["title"] == "first task" and t["state"] == "ready"
    assert [s["id"] for s in data["slaves"]] == ["c1", "c2"]
    assert all(set(s) == SLAVE_KEYS and s["state"] == "absent" for s in data["slaves"])
    assert (data["scheduler"]["cap"], data["scheduler"]["inputs"]["ready"]) == (2, 1)
    (here,) = data["executors"]  # none configured: this machine, with a slot per slave
    assert (here["name"], here["kind"], here["slots"], here["used"], here["down"]) == ("local", "local", 2, 0, None)


def test_a_cap_lowers_concurrency_until_lifted_and_never_raises_it(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "repo", config="slaves: 3\n")
    capped = clanker(repo, "cap", "1", "--reason", "one at a time for now")
    assert capped.returncode == 0 and "capped at 1 of 3" in capped.stdout, capped.stderr
    sched = status(repo)["scheduler"]
    assert (sched["cap"], sched["work"], sched["why"]) == (1, 1, "cap 1 from user (one at a time for now)")
    assert sched["advice"] == [{"source": "user", "cap": 1, "reason": "one at a time for now"}]
    text = clanker(repo, "status").stdout
    assert "SCHEDULER execute phase · work ≤1 judge ≤1 cap 1 of 3 slaves — cap 1 from user" in text
    for bad, message in ((["cap", "3"], "would not lower slaves: 3"), (["cap", "0"], "a cap is 1 or more"),
                         (["cap", "lots"], "neither a number of agents nor off")):  # fmt: skip
        proc = clanker(repo, *bad)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert status(repo)["scheduler"]["cap"] == 1  # a refused cap changed nothing
    lifted = clanker(repo, "cap", "off")
    assert lifted.returncode == 0 and "cap lifted: up to 3" in lifted.stdout
    assert status(repo)["scheduler"]["cap"] == 3 and "no cap of yours" in clanker(repo, "cap", "off").stdout
    kinds = [e["type"] for e in events(repo)]
    assert kinds.count("scheduler.capped") == 2
