"""What the machine has to spare: available memory and load, read from /proc (Linux)."""

from __future__ import annotations

import os

import msgspec


class Room(msgspec.Struct, frozen=True):
    free_mb: int | None  # MemAvailable (None where /proc/meminfo can't be read)
    total_mb: int | None
    load1: float | None  # the 1-minute load average
    cores: int


def room() -> Room:
    free = total = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemAvailable", "MemTotal"):
                    mb = int(rest.split()[0]) // 1024
                    if key == "MemAvailable":
                        free = mb
                    else:
                        total = mb
                    if free is not None and total is not None:
                        break  # the first lines of ~55: a slave asks before every claim
    except (OSError, ValueError):
        pass
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return Room(free, total, load, os.cpu_count() or 1)


def group_rss_mb(pgid: int) -> int:
    """The resident memory, in MB, of the process group led by `pgid` (an agent and the tools it
    started: Claude Code's node processes, a test run). Read from the leader's tree of children,
    so a sample costs a few reads per process of the agent, not a scan of the whole machine."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, seen, todo = 0, set(), [pgid]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # the fields after the name: state, ppid, pgrp, … rss (22nd)
                continue  # a child that left the group (a daemon it started) is not the agent's
            total += int(fields[21]) * page
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total // (1024 * 1024)
