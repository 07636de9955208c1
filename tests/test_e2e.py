"""End to end: real tmux (private server), real git repos, real clanker processes, the fake agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clanker.fleet.panes import view
from clanker.state import heartbeat
from clanker.state.paths import Paths
from clanker.system.tmux import Tmux

from .helpers import (
    clanker,
    clanker_bg,
    clanker_process,
    events,
    gate_passes_on_every_commit,
    git,
    make_repo,
    retry_until,
    status,
)

pytestmark = pytest.mark.e2e

GATE_SH = 'if [ -e GATE_FAIL ]; then echo "GATE_FAIL marker present"; exit 1; fi\necho gate ok\n'
CONFIG = """\
slaves: {slaves}
heartbeat_secs: 0.5
agent:
  kind: fake
gate:
  - sh gate.sh
"""


def fleet_repo(tmp_path: Path, name: str = "repo", slaves: int = 3) -> Path:
    return make_repo(
        tmp_path / name,
        CONFIG.format(slaves=slaves),
        {"README.md": "# test\n", "gate.sh": GATE_SH},
    )


def add(repo: Path, title: str, prompt: str, *extra: str) -> None:
    clanker(repo, "task", "add", title, "--prompt", prompt, *extra, check=True)


def person_session(tm: Tmux, socket_name: str, name: str, repo: Path, *command: str) -> str:
    """A session a person made on the same server, running `command` in `repo`; returns its pane."""
    env = {"CLANKER_TMUX_SOCKET": socket_name, "HOME": os.environ["HOME"],
           "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"]}  # fmt: skip
    env_args = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
    return tm.run("new-session", "-d", "-P", "-F", "#{pane_id}", "-s", name, "-x", "160", "-y", "50",
                  "-c", str(repo), *env_args, *command)[0]  # fmt: skip


def landed_count(repo: Path, task: str) -> int:
    return len(git(repo, "log", "main", "--format=%H", f"--grep=^Clanker-Task: {task}$").splitlines())


def test_three_slaves_six_tasks_all_land_and_main_stays_green(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path)
    for i in range(1, 7):
        extra = "\nfake: fail-gate-once" if i == 3 else ""
        judge = "\nfake-judge: rework-once please add a second line" if i == 4 else ""
        prompt = f"fake: sleep 0.3\nfake: write area{i}/f.txt task {i}{extra}{judge}"
        prompt += f"\nfake: on-attempt 2 append area{i}/f.txt second"
        add(repo, f"Task number {i}", prompt, "--path", f"area{i}")
    # The person has main checked out with an edit of their own: it must survive every landing.
    (repo / "README.md").write_text("# test\nmy own uncommitted edit\n")
    (repo / "notes.txt").write_text("untracked notes\n")

    # The real binary, end to end (most tests run commands in-process).
    proc = clanker_process(repo, "run", "--until-done", "--timeout", "150", timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = status(repo)
    assert [t["state"] for t in data["tasks"]] == ["done"] * 6
    assert all(t["tokens"] > 0 and t["cost_usd"] > 0 for t in data["tasks"])
    # Linear history: the initial commit plus one squashed commit per task, no merges.
    assert git(repo, "rev-list", "--merges", "main") == ""
    assert len(git(repo, "rev-list", "main").splitlines()) == 7
    assert all(landed_count(repo, f"T{i}") == 1 for i in range(1, 7))
    assert gate_passes_on_every_commit(repo, ["sh gate.sh"]) == []
    # The gate failure and the rework verdict really happened on the way.
    evs = events(repo)
    assert any(e["type"] == "task.failed" and e["task"] == "T3" and "gate failed" in e["error"] for e in evs)
    assert any(e["type"] == "task.verdict" and e["task"] == "T4" and e["verdict"] == "rework" for e in evs)
    # The person's checkout: their edits kept, the landed files present, nothing else changed.
    assert (repo / "README.md").read_text() == "# test\nmy own uncommitted edit\n"
    assert (repo / "notes.txt").read_text() == "untracked notes\n"
    assert (repo / "area4" / "f.txt").read_text() == "task 4\nsecond\n"
    assert sorted(line.strip() for line in git(repo, "status", "--porcelain").splitlines()) == [
        "?? notes.txt",
        "M README.md",
    ]
    # Every judge was another slave than the task's author.
    author = {e["task"]: e["slave"] for e in evs if e["type"] == "task.claimed"}
    assert all(e["slave"] != author[e["task"]] for e in evs if e["type"] == "task.judge_claimed")
    # run --until-done stopped the panes it spawned.
    assert view(tm, repo).panes == {}


def test_slave_killed_mid_task_is_respawned_and_task_lands_once(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path, slaves=2)
    add(
        repo,
        "Slow task",
        "fake: write slow/a.txt started\nfake: sleep 4\nfake: write slow/b.txt finished",
        "--path",
        "slow",
    )
    add(repo, "Quick task", "fake: write quick/a.txt quick", "--path", "quick")
    runner = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    paths = Paths(repo)

    def victim() -> heartbeat.Beat | None:
        for beat in heartbeat.read_all(paths).values():
            if beat.task == "T1" and beat.job == "work" and beat.agent_pgid:
                return beat
        return None

    beat = retry_until(victim, 60)
    assert beat is not None
    os.kill(beat.pid, signal.SIGKILL)
    out, _ = runner.communicate(timeout=150)
    assert runner.returncode == 0, out
    assert landed_count(repo, "T1") == 1
    assert (repo / "slow" / "b.txt").read_text() == "finished\n"
    evs = events(repo)
    starts = [e for e in evs if e["type"] == "slave.started" and e["slave"] == beat.id]
    assert len(starts) == 2, "the killed slave was started again in its pane"
    assert any(e["type"] == "risk" and e.get("kind") == "crash" and e["slave"] == beat.id for e in evs)
    assert any(e["type"] == "task.released" and e["task"] == "T1" for e in evs)
    # The orphaned agent of the killed slave was stopped, not left writing into the worktree.
    assert not heartbeat.pid_alive(int(beat.agent_pgid or 0))


def test_hand_made_slave_pane_is_adopted(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet_repo(tmp_path, slaves=2)
    add(repo, "One", "fake: write one/a.txt 1", "--path", "one")
    add(repo, "Two", "fake: write two/a.txt 2", "--path", "two")
    pane = person_session(tm, socket_name, "human", repo, "sh")
    # A person types the command into their own pane.
    tm.send_keys(pane, f"{sys.executable} -m clanker slave 2", "Enter")
    retry_until(lambda: view(tm, repo).panes.get("c2"), 30)

    proc = clanker(repo, "run", "--until-done", "--timeout", "120", timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evs = events(repo)
    assert not any(e["type"] == "slave.spawned" and e["slave"] == "c2" for e in evs)
    assert any(e["type"] == "slave.spawned" and e["slave"] == "c1" for e in evs)
    # The person's pane is still theirs: alive, running their slave, never marked as clanker's.
    c2 = view(tm, repo).panes["c2"]
    assert c2.id == pane and not c2.created and not c2.dead
    assert {e["slave"] for e in evs if e["type"] in ("task.claimed", "task.judge_claimed")} >= {"c2"}
    clanker(repo, "stop", check=True)
    retry_until(lambda: "slave c2 stopped" in tm.capture(pane), 20)
    assert pane in {p.id for p in tm.panes()}, "clanker never kills a pane it did not create"


def test_two_repos_on_one_server_never_see_each_other(tmp_path: Path, tm: Tmux) -> None:
    a = fleet_repo(tmp_path, "alpha", slaves=2)
    b = fleet_repo(tmp_path, "beta", slaves=2)
    for repo in (a, b):
        add(repo, "First", "fake: write x/a.txt 1", "--path", "x")
        add(repo, "Second", "fake: write y/a.txt 2", "--path", "y")
    ra = clanker_bg(a, "run", "--until-done", "--keep", "--timeout", "120")
    rb = clanker_bg(b, "run", "--until-done", "--keep", "--timeout", "120")
    assert ra.wait(150) == 0 and rb.wait(150) == 0
    pa, pb = view(tm, a).panes, view(tm, b).panes
    assert set(pa) == set(pb) == {"c1", "c2"}
    assert not {p.id for p in pa.values()} & {p.id for p in pb.values()}
    assert {s["pane"] for s in status(a)["slaves"]} == {p.id for p in pa.values()}
    # Stopping one repo's fleet leaves the other's panes alone.
    clanker(a, "stop", check=True)
    assert view(tm, a).panes == {}
    assert {p.id for p in view(tm, b).panes.values() if not p.dead} == {p.id for p in pb.values()}
    clanker(b, "stop", check=True)
    assert view(tm, b).panes == {}


def test_agent_osc_title_does_not_change_the_pane_title(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path, slaves=2)
    add(repo, "Retitler", "fake: title pwned-by-agent\nfake: write t/a.txt x\nfake: sleep 1", "--path", "t")
    proc = clanker(repo, "run", "--until-done", "--keep", "--timeout", "120", timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    panes = view(tm, repo).panes
    assert {p.title for p in panes.values()} == {"clanker:c1", "clanker:c2"}
    author = next(e["slave"] for e in events(repo) if e["type"] == "task.claimed")
    screen = tm.capture(panes[author].id, escapes=True)
    assert "retitled" in screen and "\x1b]2;" not in screen and "pwned" not in screen
    # Even an escape written straight to the pane's terminal is undone by the pane-scoped hook.
    with open(panes[author].tty, "w") as tty:
        tty.write("\x1b]2;pwned-directly\x07")
    retry_until(lambda: view(tm, repo).panes[author].title == f"clanker:{author}", 10)
    clanker(repo, "stop", check=True)


def test_sigterm_checkpoints_work_and_releases_the_claim(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet_repo(tmp_path, slaves=1)
    add(repo, "Long", "fake: write long/a.txt partial\nfake: sleep 60", "--path", "long")
    slave = subprocess.Popen(
        [sys.executable, "-m", "clanker", "--repo", str(repo), "slave", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    retry_until(lambda: (b := heartbeat.read(Paths(repo), "c1")) and b.agent_pgid, 30)
    retry_until(lambda: (repo / ".clanker/worktrees/c1/long/a.txt").exists(), 30)
    slave.send_signal(signal.SIGTERM)
    out, _ = slave.communicate(timeout=30)
    assert slave.returncode == 0, out
    evs = events(repo)
    assert any(e["type"] == "task.released" and e["task"] == "T1" for e in evs)
    assert json.loads(clanker(repo, "task", "list", "--json").stdout)[0]["state"] == "ready"
    # The partial work is committed on the task branch, never lost.
    assert git(repo, "show", "clanker/T1:long/a.txt") == "partial"
    beat = heartbeat.read(Paths(repo), "c1")
    assert beat is not None and beat.stopped


def test_a_run_stopped_by_a_signal_says_so_and_exits_7_not_done(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path, slaves=2)
    add(repo, "Long", "fake: write long/a.txt partial\nfake: sleep 60", "--path", "long")
    run = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    retry_until(lambda: any(e["type"] == "task.claimed" for e in events(repo)) or None, 60)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 7, out  # a script must not read "every task is done" into it
    assert "0/1 tasks done" in out and "stopped by a signal before the end" in out
    assert json.loads(clanker(repo, "task", "list", "--json").stdout)[0]["state"] == "ready"
    assert view(tm, repo).panes == {}, "its fleet is stopped with it"


def test_demo_headless_on_a_fresh_machine(tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh machine: no git identity configured anywhere.
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    where = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "clanker", "demo", "--headless", "--dir", str(where)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"demo repository: {where.resolve()}" in proc.stdout
    assert "7/7 tasks done" in proc.stdout
    assert len(git(where, "rev-list", "main").splitlines()) == 8
    assert gate_passes_on_every_commit(where.resolve(), ["sh gate.sh"]) == []


def test_controller_in_a_pane_spawns_slaves_and_shows_status(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet_repo(tmp_path, slaves=2)
    add(repo, "Shown", "fake: write s/a.txt shown", "--path", "s")
    ctl = person_session(tm, socket_name, "work", repo, sys.executable, "-m", "clanker", "--repo", str(repo))
    retry_until(lambda: "done:1" in " ".join(tm.capture(ctl).split()) or None, 60)
    panes = view(tm, repo).panes
    assert set(panes) == {"ctl", "c1", "c2"}
    assert {panes["c1"].session, panes["c2"].session} == {"work"}
    assert panes["ctl"].id == ctl
    clanker(repo, "stop", check=True)
    assert set(view(tm, repo).panes) <= {"ctl"}
