"""`clanker status` as flocks' dashboard: running tasks longest first with stall warnings, done with
their average time, failed and blocked with their reason and the end of their log, slave
utilisation, tokens and cost with work and judge apart — and `--json` unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from clanker.commands.status import render
from clanker.config import AgentConfig, Config
from clanker.fleet.rows import SlaveRow, average_done, running, slave_rows
from clanker.state import atomic
from clanker.state.events import Event
from clanker.state.fold import fold
from clanker.state.model import State
from clanker.state.paths import Paths
from clanker.state.store import Store

from .helpers import STATUS_KEYS, clanker, event, make_repo

NOW = 1_700_100_000.0
WORK = {"input": 1000, "output": 200, "cost_usd": 0.30}
JUDGE = {"input": 400, "output": 20, "cost_usd": 0.10}


def e(type_: str, task: str | None, at: float, **data: Any) -> Event:
    return event(type_, str(data.get("slave", "cli")), task, data, ts=NOW - at)


def build(*evs: Event) -> State:
    return fold(State(), [(ev, n) for n, ev in enumerate(evs, 1)])


STATE = build(
    e("task.added", "T1", 4000, title="Long runner"),
    e("task.claimed", "T1", 3600, slave="c1"),
    e("attempt.finished", "T1", 100, role="work", usage=WORK),
    e("task.added", "T2", 700, title="Being judged"),
    e("task.claimed", "T2", 650, slave="c2"),
    e("task.submitted", "T2", 600, slave="c2"),
    e("task.judge_claimed", "T2", 120, slave="c3"),
    e("attempt.finished", "T2", 60, role="judge", usage=JUDGE),
    e("task.added", "T3", 900, title="Landed quickly"),
    e("task.claimed", "T3", 880, slave="c2"),
    e("task.submitted", "T3", 870, slave="c2"),
    e("task.judge_claimed", "T3", 860, slave="c3"),
    e("task.mainlined", "T3", 840, slave="c3", sha="abc1234567890"),  # claimed 880 s ago, landed 840 s ago
    e("task.added", "T4", 1000, title="Landed slowly"),
    e("task.claimed", "T4", 990, slave="c1"),
    e("task.submitted", "T4", 900, slave="c1"),
    e("task.judge_claimed", "T4", 850, slave="c3"),
    e("task.mainlined", "T4", 820, slave="c3", sha="def"),  # 180 s
    e("task.added", "T5", 500, title="Blocked one"),
    e("task.blocked", "T5", 400, reason="auth: run `claude /login`"),
    e("task.added", "T6", 300, title="Failed once"),
    e("task.claimed", "T6", 290, slave="c2"),
    e("task.failed", "T6", 280, slave="c2", error="gate failed: `sh gate.sh`: boom"),
    e("task.added", "T7", 200, title="Queued ✓", depends_on=["T5"]),
)


def row(sid: str, state: str, task: str | None, age: float | None) -> SlaveRow:
    return SlaveRow(sid, state, task, age, f"%{sid[1:]}", "agent" if task else "idle")


ROWS = [row("c1", "working", "T1", 30.0), row("c2", "idle", None, 1.0), row("c3", "judging", "T2", 1.0)]


def test_average_done_is_first_claim_to_landed() -> None:
    assert average_done(STATE) == pytest.approx(105.0)  # T3: 880 → 840 s ago, T4: 990 → 820 s ago
    assert average_done(State()) is None


def test_running_longest_first_with_stall_warnings() -> None:
    run = running(STATE, ROWS, NOW, None, Config(repo=Path("/r"), heartbeat_secs=5.0))
    assert [(r.task.id, int(r.elapsed)) for r in run] == [("T1", 3600), ("T2", 120)]
    assert run[0].warning == "no heartbeat from c1 for 30s"
    assert run[1].warning == ""
    gone = running(STATE, [row("c3", "judging", "T2", 1.0)], NOW, None, None)
    assert gone[0].warning == "c1 is gone"
    fresh = running(STATE, [row("c1", "working", "T1", 1.0), *ROWS[1:]], NOW, None, None)
    assert fresh[0].warning == "running 34× longer than the average task"  # 3600 s against 105 s


def test_a_silent_agent_is_a_stall(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    log = paths.logs / "T1" / "1.txt"
    log.parent.mkdir(parents=True)
    log.write_text("▶ fake agent started\n")
    os.utime(log, (NOW - 900, NOW - 900))
    cfg = Config(repo=tmp_path, heartbeat_secs=60.0, agent=AgentConfig(stall_secs=600.0))
    run = running(STATE, ROWS, NOW, paths, cfg)
    assert run[0].warning == "no agent output for 15m"


def test_dashboard_sections(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    (paths.logs / "T5").mkdir()
    (paths.logs / "T5" / "1.txt").write_text("".join(f"log line {i}\n" for i in range(1, 9)))
    cfg = Config(repo=tmp_path, slaves=3, heartbeat_secs=5.0)
    text = render(STATE, ROWS, now=NOW, cfg=cfg, paths=paths)
    lines = text.splitlines()
    assert lines[0] == "tasks 7  claimed:1  judging:1  ready:2  blocked:1  done:2"
    assert lines[1] == "tokens 1.6k  cost $0.40 (work $0.30, judge $0.10)"
    assert lines[2] == "  work 1.2k tokens in 0 turns, judge 420 tokens in 0 turns"
    run = lines.index("RUNNING (2, longest first)")
    assert lines[run + 1].startswith("  T1         claimed     c1       1h") and "Long runner" in lines[run + 1]
    assert lines[run + 2].strip() == "⚠ stalled? no heartbeat from c1 for 30s"
    assert lines[run + 3].startswith("  T2         judging     c3       2m")
    failed = lines.index("FAILED / BLOCKED (2)")
    assert lines[failed + 1].startswith("  T5         blocked")
    assert lines[failed + 2].strip() == "why: auth: run `claude /login`"
    assert [ln.strip() for ln in lines[failed + 3 : failed + 8]] == [f"│ log line {i}" for i in range(4, 9)]
    assert lines[failed + 8].startswith("  T6         ready") and "why: gate failed" in lines[failed + 9]
    done = lines.index("DONE (2, average 1m from first claim to landed)")
    assert lines[done + 1].startswith("  T4         done        c1       3m") and lines[done + 1].endswith("  def")
    assert lines[done + 2].startswith("  T3         done        c2       1m") and lines[done + 2].endswith("abc1234567")
    queue = lines.index("QUEUE (1)")
    assert "Queued ✓  (waits on T5)" in lines[queue + 1]
    assert "SLAVES 2/3 busy (66 %)  ██████░░░░  3 up, 0 dead, 0 paused" in lines
    assert "  c1     working   T1          agent             30s  %1" in lines


def test_status_through_the_cli_shows_logs_of_blocked_tasks(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\n")
    clanker(repo, "task", "add", "Stuck", "--id", "S1", check=True)
    store = Store(Paths(repo), "test")
    store.append(event("task.blocked", "test", "S1", {"reason": "out_of_budget: context window exhausted"}))
    log = Paths(repo).logs / "S1" / "1.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("reading the repo\ncontext window exhausted\n")
    atomic.write_json(Paths(repo).heartbeat("c1"), {"pid": os.getpid(), "wall": time.time(), "phase": "idle"})
    out = clanker(repo, "status", check=True).stdout
    assert "FAILED / BLOCKED (1)" in out and "why: out_of_budget: context window exhausted" in out
    assert "│ context window exhausted" in out
    assert "SLAVES 0/2 busy (0 %)" in out
    data = json.loads(clanker(repo, "status", "--json", check=True).stdout)
    assert set(data) == STATUS_KEYS
    assert set(data["tasks"][0]) == {"id", "title", "state", "slave", "attempts", "tokens", "cost_usd",
                                     "peak_rss_mb", "work", "judge", "reason", "sha"}  # fmt: skip
    assert [set(s) for s in data["slaves"]] == [{"id", "state", "task", "heartbeat_age_s", "pane"}] * 2


def test_slave_rows_still_behave_as_a_list(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    rows = slave_rows(Config(repo=tmp_path, slaves=2), paths, State())
    assert [r.id for r in rows] == ["c1", "c2"] and rows == [rows[0], rows[1]]
    assert "SLAVES 0/2 busy" in render(State(), rows) and "none yet" in render(State(), [])
