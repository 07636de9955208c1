"""Admission: no agent starts while the machine is short of memory or CPU; what each agent run
held at most is recorded. The rule is a table; the readers are checked against this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clanker.config import CapacityConfig
from clanker.fleet.capacity import limits, short
from clanker.system import machine
from clanker.system.machine import Room
from clanker.system.tmux import Tmux

GB = 1024


@pytest.mark.parametrize(
    ("room", "cap", "held"),
    [
        (Room(8 * GB, 16 * GB, 1.0, 4), CapacityConfig(), None),
        (Room(1 * GB, 16 * GB, 1.0, 4), CapacityConfig(), "1024 MB free, below capacity.min_free_mb (1638 MB)"),
        (Room(600, 2 * GB, 1.0, 2), CapacityConfig(), None),  # a tenth of 2 GB is under the 512 MB floor
        (Room(400, 2 * GB, 1.0, 2), CapacityConfig(), "400 MB free, below capacity.min_free_mb (512 MB)"),
        (Room(8 * GB, 16 * GB, 17.0, 4), CapacityConfig(), "load 17.0, above capacity.max_load (16)"),
        (Room(8 * GB, 16 * GB, 3.0, 4), CapacityConfig(max_load=2.5), "load 3.0, above capacity.max_load (2.5)"),
        (Room(3 * GB, 16 * GB, 1.0, 4), CapacityConfig(min_free_mb=4 * GB), "3072 MB free, below"),
        (Room(None, None, None, 1), CapacityConfig(), None),  # what can't be read holds nothing back
    ],
)
def test_another_agent_starts_only_with_room_for_it(room: Room, cap: CapacityConfig, held: str | None) -> None:
    got = short(room, cap)
    if held is None:
        assert got is None
    else:
        assert got is not None and got.startswith("capacity: ") and held in got


def test_the_defaults_are_a_tenth_of_memory_and_four_times_the_cores() -> None:
    assert limits(Room(0, 32 * GB, 0.0, 8), CapacityConfig()) == (3276, 32.0)


def test_this_machine_is_read_and_a_process_groups_memory_is_summed() -> None:
    room = machine.room()
    assert room.total_mb and room.free_mb is not None and 0 < room.free_mb <= room.total_mb
    assert room.load1 is not None and room.cores == os.cpu_count()
    # a child in its own process group, holding ~60 MB
    code = "b = bytearray(60 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nimport time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while machine.group_rss_mb(child.pid) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 60 <= machine.group_rss_mb(child.pid) < 200
        assert machine.group_rss_mb(2**22 + 12345) == 0  # no such group
    finally:
        child.kill()
        child.wait()


@pytest.mark.e2e
def test_a_machine_short_of_memory_starts_no_agent_and_says_so_once(tmp_path: Path, tm: Tmux) -> None:
    from tests.helpers import clanker, events, make_repo

    config = (
        "slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - 'true'\ngate_preflight: false\n"
        "capacity:\n  min_free_mb: 100000000\n"  # more than any machine has
    )
    repo = make_repo(tmp_path / "r", config)
    clanker(repo, "task", "add", "T", "--prompt", "fake: write t.txt 1", check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "6", timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # out of time: nothing could start
    log = events(repo)
    said = [e for e in log if e["type"] == "risk" and e["kind"] == "capacity"]
    assert len(said) == 2 and {e["slave"] for e in said} == {"c1", "c2"}  # once per slave and episode
    assert "below capacity.min_free_mb (100000000 MB)" in said[0]["message"]
    assert not [e for e in log if e["type"] in ("task.claimed", "attempt.finished")]
