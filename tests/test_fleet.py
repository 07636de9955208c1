"""The tmux side: pane parsing, crash-loop backoff, and being a polite tenant on a shared server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clanker.config import load
from clanker.fleet import panes
from clanker.fleet.controller import Controller
from clanker.fleet.panes import Respawner, is_slave_id, session_name
from clanker.state.heartbeat import Beat
from clanker.system.tmux import FIELDS, SEP, Pane, Ran, Tmux, parse_panes

from .helpers import clanker, events, make_repo


def test_parse_panes_keeps_identity_fields() -> None:
    values = ["%3", "1", "/r", "c2", "1", "42", "my title", "sess", "@1", "/dev/pts/3", "python", "80", "24"]
    assert len(values) == len(FIELDS)
    [pane] = parse_panes([SEP.join(values), "garbage line"])
    assert (pane.id, pane.dead, pane.repo, pane.clanker_id, pane.created, pane.pid) == (
        "%3",
        True,
        "/r",
        "c2",
        True,
        42,
    )
    assert (pane.title, pane.session, pane.width, pane.height) == ("my title", "sess", 80, 24)


@pytest.mark.parametrize(("cid", "slave"), [("c1", True), ("c12", True), ("ctl", False), ("c", False), ("x1", False)])
def test_is_slave_id(cid: str, slave: bool) -> None:
    assert is_slave_id(cid) is slave


def test_session_names_differ_for_repos_with_the_same_name(tmp_path: Path) -> None:
    a = make_repo(tmp_path / "a" / "app")
    b = make_repo(tmp_path / "b" / "app")
    na, nb = session_name(load(a)), session_name(load(b))
    assert na.startswith("clanker-app-") and nb.startswith("clanker-app-") and na != nb


def test_respawner_backs_off_a_crash_loop_and_forgives_a_long_run() -> None:
    r = Respawner()
    delays = [r.record("c1", t) for t in (0.0, 1.0, 3.0, 7.0, 15.0)]
    assert delays == [0.0, 2.0, 4.0, 8.0, 16.0]
    assert not r.due("c1", 20.0) and r.due("c1", 31.0)
    assert r.record("c1", 200.0) == 0.0, "a slave that ran for minutes starts a fresh count"
    assert max(r.record("c2", float(t)) for t in range(0, 20)) == 60.0, "the delay is capped"


def test_spawning_a_fleet_fills_a_window_in_one_tmux_call_and_opens_another_when_it_is_full(
    tmp_path: Path, tm: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 9\nagent:\n  kind: fake\n")
    cfg = load(repo)
    monkeypatch.setattr(panes, "slave_command", lambda _cfg, n: ["sleep", "600"])
    calls: list[str] = []
    run = tm.server.cmd

    def counted(*args: str, env: dict[str, str] | None = None) -> Ran:
        calls.append(args[0])
        return run(*args, env=env)

    monkeypatch.setattr(tm.server, "cmd", counted)

    # Nothing runs on the server yet: no session to ask about, so a new one at once.
    spawned = panes.spawn_slaves(tm, cfg, [1], panes.view(tm, repo), "first")
    assert [sid for sid, _ in spawned] == ["c1"]
    assert calls == ["list-panes", "new-session", "set-option"]
    tm.kill_session("first")

    tm.run("new-session", "-d", "-s", "users-own", "sleep 600")
    before = panes.view(tm, repo)
    calls.clear()
    spawned = panes.spawn_slaves(tm, cfg, [1, 2, 3, 4, 5], before, "roomy")
    assert [sid for sid, _ in spawned] == ["c1", "c2", "c3", "c4", "c5"]
    # Is there a session, make it; one call for the four splits, one to mark all.
    assert calls == ["has-session", "new-session", "set-option", "set-option"]
    fleet = panes.view(tm, repo).panes
    assert sorted(fleet) == ["c1", "c2", "c3", "c4", "c5"] and all(p.created for p in fleet.values())
    assert {fleet[sid].id for sid, _ in spawned} == {pane for _, pane in spawned}

    # A window too small for another pane: the splits that fit are made, the rest go to a new one.
    tm.run("new-session", "-d", "-s", "tiny", "-x", "20", "-y", "6", "sleep 600")
    [tiny] = [p.id for p in tm.panes() if p.session == "tiny"]
    tm.mark(tiny, "c6", str(repo), created=True)
    small = panes.FleetView({"c6": panes.view(tm, repo).panes["c6"]}, tm.panes())
    spawned = panes.spawn_slaves(tm, cfg, [7, 8, 9], small, "tiny")
    assert [sid for sid, _ in spawned] == ["c7", "c8", "c9"]
    fleet = panes.view(tm, repo).panes
    assert sorted(fleet) == [f"c{n}" for n in range(1, 10)] and all(p.created for p in fleet.values())
    windows = tm.run("list-panes", "-s", "-t", "=tiny", "-F", "#{window_id}")
    assert len(windows) == 4 and len(set(windows)) > 1


def test_a_value_ending_in_a_semicolon_reaches_the_pane_whole(tmp_path: Path, tm: Tmux) -> None:
    tm.run("new-session", "-d", "-s", "s", "sleep 600")
    [first] = [p.id for p in tm.panes()]
    out = tmp_path / "out"
    # tmux takes an argument ending in ";" for a command separator, unless it is escaped.
    [made] = tm.split_many(first, str(tmp_path), [(["sh", "-c", f'echo "[$X]" > {out};'], {"X": "a;b;"})])
    assert made.startswith("%")
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.read_text() == "[a;b;]\n"


def test_kill_panes_kills_them_in_one_call_and_each_one_when_one_is_gone(tm: Tmux) -> None:
    tm.run("new-session", "-d", "-s", "users-own", "sleep 600")
    [users] = [p.id for p in tm.panes()]
    mine = [tm.split(users, "/", ["sleep", "600"], {}) for _ in range(4)]
    tm.kill_panes(mine[:2])
    assert {p.id for p in tm.panes()} == {users, *mine[2:]}
    # %999 does not exist: tmux stops a sequence at its first failure, so the others go one by one.
    tm.kill_panes(["%999", *mine[2:]])
    assert [p.id for p in tm.panes()] == [users]


@pytest.mark.e2e
def test_nothing_global_is_touched_on_the_tmux_server(tmp_path: Path, tm: Tmux) -> None:
    tm.run("new-session", "-d", "-s", "users-own", "sh")
    snapshot = ("show-options -g", "show-options -gw", "show-options -gs", "show-hooks -g", "list-keys")
    before = [tm.run(*cmd.split()) for cmd in snapshot]
    users_pane = tm.panes()[0]
    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\n")
    clanker(repo, "task", "add", "x", "--prompt", "fake: write a.txt 1", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90).returncode == 0
    assert [tm.run(*cmd.split()) for cmd in snapshot] == before
    # The user's own session and pane are untouched and carry no clanker options.
    [still] = [p for p in tm.panes() if p.id == users_pane.id]
    assert not still.dead and still.clanker_id == "" and still.repo == ""
    assert tm.run("show-options", "-w", "-t", users_pane.id, "remain-on-exit") in ([], ["remain-on-exit off"])


@pytest.mark.e2e
def test_no_more_slaves_start_at_once_than_there_are_cores(
    tmp_path: Path, tm: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})  # the controller's machine: one core
    repo = make_repo(tmp_path / "r", "slaves: 3\nheartbeat_secs: 5\nagent:\n  kind: fake\n")
    for n in (1, 2, 3):
        clanker(repo, "task", "add", f"t{n}", "--prompt", f"fake: write f{n}.txt {n}", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90).returncode == 0
    starts = [(e["type"], e["slave"]) for e in events(repo) if e["type"] in ("slave.spawned", "slave.started")]
    # Each slave is spawned once the one before it beats: one import at a time on one core.
    assert starts == [(kind, f"c{n}") for n in (1, 2, 3) for kind in ("slave.spawned", "slave.started")]


@pytest.mark.e2e
def test_logs_follow_prints_new_lines_as_they_come(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\n")
    prompt = "fake: say first\nfake: sleep 2\nfake: say second\nfake: write a.txt 1"
    clanker(repo, "task", "add", "talky", "--prompt", prompt, check=True)
    follower = subprocess.Popen(
        [sys.executable, "-u", "-m", "clanker", "--repo", str(repo), "logs", "T1", "--follow"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90).returncode == 0
    follower.send_signal(signal.SIGINT)
    out, _ = follower.communicate(timeout=20)
    assert follower.returncode == 130
    assert out.index("· first") < out.index("· second") < out.index("✓ changed a.txt")


def test_run_until_done_with_no_tasks_spawns_nothing(tmp_path: Path, tm: Tmux) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    proc = clanker(repo, "run", "--until-done", timeout=60)
    assert proc.returncode == 0 and "no tasks" in proc.stdout
    assert tm.panes() == []


def test_a_spawned_slave_holds_the_next_back_until_it_beats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})  # one core: one slave starts at a time
    ctl = Controller(load(make_repo(tmp_path / "r", "slaves: 3\nagent:\n  kind: fake\n")))
    spawned_at = time.time()
    ctl._starting = {"c1": (ctl.clock.monotonic(), spawned_at)}

    def fleet(pid: int, dead: bool = False) -> panes.FleetView:
        pane = Pane("%1", dead, str(ctl.cfg.repo), "c1", True, pid, "", "s", "@1", "", "python", 80, 24)
        return panes.FleetView({"c1": pane}, [pane])

    def beat(pid: int, wall: float) -> dict[str, Beat]:
        return {"c1": Beat("c1", pid, wall, None, None, "idle", "%1", None, False)}

    me = os.getpid()  # a live process standing in for the slave
    assert ctl._room_to_start(fleet(me), {}) == 0, "not beating yet"
    assert ctl._room_to_start(fleet(me), beat(me + 10**6, spawned_at - 60)) == 0, "an earlier slave's old beat"
    assert ctl._room_to_start(fleet(4242), beat(me, spawned_at + 0.1)) == 1, "a shell between tmux and it"
    ctl._starting = {"c1": (ctl.clock.monotonic(), spawned_at)}
    assert ctl._room_to_start(fleet(me), beat(me, spawned_at - 60)) == 1, "its pane's own process beats"
    ctl._starting = {"c1": (ctl.clock.monotonic(), spawned_at)}
    assert ctl._room_to_start(fleet(me, dead=True), {}) == 1, "a pane that died holds nothing back"
    ctl._starting = {"c1": (ctl.clock.monotonic() - 6, spawned_at)}
    assert ctl._room_to_start(fleet(me), {}) == 1, "nor one that is not up after START_GRACE_SECS"
