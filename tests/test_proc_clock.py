"""Child processes (system/proc) and injectable time (system/clock): real processes, a fake clock."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from clanker.config import load
from clanker.fleet.controller import Controller, summary
from clanker.project.gate import run_gate
from clanker.state import heartbeat
from clanker.state.heartbeat import Heart, SleepDetector
from clanker.state.paths import Paths, prepare
from clanker.system import proc
from clanker.system.fswatch import LogWaiter
from clanker.system.tmux import Tmux
from clanker.system.treewatch import Watch

from .fakeclock import FakeClock
from .helpers import clanker, make_repo, retry_until

# --- processes -------------------------------------------------------------------------------------


def test_children_never_see_the_tmux_server_or_the_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    monkeypatch.setenv("TMUX_PANE", "%3")
    monkeypatch.setenv("CLANKER_ENV_FILE", "/tmp/keys")
    env = proc.child_env({"EXTRA": "1"}, {"EXTRA": "2"})
    assert env["EXTRA"] == "2" and not {"TMUX", "TMUX_PANE", "CLANKER_ENV_FILE"} & set(env)
    # Even an env built by hand loses them at spawn.
    leaky = {**env, "TMUX": "x", "TMUX_PANE": "%1"}
    p = proc.spawn(["sh", "-c", 'echo "${TMUX-unset} ${TMUX_PANE-unset} $EXTRA"'], None, leaky)
    out, _ = p.communicate(timeout=10)
    assert out.decode().split() == ["unset", "unset", "2"]


def test_stop_asks_first_then_kills_what_does_not_listen(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    polite = f"trap 'echo bye > {tmp_path}/bye; exit 0' TERM; : > {ready}; sleep 60 & wait"
    p = proc.spawn(["sh", "-c", polite], None, proc.child_env())
    retry_until(ready.exists)  # the trap is in place
    assert proc.stop(p, grace=10) == 0
    assert (tmp_path / "bye").read_text() == "bye\n"  # it got TERM and cleaned up

    ready.unlink()
    stubborn = f"trap '' TERM; : > {ready}; while :; do sleep 0.1; done"
    p = proc.spawn(["sh", "-c", stubborn], None, proc.child_env())
    retry_until(ready.exists)
    assert proc.stop(p, grace=0.5) == -signal.SIGKILL


def test_stop_takes_the_whole_group(tmp_path: Path) -> None:
    p = proc.spawn(["sh", "-c", f"sleep 60 & echo $! > {tmp_path}/child; wait"], None, proc.child_env())
    child = int(retry_until(lambda: (tmp_path / "child").exists() and (tmp_path / "child").read_text().strip()))
    assert heartbeat.pid_alive(child)
    proc.stop(p, grace=5)
    retry_until(lambda: not heartbeat.pid_alive(child), seconds=5)  # the leader's child went too


def test_output_of_a_short_command() -> None:
    assert proc.output(["sh", "-c", "echo out; echo err >&2"], timeout=10) == "out\nerr\n"
    assert proc.output(["/nonexistent/binary", "--version"], timeout=10) == ""
    # A command that hangs is stopped; what it printed before is kept.
    assert proc.output(["sh", "-c", "echo v1.2; exec sleep 60"], timeout=0.5) == "v1.2\n"


def test_a_gate_past_its_time_is_asked_to_stop_before_it_is_killed(tmp_path: Path) -> None:
    # The gate's test runner gets TERM (it can stop its servers, remove its temp dirs) before KILL.
    cmd = f"trap 'echo cleaned > {tmp_path}/cleaned; exit 1' TERM; echo running; sleep 60 & wait"
    res = run_gate((cmd,), tmp_path, timeout=1)
    assert not res.passed and res.failed == cmd
    assert "running" in res.output and "(timed out after 1s)" in res.output
    assert (tmp_path / "cleaned").read_text() == "cleaned\n"


# --- the clock -----------------------------------------------------------------------------------


def test_sleep_detector_tells_a_suspend_from_time_passing() -> None:
    clock = FakeClock()
    watch = SleepDetector(tolerance=5.0, clock=clock)
    clock.advance(3600)
    assert not watch.slept(), "an hour of running is not a sleep"
    clock.suspend(60)
    assert watch.slept(), "the wall clock moved a minute while the monotonic one did not"
    assert not watch.slept(), "once noticed, it is over"


def test_heartbeats_carry_the_clock_and_beat_every_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    paths = Paths(make_repo(tmp_path / "r"))
    paths.heartbeats.mkdir(parents=True, exist_ok=True)
    heart = Heart(paths, "c1", interval=30, clock=clock)
    start = clock.time()
    heart.start()
    try:
        first = heartbeat.read(paths, "c1")
        assert first is not None and first.wall >= start

        # Each beat comes one interval of the clock after the last: no real 30 s wait.
        def beat() -> heartbeat.Beat | None:
            b = heartbeat.read(paths, "c1")
            return b if b is not None and b.wall >= start + 90 else None

        later = retry_until(beat)
        assert later is not None
        assert not heartbeat.is_dead(later, 30, now=later.wall)
    finally:
        heart.stop()
    gone = heartbeat.read(paths, "c1")
    assert gone is not None and gone.stopped and heartbeat.is_dead(gone, 30, now=clock.time())


def test_a_stale_heartbeat_of_a_live_process_is_not_dead() -> None:
    beat = heartbeat.Beat(
        "c1", pid=1, wall=1000.0, job=None, task=None, phase="", pane="", agent_pgid=None, stopped=False
    )
    assert beat.age(now=1100.0) == 100.0
    assert not heartbeat.is_dead(beat, 5, now=1100.0), "pid 1 lives: a slow slave is not a dead one"
    assert heartbeat.is_dead(beat, 5, now=1100.0, pane_dead=True)


def test_log_waiter_waits_on_its_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    waiter = LogWaiter(tmp_path, clock=clock)
    try:
        before = clock.monotonic()
        assert not waiter.wait(600)
        assert clock.monotonic() - before == 600
        (tmp_path / "events.log").write_text("x\n")
        assert retry_until(lambda: waiter.wait(600)), "a write wakes it at once"
    finally:
        waiter.close()


def no_inotify() -> None:
    """INotify() when the user is out of inotify instances."""
    raise OSError(24, "Too many open files")


def test_a_log_waiter_without_inotify_waits_out_its_timeouts_and_can_be_poked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clanker.system import fswatch

    monkeypatch.setattr(fswatch, "INotify", no_inotify)
    waiter = LogWaiter(tmp_path)
    try:
        assert waiter.blind
        (tmp_path / "events.log").write_text("x\n")
        started = time.monotonic()
        assert not waiter.wait(0.2) and time.monotonic() - started >= 0.2  # blind, but not stuck
        threading.Timer(0.05, waiter.poke).start()
        assert waiter.wait(5) and time.monotonic() - started < 4
    finally:
        waiter.close()


WAIT_WITHOUT_LDCONFIG = """
import ctypes.util, sys
from pathlib import Path

