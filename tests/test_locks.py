"""Ownership keys (pure) and the mainline lock (a kernel flock shared across processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clanker.state.heartbeat import pid_alive
from clanker.state.locks import LockTimeout, is_held, keys_for, mainline_lock, overlaps, slave_lock
from clanker.state.paths import Paths
from tests.helpers import retry_until


@pytest.mark.parametrize(
    ("paths", "owner_files", "keys"),
    [
        ([], (), set()),
        (["src/a.py"], (), {"src"}),
        (["src/a.py", "src/deep/b.py", "docs/x.md"], (), {"src", "docs"}),
        (["README.md"], (), {"README.md"}),
        (["./src/a.py", "/docs/x/", "src\\win\\c.py"], (), {"src", "docs"}),
        (["", "  ", "./"], (), set()),
        (["src/"], (), {"src"}),
        # hot directories: each file under them is its own key
        (["src/a.py", "src/b.py"], ("src",), {"src/a.py", "src/b.py"}),
        (["src/a.py", "lib/b.py"], ("src/",), {"src/a.py", "lib"}),
        (["src/a.py", "src/b.txt"], ("src/*.py",), {"src/a.py", "src"}),
        (["Cargo.lock", "pkg/yarn.lock", "pkg/x.js"], ("*.lock",), {"Cargo.lock", "pkg/yarn.lock", "pkg"}),
        (["./db/schema.sql"], ("./db/schema.sql",), {"db/schema.sql"}),
        (["db/schema.sql", "db/seed.sql"], ("db/schema.sql",), {"db/schema.sql", "db"}),
        (["srcx/a.py"], ("src",), {"srcx"}),  # a prefix of a name is not the directory
    ],
)
def test_keys_for(paths: list[str], owner_files: tuple[str, ...], keys: set[str]) -> None:
    assert keys_for(paths, owner_files) == frozenset(keys)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"src"}, {"src"}, True),
        ({"src"}, {"docs"}, False),
        ({"src"}, {"src/a.py"}, True),
        ({"src/a.py"}, {"src"}, True),
        ({"src/a.py"}, {"src/b.py"}, False),
        ({"src/a.py"}, {"src/a.py"}, True),
        ({"src"}, {"srcx"}, False),
        ({"src"}, {"src.py"}, False),
        ({"docs", "src/a.py"}, {"lib", "src"}, True),
        (set(), {"src"}, False),
        ({"src"}, set(), False),
        ({"a/b"}, {"a/b/c/d"}, True),
    ],
)
def test_overlaps(a: set[str], b: set[str], expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected  # symmetric


def test_keys_and_overlaps_together() -> None:
    hot = ("src/hot",)
    a = keys_for(["src/hot/one.py"], hot)
    b = keys_for(["src/hot/two.py"], hot)
    c = keys_for(["src/cold.py"], hot)
    assert not overlaps(a, b)
    assert overlaps(a, c) and overlaps(b, c)  # the whole `src` covers the hot files in it


# --- the mainline lock across processes -------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from clanker.state.locks import mainline_lock
    from clanker.state.paths import Paths

    lock = mainline_lock(Paths(Path(sys.argv[1])))
    lock.acquire(timeout=30)
    print("held", flush=True)
    time.sleep(120)
    """
)


def start_holder(repo: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_mainline_lock_is_exclusive_and_freed_when_the_holder_is_killed(paths: Paths) -> None:
    holder = start_holder(paths.repo)
    try:
        lock = mainline_lock(paths)
        with pytest.raises(LockTimeout):
            lock.acquire(timeout=0.3)
        assert is_held(str(paths.locks / "mainline.lock"))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        assert not pid_alive(holder.pid)
        # The kernel dropped the flock with the process: no stale lock file wedges main.
        lock.acquire(timeout=5)
        try:
            assert lock.is_locked
            assert is_held(str(paths.locks / "mainline.lock"))
        finally:
            lock.release()
        assert not is_held(str(paths.locks / "mainline.lock"))
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_second_process_waits_for_the_lock(paths: Paths) -> None:
    lock = mainline_lock(paths)
    lock.acquire(timeout=5)
    waiter = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(paths.repo)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert waiter.stdout is not None
        # While we hold it, the other process can't get it: it is still waiting, silent.
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(0.5)
        lock.release()
        assert waiter.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout):
            mainline_lock(paths).acquire(timeout=0.2)
    finally:
        if lock.is_locked:
            lock.release()
        waiter.kill()
        waiter.wait()
    retry_until(lambda: not is_held(str(paths.locks / "mainline.lock")), seconds=10)


def test_slave_locks_are_per_slave(paths: Paths) -> None:
    c1 = slave_lock(paths, "c1")
    c1.acquire(timeout=1)
    try:
        assert is_held(str(paths.locks / "slave-c1.lock"))
        assert not is_held(str(paths.locks / "slave-c2.lock"))
        with pytest.raises(LockTimeout):
            slave_lock(paths, "c1").acquire(timeout=0.1)
        c2 = slave_lock(paths, "c2")
        c2.acquire(timeout=1)
        c2.release()
    finally:
        c1.release()
