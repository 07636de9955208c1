"""A fleet that heals itself: signals, a dead tmux server, hung slaves, fences. Real processes,
real tmux (a private server), real git, the fake agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clanker.config import load
from clanker.fleet.slave import PaneWriter
from clanker.jobs import mainline
from clanker.jobs.context import JobContext, LostClaim
from clanker.state import heartbeat
from clanker.state.heartbeat import Heart
from clanker.state.model import TaskState
from clanker.state.paths import Paths, prepare
from clanker.state.store import Store
from clanker.system import git as gitw
from clanker.system import proc as procs
from clanker.system.signals import SignalRelay
from clanker.system.tmux import Tmux

from .helpers import clanker, clanker_bg, event, events, gate_passes_on_every_commit, git, make_repo, retry_until

GATE_SH = 'if [ -e GATE_FAIL ]; then echo "GATE_FAIL marker present"; exit 1; fi\necho gate ok\n'


def fleet_repo(tmp_path: Path, slaves: int, extra: str = "") -> Path:
    config = f"slaves: {slaves}\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - sh gate.sh\n{extra}"
    return make_repo(tmp_path / "repo", config, {"README.md": "# test\n", "gate.sh": GATE_SH})


def add(repo: Path, title: str, prompt: str, *extra: str) -> None:
    clanker(repo, "task", "add", title, "--prompt", prompt, *extra, check=True)


def landed_count(repo: Path, task: str) -> int:
    return len(git(repo, "log", "main", "--format=%H", f"--grep=^Clanker-Task: {task}$").splitlines())


def working(paths: Paths, task: str) -> heartbeat.Beat | None:
    """The heartbeat of the slave running `task`'s worker agent, once it runs."""
    for beat in heartbeat.read_all(paths).values():
        if beat.task == task and beat.job == "work" and beat.agent_pgid:
            return beat
    return None


def fleet_processes(paths: Paths) -> list[int]:
    """Pids of this repo's slaves that still run (by heartbeat)."""
    return [b.pid for sid, b in heartbeat.read_all(paths).items() if sid != "ctl" and heartbeat.pid_alive(b.pid)]


# --- signals, handled outside the handler ------------------------------------------------------------


def test_the_signal_relay_calls_back_in_its_own_thread_and_restores_the_old_handlers() -> None:
    got: list[tuple[int, str]] = []
    done = threading.Event()
    before = signal.getsignal(signal.SIGUSR1)

    def on(signum: int) -> None:
        got.append((signum, threading.current_thread().name))
        done.set()

    with SignalRelay((signal.SIGUSR1,), on):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert done.wait(5)
    assert got == [(signal.SIGUSR1, "signal-relay")], "never in the main thread, where a lock may be held"
    assert signal.getsignal(signal.SIGUSR1) is before


def test_a_signal_while_the_main_thread_holds_the_queue_lock_still_arrives() -> None:
    # The old handler put to a queue.Queue from inside the handler: if the signal came while the main
    # thread was inside that queue's get, the handler waited for a lock its own thread held.
    import queue

    q: queue.Queue[int] = queue.Queue()
    with SignalRelay((signal.SIGUSR1,), q.put):
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        assert q.get(timeout=5) == signal.SIGUSR1


# --- process groups a dead slave left --------------------------------------------------------------