def refuse(name):
    raise AssertionError("find_library runs ldconfig -p: a child process at every start")

ctypes.util.find_library = refuse
from clanker.system.fswatch import LogWaiter
from clanker.system.treewatch import Watch

waiter = LogWaiter(Path(sys.argv[1]))
(Path(sys.argv[1]) / "events.log").write_text("x")
print("woke" if waiter.wait(5) and not waiter.blind else "blind")
"""


def test_a_log_waiter_takes_libc_from_the_process_instead_of_looking_it_up(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", WAIT_WITHOUT_LDCONFIG, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "woke"


def test_a_log_waiter_wakes_at_each_write_and_merges_writes_made_between_waits(tmp_path: Path) -> None:
    waiter = LogWaiter(tmp_path)
    try:
        log = tmp_path / "events.log"
        for n in range(50):
            with open(log, "a") as f:
                f.write(f"{n}\n")  # nobody waits: fifty writes are one wake
        assert waiter.wait(5) and not waiter.wait(0)
        (tmp_path / "state.json").write_text("{}")
        assert not waiter.wait(0.1), "another file's write is not the log's"
        threading.Timer(0.05, lambda: log.write_text("y\n")).start()
        assert waiter.wait(5)
    finally:
        waiter.close()


@pytest.mark.e2e
def test_run_until_done_runs_out_of_time_on_its_clock(tmp_path: Path, tm: Tmux) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 5\nagent:\n  kind: fake\n")
    clanker(repo, "task", "add", "slow", "--prompt", "fake: sleep 120\nfake: write a.txt 1", check=True)
    cfg = load(repo)
    prepare(cfg)
    clock = FakeClock()
    lines: list[str] = []
    ctl = Controller(cfg, out=lines.append, clock=clock)
    started = clock.monotonic()
    try:
        code = ctl.run_until_done(timeout=900)
    finally:
        ctl.stop_spawned()
    # A quarter of an hour went by on the controller's clock; the slow task is still running.
    assert code == 3 and clock.monotonic() - started > 900
    state = ctl.store.state()
    assert state.tasks["T1"].state != "done"
    assert summary(state, code, 900).splitlines()[:2] == ["0/1 tasks done", "time ran out after 900s"]


def _changes(root: Path, skip: frozenset[str] = frozenset()) -> tuple[list[Path], Watch]:
    seen: list[Path] = []
    return seen, Watch(root, seen.append, skip=skip)


def test_the_tree_watch_follows_new_directories_and_every_kind_of_change(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    (wt / "src").mkdir(parents=True)
    (wt / "src" / "old.py").write_text("old\n")
    seen, watch = _changes(wt)
    try:
        (wt / "src" / "old.py").write_text("changed\n")
        assert retry_until(lambda: wt / "src" / "old.py" in seen), "a write in a watched directory"
        (wt / "pkg").mkdir()
        assert retry_until(lambda: wt / "pkg" in seen)
        (wt / "pkg" / "deep").mkdir()
        assert retry_until(lambda: wt / "pkg" / "deep" in seen), "a new directory is followed"
        (wt / "pkg" / "deep" / "new.py").write_text("new\n")
        assert retry_until(lambda: wt / "pkg" / "deep" / "new.py" in seen)
        (wt / "src" / "old.py").rename(wt / "pkg" / "moved.py")
        assert retry_until(lambda: wt / "pkg" / "moved.py" in seen and wt / "src" / "old.py" in seen)
        seen.clear()
        (wt / "pkg" / "moved.py").unlink()
        assert retry_until(lambda: wt / "pkg" / "moved.py" in seen), "a removal is a change"
    finally:
        watch.close()
    assert not watch.partial


def test_the_tree_watch_neither_watches_nor_reports_what_it_skips(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    (wt / "node_modules" / "dep").mkdir(parents=True)
    (wt / "src").mkdir()
    seen, watch = _changes(wt, skip=frozenset({"node_modules", ".git"}))
    try:
        assert sorted(watch._dirs.values()) == [str(wt), str(wt / "src")]
        (wt / "node_modules" / "dep" / "index.js").write_text("x\n")
        (wt / ".git").mkdir()
        (wt / ".git" / "index").write_text("x\n")
        (wt / "src" / "a.py").write_text("a\n")  # written last: once it is seen, so would the others be
        assert retry_until(lambda: wt / "src" / "a.py" in seen)
        assert [p for p in seen if "node_modules" in p.parts or ".git" in p.parts] == []
    finally:
        watch.close()


def test_a_tree_watch_without_inotify_says_it_sees_nothing_and_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clanker.system import treewatch

    monkeypatch.setattr(treewatch, "INotify", no_inotify)
    seen, watch = _changes(tmp_path)
    (tmp_path / "a.py").write_text("a\n")
    watch.close()
    assert watch.partial and seen == []
