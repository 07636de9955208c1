"""Admission: whether the machine has room for another agent (pure; `system/machine` reads it)."""

from __future__ import annotations

from ..config import CapacityConfig
from ..system.machine import Room

MIN_FREE_FLOOR_MB = 512


def limits(room: Room, cap: CapacityConfig) -> tuple[int, float]:
    """The free memory (MB) below which, and the load above which, no agent starts."""
    free = cap.min_free_mb if cap.min_free_mb is not None else max(MIN_FREE_FLOOR_MB, (room.total_mb or 0) // 10)
    load = cap.max_load if cap.max_load is not None else 4.0 * room.cores
    return free, load


def short(room: Room, cap: CapacityConfig) -> str | None:
    """Why another agent must not start now, or None. What can't be read doesn't hold anything."""
    min_free, max_load = limits(room, cap)
    if room.free_mb is not None and room.free_mb < min_free:
        return f"capacity: {room.free_mb} MB free, below capacity.min_free_mb ({min_free} MB)"
    if room.load1 is not None and room.load1 > max_load:
        return f"capacity: load {room.load1:.1f}, above capacity.max_load ({max_load:g})"
    return None