def test_stop_group_stops_an_agent_that_ignores_sigterm_and_only_in_its_worktree(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    stubborn = procs.spawn(["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"], wt, procs.child_env({}))
    try:
        retry_until(lambda: procs.group_alive(stubborn.pid, inside=wt.resolve()), 5)
        other = tmp_path / "elsewhere"
        other.mkdir()
        assert procs.stop_group(stubborn.pid, grace=0.3, inside=other.resolve()), "not ours: left alone"
        assert procs.group_alive(stubborn.pid), "a group id seen in another directory is not touched"
        assert procs.stop_group(stubborn.pid, grace=0.3, inside=wt.resolve())
        assert not procs.group_alive(stubborn.pid)
    finally:
        procs.signal_group(stubborn.pid, signal.SIGKILL)
        stubborn.wait(5)


# --- a dead terminal -------------------------------------------------------------------------------


def test_a_pane_writer_goes_on_into_its_log_when_the_terminal_is_gone(tmp_path: Path) -> None:
    # A child whose stdout is a pipe nobody reads any more: print fails with EPIPE, as on a pane
    # whose server died (EIO). It keeps writing, into the fallback file, and exits 0.
    log = tmp_path / "c1.pane.log"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from clanker.fleet.slave import PaneWriter\n"
        f"w = PaneWriter(Path({str(log)!r}))\n"
        "w.line('first')\n"
        "time.sleep(0.5)\n"
        "for i in range(3): w.line(f'after {i}')\n"
        "print('late print', flush=True)\n"
        "sys.stderr.write('late warning\\n'); sys.stderr.flush()\n"
        "assert w.detached\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"first\n"
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(10) == 0
    text = log.read_text()
    assert "the pane is gone" in text and "after 2" in text and "late print" in text and "late warning" in text
    assert isinstance(PaneWriter(log).fallback, Path)


@pytest.mark.e2e
def test_killing_the_tmux_server_while_slaves_print_stops_their_agents_and_the_run_heals(
    tmp_path: Path, tm: Tmux, socket_name: str
) -> None:
    repo = fleet_repo(tmp_path, 2)
    add(repo, "Slow", "fake: write slow/a.txt started\nfake: sleep 5\nfake: write slow/b.txt done", "--path", "slow")
    add(repo, "Next", "fake: write next/a.txt 1", "--path", "next")
    paths = Paths(repo)
    runner = clanker_bg(repo, "run", "--until-done", "--timeout", "150")
    beat = retry_until(lambda: working(paths, "T1"), 60)
    assert beat is not None and beat.agent_pgid
    subprocess.run(["tmux", "-L", socket_name, "kill-server"], check=True)
    # The slave's pane is gone: it stops its agent (SIGHUP → checkpoint), it does not crash.
    retry_until(lambda: not heartbeat.pid_alive(beat.pid), 30)
    assert not procs.group_alive(int(beat.agent_pgid)), "no orphan agent left writing into the worktree"
    out, _ = runner.communicate(timeout=180)
    assert runner.returncode == 0, out  # the controller started a new server and the run finished
    assert landed_count(repo, "T1") == 1 and landed_count(repo, "T2") == 1
    assert (repo / "slow" / "b.txt").read_text() == "done\n"
    assert not list((repo / ".clanker").glob("crash-*.log")), "a dead terminal is not a crash"
    evs = events(repo)
    assert not any(e["type"] == "risk" and e.get("kind") == "crash" for e in evs)
    # The slave that lost its pane stopped cleanly, giving T1 back with its work saved.
    assert any(e["type"] == "task.released" and e["task"] == "T1" for e in evs)
    assert gate_passes_on_every_commit(repo, ["sh gate.sh"]) == []
    assert fleet_processes(paths) == [], "run --until-done leaves none of its fleet running"
    # Only T1's own files are in T1's commit: nothing an orphan wrote slipped into another branch.
    t2 = git(repo, "log", "main", "--format=%H", "--grep=^Clanker-Task: T2$").split()[0]
    assert all(f.startswith("next/") for f in git(repo, "show", "--name-only", "--format=", t2).split())


@pytest.mark.e2e
def test_a_controller_that_cannot_reach_tmux_stops_with_its_own_code(tmp_path: Path) -> None:
    repo = fleet_repo(tmp_path, 2, "hung_secs: 30\ntmux_give_up_secs: 3\n")
    add(repo, "One", "fake: write one/a.txt 1")
    (tmp_path / "not-a-dir").write_text("")  # tmux can't make its socket directory under a file
    env = {**os.environ, "CLANKER_TMUX_SOCKET": "clanker-test-unused", "TMUX_TMPDIR": str(tmp_path / "not-a-dir")}
    proc = subprocess.run(
        [sys.executable, "-m", "clanker", "--repo", str(repo), "run", "--until-done", "--timeout", "120"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "tmux" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert any(e["type"] == "risk" and e.get("kind") == "tmux" for e in events(repo))


# --- slaves that stopped, slaves that hang ------------------------------------------------------------


@pytest.mark.e2e
def test_two_sigterms_with_three_slaves_the_stopped_slaves_are_started_again(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path, 3)
    for i in range(1, 7):
        add(repo, f"Task {i}", f"fake: write area{i}/f.txt {i}\nfake: sleep 1", "--path", f"area{i}")
    paths = Paths(repo)
    runner = clanker_bg(repo, "run", "--until-done", "--timeout", "150")
    beats = retry_until(lambda: (b := heartbeat.read_all(paths)) and all(f"c{n}" in b for n in (1, 2, 3)) and b, 60)
    assert beats
    first = {sid: beats[sid].pid for sid in ("c1", "c2")}
    for pid in first.values():
        os.kill(pid, signal.SIGTERM)  # they checkpoint and exit cleanly: "stopped", not crashed
    out, _ = runner.communicate(timeout=180)
    assert runner.returncode == 0, out
    assert all(landed_count(repo, f"T{i}") == 1 for i in range(1, 7))
    evs = events(repo)
    restarted = {e["slave"] for e in evs if e["type"] == "risk" and e.get("kind") == "stopped"}
    assert restarted == {"c1", "c2"}, "a slave that stopped on a signal is started again"
    starts = {sid: sum(1 for e in evs if e["type"] == "slave.started" and e["slave"] == sid) for sid in first}
    assert all(n >= 2 for n in starts.values()), starts
    assert fleet_processes(paths) == []


@pytest.mark.e2e
def test_a_restarted_run_stops_the_fleet_an_earlier_controller_left(tmp_path: Path, tm: Tmux) -> None:
    repo = fleet_repo(tmp_path, 2)
    add(repo, "Slow", "fake: write s/a.txt 1\nfake: sleep 3", "--path", "s")
    add(repo, "Two", "fake: write t/a.txt 1", "--path", "t")
    paths = Paths(repo)
    first = clanker_bg(repo, "run", "--until-done", "--timeout", "150")
    retry_until(lambda: working(paths, "T1"), 60)
    first.kill()  # kill -9: its slaves keep running in their panes
    first.communicate(timeout=10)
    assert fleet_processes(paths)
    again = clanker(repo, "run", "--until-done", "--timeout", "150", timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert landed_count(repo, "T1") == 1 and landed_count(repo, "T2") == 1
    retry_until(lambda: fleet_processes(paths) == [], 20)
    assert fleet_processes(paths) == [], "the panes the killed controller made are this fleet's too"


@pytest.mark.e2e
def test_a_sigstopped_slave_past_the_hung_threshold_is_killed_and_its_task_lands(tmp_path: Path, tm: Tmux) -> None:
    # tmux sends SIGCONT to a pane's process that stops, so the frozen slave here is one a person
    # started outside tmux (`clanker slave 2` in a plain shell): alive, holding T1, not moving.
    repo = fleet_repo(tmp_path, 2, "hung_secs: 3\n")
    add(repo, "Slow", "fake: write slow/a.txt 1\nfake: sleep 4\nfake: write slow/b.txt 2", "--path", "slow")
    add(repo, "Quick", "fake: write quick/a.txt 1", "--path", "quick")
    paths = Paths(repo)
    outside = subprocess.Popen(
        [sys.executable, "-m", "clanker", "--repo", str(repo), "slave", "2"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        beat = retry_until(lambda: working(paths, "T1"), 60)
        assert beat is not None and beat.agent_pgid and beat.pid == outside.pid
        outside.send_signal(signal.SIGSTOP)
        runner = clanker_bg(repo, "run", "--until-done", "--timeout", "150")
        out, _ = runner.communicate(timeout=180)
        assert outside.wait(10) == -signal.SIGKILL, "the controller killed the hung slave"
    finally:
        if outside.poll() is None:
            outside.kill()
            outside.wait(10)
    assert runner.returncode == 0, out
    assert not procs.group_alive(int(beat.agent_pgid)), "and its agent"
    evs = events(repo)
    hung = [e for e in evs if e["type"] == "risk" and e.get("kind") == "hung"]
    assert [e["slave"] for e in hung] == ["c2"] and "heartbeat" in hung[0]["message"]
    # c2 was started again (in tmux), saved what the frozen one left, and the work went on.
    assert any(e["type"] == "slave.spawned" and e["slave"] == "c2" for e in evs)
    assert landed_count(repo, "T1") == 1 and (repo / "slow" / "b.txt").read_text() == "2\n"
    assert gate_passes_on_every_commit(repo, ["sh gate.sh"]) == []


# --- the fence: a slave that lost its claim can't touch the branch or main -------------------------


def _ctx(repo: Path, sid: str = "c1") -> JobContext:
    cfg = load(repo)
    prepare(cfg)
    paths = Paths(repo)
    store = Store(paths, sid)
    heart = Heart(paths, sid, 60)
    return JobContext(cfg=cfg, paths=paths, store=store, sid=sid, worktree=paths.worktree(sid), heart=heart,
                      say=lambda _s: None)  # fmt: skip


def test_a_slave_that_lost_its_claim_stashes_instead_of_committing_to_the_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    ctx = _ctx(repo)
    ctx.store.append(event("task.added", "cli", "T1", {"title": "t"}))
    ctx.store.append(event("task.claimed", "c1", "T1", {"slave": "c1"}))
    branch = ctx.store.state().tasks["T1"].branch
    gitw.ensure_worktree(repo, ctx.worktree, "main")
    gitw.checkout_branch(ctx.worktree, branch, "main")
    (ctx.worktree / "a.txt").write_text("mine, while I held it\n")
    assert ctx.commit_held("T1", "wip 1") is not None
    # Presumed hung: the claim was released and c2 took the task.
    ctx.store.append(event("task.released", "ctl", "T1", {"slave": "c1", "reason": "hung"}))
    ctx.store.append(event("task.claimed", "c2", "T1", {"slave": "c2"}))
    tip = git(repo, "rev-parse", branch).strip()
    (ctx.worktree / "a.txt").write_text("written after it was taken\n")
    with pytest.raises(LostClaim, match="T1 is no longer this slave's"):
        ctx.commit_held("T1", "wip 2")
    assert git(repo, "rev-parse", branch).strip() == tip, "the branch did not move"
    assert "T1 was taken from this slave" in git(repo, "stash", "list"), "the late change is kept, not lost"


def test_a_lander_that_lost_its_batch_never_moves_main(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    ctx = _ctx(repo)
    base = git(repo, "rev-parse", "main").strip()
    tree = git(repo, "rev-parse", "main^{tree}").strip()
    sha = gitw.commit_tree(repo, tree, base, "a landing")
    ctx.store.append(event("task.added", "cli", "T1", {"title": "t"}))
    with ctx.holding(["T1"], TaskState.LANDING) as ours:
        assert not ours
    landed = mainline.land(ctx.paths, "main", mainline.Candidate(base, sha), ctx.holding(["T1"], TaskState.LANDING))
    assert (landed.ok, landed.reason) == (False, "lost")
    assert git(repo, "rev-parse", "main").strip() == base


def test_hung_means_alive_and_not_moving() -> None:
    now = time.time()

    def beat(wall: float, loop: float, pid: int = os.getpid(), stopped: bool = False) -> heartbeat.Beat:
        return heartbeat.Beat("c1", pid, wall, None, None, "", "", None, stopped, loop=loop)

    assert not heartbeat.is_hung(beat(now, now), 10, now)
    assert heartbeat.is_hung(beat(now - 11, now - 11), 10, now), "stopped or frozen: no beat"
    assert heartbeat.is_hung(beat(now, now - 11), 10, now), "beating, but its loop stands still"
    assert not heartbeat.is_hung(beat(now - 11, now - 11, stopped=True), 10, now)
    assert not heartbeat.is_hung(beat(now - 11, now - 11, pid=2**22 + 1), 10, now), "gone: dead, not hung"


def test_a_slave_whose_loop_is_stuck_while_its_heartbeat_thread_beats_is_killed(tmp_path: Path) -> None:
    # The deadlock once seen: the heartbeat thread went on beating (fresh heartbeat) while the main
    # loop waited forever on a lock. A real process plays it: a Heart beating, a main thread asleep.
    from clanker.fleet.controller import Controller

    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 0.2\nhung_secs: 1\nagent:\n  kind: fake\n")
    cfg = load(repo)
    prepare(cfg)
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from clanker.state.heartbeat import Heart\n"
        "from clanker.state.paths import Paths\n"
        f"h = Heart(Paths(Path({str(repo)!r})), 'c2', 0.2)\n"
        "h.start()\n"
        "h.update(job='work', task='T1', phase='agent')\n"
        "time.sleep(600)\n"
    )
    stuck = subprocess.Popen([sys.executable, "-c", code])
    try:
        paths = Paths(repo)
        retry_until(lambda: heartbeat.read(paths, "c2"), 10)
        ctl = Controller(cfg)
        ctl._kill_hung(time.time(), heartbeat.read_all(paths))
        assert stuck.poll() is None, "not judged before the controller itself watched hung_secs"
        time.sleep(1.5)
        beat = heartbeat.read(paths, "c2")
        assert beat is not None and beat.age(time.time()) < 1, "its heartbeat is fresh"
        ctl._kill_hung(time.time(), heartbeat.read_all(paths))
        assert stuck.wait(10) == -signal.SIGKILL
        risk = [e for e in events(repo) if e["type"] == "risk" and e.get("kind") == "hung"]
        assert len(risk) == 1 and "main loop stood still" in risk[0]["message"]
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait(10)


def test_a_restarted_slave_stops_the_agent_its_killed_predecessor_left_before_any_job(tmp_path: Path) -> None:
    # The predecessor died (kill -9) with its agent running in the worktree: its heartbeat still
    # names the agent's group, and the new slave stops that group before it takes any job.
    from clanker.fleet.slave import Slave

    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    cfg = load(repo)
    prepare(cfg)
    slave = Slave(cfg, 1)
    wt = slave.ctx.worktree
    gitw.ensure_worktree(repo, wt, "main")
    orphan = procs.spawn(["sh", "-c", "trap '' TERM; while :; do echo x >> orphan.txt; sleep 0.1; done"], wt,
                         procs.child_env({}))  # fmt: skip
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        beat_file = Paths(repo).heartbeat("c1")
        beat_file.parent.mkdir(parents=True, exist_ok=True)
        beat_file.write_text(json.dumps({"pid": int(dead.stdout), "wall": time.time(), "agent_pgid": orphan.pid}))
        beat = heartbeat.read(Paths(repo), "c1")
        assert beat is not None and beat.agent_pgid == orphan.pid
        slave._kill_orphan_agent()
        assert not procs.group_alive(orphan.pid), "stopped, though it ignores SIGTERM"
        assert slave.heart.info.get("agent_pgid") is None
        assert not slave._agent_left(), "nothing left: jobs may start"
    finally:
        procs.signal_group(orphan.pid, signal.SIGKILL)
        orphan.wait(5)


@pytest.mark.e2e
def test_a_dead_twin_of_a_live_slave_pane_is_closed_and_stop_leaves_no_pane(tmp_path: Path, tm: Tmux) -> None:
    # Seen in the fault campaign: after a killed tmux server, c2 was spawned twice; the second
    # slave found the first holding its lock and exited, leaving a dead pane nothing showed.
    from clanker.fleet import panes as fleet
    from clanker.fleet.controller import Controller

    repo = fleet_repo(tmp_path, 2)
    cfg = load(repo)
    dead = tm.new_session("twins", "slaves", str(repo), ["true"], {}, frozenset())
    tm.mark(dead, "c2", str(repo), created=True)
    live = tm.split(dead, str(repo), ["sleep", "60"], {})
    tm.mark(live, "c2", str(repo), created=True)
    retry_until(lambda: any(p.id == dead and p.dead for p in tm.panes()), 10)
    assert fleet.view(tm, repo).panes["c2"].id == live, "the view shows the live one"
    Controller(cfg)._close_dead_twins(fleet.view(tm, repo))
    ids = {p.id for p in tm.panes()}
    assert dead not in ids and live in ids
    tm.mark(tm.split(live, str(repo), ["true"], {}), "c2", str(repo), created=True)  # another dead twin
    fleet.stop(cfg, tm, grace=1.0, only={"c2"})
    assert not [p for p in tm.panes() if p.clanker_id == "c2"], "stop closes every pane of ours with that id"


@pytest.mark.e2e
def test_a_stopping_slave_never_unlabels_a_pane_it_does_not_run_in(tmp_path: Path, tm: Tmux) -> None:
    # Pane ids are per server: a slave whose tmux server died stops, and "%0" on the same socket is
    # now a new server's pane, one the controller just made. Unlabelling it hid a live slave.
    from clanker.fleet.slave import Slave

    repo = fleet_repo(tmp_path, 2)
    other = tm.new_session("someone", "w", str(repo), ["sleep", "60"], {}, frozenset())
    tm.mark(other, "c1", str(repo), created=False)
    slave = Slave(load(repo), 1)
    slave.pane = other
    slave._unmark_own_pane()
    assert next(p for p in tm.panes() if p.id == other).clanker_id == "c1", "not this process's pane: untouched"
