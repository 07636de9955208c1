"""A job, and what each kind of job must say: how it is claimed, run, and given back on an error.

Roles are jobs (DESIGN §1). Each job module ends with its `KIND`; `kinds.KINDS` is the table the
slave claims, runs and gives back through, so no part of the fleet dispatches on job names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from ..state.events import Event
from ..state.model import State
from ..state.reconcile import release_events

if TYPE_CHECKING:  # the scheduler names jobs without loading what runs them
    from .context import JobContext


class Job(msgspec.Struct, frozen=True):
    kind: str  # work | judge | mainline | health | plan | preflight
    task: str = ""  # work, judge: the task; plan: the task to split, or "" to plan from the docs
    batch: tuple[str, ...] = ()  # mainline: the accepted tasks to stack, oldest first


class JobKind(msgspec.Struct, frozen=True):
    name: str
    claim: Callable[[Job, str, str], list[Event]]  # (job, slave, preflight key) → the events that give it
    run: Callable[[JobContext, Job], None]
    on_error: Callable[[State, Job, str, str], list[Event]]  # a git or tmux failure inside it: hand it back


def release_all(state: State, job: Job, sid: str, error: str) -> list[Event]:
    """Give back everything `sid` holds (the default for jobs without an attempt to count)."""
    return release_events(state, frozenset({sid}), sid, error)
