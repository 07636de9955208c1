"""What the machine has to spare: available memory and load, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Room:
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
    except (OSError, ValueError):
        pass
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return Room(free, total, load, os.cpu_count() or 1)


def group_rss_mb(pgid: int) -> int:
    """The resident memory of every process in process group `pgid`, in MB (an agent and the
    tools it started: Claude Code's node processes, a test run)."""
    total_kb = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # the fields after the name: state, ppid, pgrp, …
                continue
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total_kb // 1024
