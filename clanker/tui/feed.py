"""The tail panel's source: events.log read incrementally from a byte offset (never re-read), each
event folded into its task's totals and formatted by the pure `tail.format_line`."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from ..fleet.panes import is_slave_id
from ..state import log as events
from .tail import Line, TaskInfo, advance, format_line

KEEP = 500  # tail lines kept in memory (the panel shows the last ones that fit)


class Feed:
    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.offset = 0
        self.lines: deque[Line] = deque(maxlen=keep)
        self.info: dict[str, TaskInfo] = {}
        self.origin: float | None = None  # the first event's time: the clock of task-less lines
        self.last_event = 0.0
        self.last_task: dict[str, str] = {}  # slave → the task it touched last (for its log)
        self.count = 0  # events read so far

    def poll(self) -> int:
        """Read what the log gained since the last call; returns how many events that was."""
        n = 0
        for ev, end in events.read_from(self.path, self.offset):
            self.offset = end
            n += 1
            if self.origin is None:
                self.origin = ev.ts
            self.last_event = max(self.last_event, ev.ts)
            task = ev.task_id
            if task is not None:
                info = advance(self.info.get(task), ev)
                if info is not None:
                    self.info[task] = info
                slave = getattr(ev, "slave", None)
                if isinstance(slave, str) and is_slave_id(slave):
                    self.last_task[slave] = task
            line = format_line(ev, self.info.get(task) if task else None, self.origin)
            if line is not None:
                self.lines.append(line)
        self.count += n
        return n
