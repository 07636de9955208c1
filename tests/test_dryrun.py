"""`clanker run --dry-run`: what would start, on which slave and executor, with which branch,
worktree and ownership keys, and what is held back and why — nothing started, nothing written."""

from __future__ import annotations

import time
from pathlib import Path

from clanker.state import events as ev
from clanker.state.paths import Paths
from clanker.state.store import Store
from clanker.state.usage import Usage

from .helpers import clanker, make_repo

CONFIG = "slaves: 3\nagent:\n  kind: fake\ngate:\n  - 'true'\ngate_preflight: false\nhealth:\n  every_minutes: 0\n"


def tasks(repo: Path) -> None:
    for args in (
        ["Fix login", "--path", "src/login"],
        ["Login tests", "--path", "src/login/tests"],
        ["Docs", "--depends-on", "T1"],
        ["Library", "--path", "lib"],
        ["Web", "--path", "web"],
    ):
        clanker(repo, "task", "add", *args, check=True)


def test_a_dry_run_says_what_would_start_where_and_what_waits_and_why(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CONFIG)
    tasks(repo)
    log = repo / ".clanker" / "events.log"
    before = log.read_bytes()
    proc = clanker(repo, "run", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "clanker run --dry-run: nothing was started"
    start = lines[lines.index("WOULD START (3)") + 1 : lines.index("WOULD START (3)") + 4]
    assert start[0].split() == [
        "c1",
        "on",
        "local",
        "work",
        "T1",
        "clanker/T1",
        ".clanker/worktrees/c1",
        "keys:",
        "src",
    ]
    assert start[1].split()[:5] == ["c2", "on", "local", "work", "T4"] and start[1].endswith("keys: lib")
    assert start[2].split()[:5] == ["c3", "on", "local", "work", "T5"]
    held = lines[lines.index("HELD BACK (2)") + 1 :]
    assert held[0].split(None, 1) == ["T2", "src locked by T1"]  # T1 would hold src/ from then on
    assert held[1].split(None, 1) == ["T3", "waits on T1 (claimed)"]
    assert log.read_bytes() == before  # nothing was written
    assert not (repo / ".clanker" / "worktrees" / "c1").exists()  # nothing was started


def test_a_dry_run_with_a_spent_budget_starts_no_agent_and_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CONFIG + "budget:\n  daily_usd: 1.0\nexecutors:\n"
                     "  - {name: here, kind: local, slots: 2}\n")  # fmt: skip
    tasks(repo)
    store = Store(Paths(repo), "test")
    store.append(ev.PlanRan(actor="c1", role="planner", usage=Usage(input=10, cost_usd=1.25), ts=time.time()))
    out = clanker(repo, "run", "--dry-run").stdout
    assert "budget: daily_usd $1.25 of $1.00" in out.splitlines()[1]
    assert "WOULD START nothing" in out
    assert "  T1       held: budget: daily_usd $1.25 of $1.00" in out
    assert "then: execute phase, work ≤0" in out


def test_run_without_a_mode_is_a_one_line_error(tmp_path: Path) -> None:
    proc = clanker(make_repo(tmp_path / "r", CONFIG), "run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "clanker: clanker run needs --until-done (or --dry-run to see what it would start)"
