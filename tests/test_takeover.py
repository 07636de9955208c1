"""Taking over an agent: in a private tmux server, keys sent to a slave's pane reach an
interactive program started in its worktree; its edit lands after the person leaves, and the
fleet kept working meanwhile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .helpers import clanker, clanker_bg, events, git, make_repo, retry_until, status

pytestmark = pytest.mark.e2e

CONFIG = "slaves: 3\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - 'true'\nplanner:\n  agent: none\n"


def pane_of(repo: Path, sid: str) -> str:
    return str(next(s["pane"] for s in status(repo)["slaves"] if s["id"] == sid))


def screen(socket: str, pane: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t", pane, "-S", "-200"],
                          capture_output=True, text=True, check=False).stdout  # fmt: skip


def test_a_person_takes_over_a_slave_and_their_edit_lands(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", CONFIG)
    clanker(repo, "task", "add", "Slow", "--prompt", "fake: sleep 60\nfake: write slow.txt agent", "--path", "a",
            check=True)  # fmt: skip
    run = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    try:
        worker = str(retry_until(lambda: next((t["slave"] for t in status(repo)["tasks"] if t["slave"]), None), 30))
        retry_until(lambda: any(e["type"] == "task.claimed" for e in events(repo)), 30)
        clanker(repo, "task", "add", "Quick", "--prompt", "fake: write quick.txt 2", "--path", "b", check=True)
        asked = clanker(repo, "takeover", worker)
        assert asked.returncode == 0 and "opens the session in its pane" in asked.stdout, asked.stderr
        assert "is being taken over already" in clanker(repo, "takeover", worker).stdout
        pane = pane_of(repo, worker)
        retry_until(lambda: "is yours" in screen(socket_name, pane), 30)
        # While the person has the pane, the other slaves go on: Quick is built, judged and landed.
        retry_until(lambda: any(t["title"] == "Quick" and t["state"] == "done" for t in status(repo)["tasks"]), 60)
        subprocess.run(["tmux", "-L", socket_name, "send-keys", "-t", pane,
                        "echo 'by a person' > person.txt; exit", "Enter"], check=True)  # fmt: skip
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out
    log = events(repo)
    tasks = {t["title"]: t for t in status(repo)["tasks"]}
    assert tasks["Slow"]["state"] == "done" and tasks["Quick"]["state"] == "done"
    assert git(repo, "show", "main:person.txt") == "by a person"  # the person's edit landed
    assert "slow.txt" not in git(repo, "ls-tree", "--name-only", "main")  # the agent was stopped before it wrote
    (ended,) = [e for e in log if e["type"] == "slave.takeover_ended"]
    assert ended["changed"] and ended["slave"] == worker
    quick = next(n for n, e in enumerate(log) if e["type"] == "task.mainlined" and e["task"] == tasks["Quick"]["id"])
    assert quick < log.index(ended)  # the fleet kept working while a person had the pane
    notes = list((repo / ".clanker" / "history" / tasks["Slow"]["id"]).glob("takeover-*.md"))
    assert notes and "a person took over the session" in notes[0].read_text()


def test_a_takeover_needs_a_task_in_hand_and_can_be_given_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", CONFIG)
    idle = clanker(repo, "takeover", "c1")
    assert idle.returncode == 2 and "c1 is not working on a task now" in idle.stderr
    assert clanker(repo, "takeover", "--release", "c1").stdout.strip() == "no takeover of c1 to release"
