"""inotify_simple, with libc taken from this process.

inotify_simple looks libc up with ctypes.util.find_library, which runs `ldconfig -p` in a child
process: 15 ms and a process in every clanker process that waits on a file (each slave, the
controller, the TUI, `logs -f`). libc is already loaded, so its symbols are in the process itself,
where watchdog takes them from too (`CDLL(None)`).
"""

from __future__ import annotations

import ctypes

import inotify_simple
from inotify_simple import INotify, flags

if getattr(inotify_simple, "_libc", None) is None:
    inotify_simple._libc = ctypes.CDLL(None, use_errno=True)

__all__ = ["INotify", "flags"]
