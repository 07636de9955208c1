"""`clanker land`: a person mainlines submitted tasks by hand."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import clanker, git, make_repo, retry_until, status

pytestmark = pytest.mark.e2e

CONFIG = """\
slaves: 1
heartbeat_secs: 0.5
agent:
  kind: fake
gate:
  - test ! -e GATE_FAIL
land:
  validate:
    - test -e one.txt
"""


def submitted(repo: Path, n: int) -> bool:
    return bool(sum(t["state"] == "needs_judge" for t in status(repo)["tasks"]) == n)


def work_until_submitted(repo: Path, n: int) -> None:
    """One slave alone: it can't judge its own work, so its tasks wait for a judge — or for you."""
    slave = subprocess.Popen(
        [sys.executable, "-m", "clanker", "--repo", str(repo), "slave", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        retry_until(lambda: submitted(repo, n), 60, interval=0.2)
    finally:
        slave.send_signal(signal.SIGTERM)
        slave.wait(30)


def test_land_mainlines_submitted_tasks_and_lists_conflicts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CONFIG, {"README.md": "# r\n", "shared.txt": "base\n"})
    clanker(repo, "task", "add", "One", "--prompt", "fake: write one.txt 1", check=True)
    clanker(repo, "task", "add", "Edit shared A", "--prompt", "fake: write shared.txt from A", check=True)
    clanker(repo, "task", "add", "Edit shared B", "--prompt", "fake: write shared.txt from B", check=True)
    work_until_submitted(repo, 3)

    refused = clanker(repo, "land", input_text="n\n")
    assert refused.returncode == 1 and "land 3 task(s) on main?" in refused.stdout
    assert len(git(repo, "rev-list", "main").splitlines()) == 1, "nothing lands without a yes"

    proc = clanker(repo, "land", "--yes")
    assert proc.returncode == 1, proc.stdout
    assert "T1: landed" in proc.stdout and "T2: landed" in proc.stdout
    assert "T3: CONFLICT in shared.txt" in proc.stdout and "clanker land T3" in proc.stdout
    assert "validate: passed" in proc.stdout
    assert "landed 2, skipped 0, conflicts 1, failed 0" in proc.stdout
    assert git(repo, "show", "main:shared.txt") == "from A"
    states = {t["id"]: t["state"] for t in status(repo)["tasks"]}
    assert states == {"T1": "done", "T2": "done", "T3": "needs_judge"}


def test_land_skips_empty_branches_and_refuses_unknown_tasks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CONFIG.replace("test -e one.txt", "'true'"))
    clanker(repo, "task", "add", "Nothing to do", "--prompt", "fake: say nothing", check=True)
    work_until_submitted(repo, 1)
    proc = clanker(repo, "land", "T1", "--yes")
    assert proc.returncode == 0 and "T1: skipped (no commits on clanker/T1)" in proc.stdout
    bad = clanker(repo, "land", "T9")
    assert bad.returncode == 2 and bad.stderr.strip() == "clanker: no task 'T9': `clanker task list` shows the ids"
