"""Which events may be appended now: the transition tables of state/model.py applied to one event,
with the holder checks (only the slave holding a task or a job may move it on). The store refuses
an illegal event before it is written; the fold skips one found in a hand-edited log.
"""

from __future__ import annotations

from ..errors import IllegalTransition
from . import events as ev
from .events import Event
from .model import ANNOTATIONS, JOB_TRANSITIONS, JOBS, TRANSITIONS, State, TaskState, trigger

HOLDER_ONLY: frozenset[type[Event]] = frozenset(
    (
        ev.TaskReleased,
        ev.TaskFailed,
        ev.TaskSubmitted,
        ev.JudgeReleased,
        ev.Verdict,
        ev.Mainlined,
        ev.LandingReleased,
    )
)


JOB_EVENTS = frozenset(t for _, t in JOB_TRANSITIONS)


def _task_checked(e: Event) -> bool:
    """Task events, and risks and retries about a task, must fit the task they name."""
    return e.ABOUT_TASK or (isinstance(e, ev.Risk | ev.RetryWait) and e.task is not None)


def check(state: State, e: Event) -> TaskState | None:
    """Raise IllegalTransition unless `e` may be applied to `state`. Returns the state a task
    event moves its task to (None for other events and for annotations)."""
    # A cold rebuild checks every event of the history: the common path is kept short.
    cls, name = type(e), e.TYPE
    if ev.REGISTRY.get(name) is not cls:
        raise IllegalTransition("?", f"unregistered event {cls.__name__}", None)
    if name in JOB_EVENTS:
        _check_job(state, e, next(job for prefix, job in JOBS.items() if name.startswith(prefix)))
        return None
    task_id = getattr(e, "task", None)
    if not isinstance(task_id, str) or not _task_checked(e):
        return None
    task = state.tasks.get(task_id) or state.archive.load(task_id)
    if name in ANNOTATIONS:
        if task is None:
            raise IllegalTransition(task_id, name, None)
        return None
    current = task.state if task else None
    moved = trigger(e) if cls is ev.Verdict else name
    after = TRANSITIONS.get((current, moved))
    if after is None:
        raise IllegalTransition(task_id, moved, current)
    # Only the slave holding a task may move it on: a slave that was presumed dead and released
    # can't later submit or land the task another slave now holds.
    if task is not None and cls in HOLDER_ONLY:
        holder = getattr(e, "slave", None)
        if holder and task.slave != holder:
            raise IllegalTransition(task_id, f"{moved} by {holder} (held by {task.slave or 'nobody'})", current)
    if isinstance(e, ev.LandingClaimed):
        # One mainline job at a time: a batch is claimed by one slave.
        if state.landing is not None:  # kept by the fold: no scan of every task
            lander = next(iter(state.landing.values()), None)
        else:
            lander = next((t.slave for t in state.tasks.values() if t.state == TaskState.LANDING), None)
        if lander is not None and lander != e.slave:
            raise IllegalTransition(task_id, f"task.landing by {e.slave} (main is being landed by {lander})", current)
    return after


def _holder(state: State, job: str) -> str | None:
    return {"health": state.health_slave, "plan": state.plan_slave, "preflight": state.preflight_slave}[job]


def _check_job(state: State, e: Event, job: str) -> None:
    holder = _holder(state, job)
    who = str(getattr(e, "slave", "") or e.actor)
    if isinstance(e, ev.PreflightRan) and e.slave == "doctor":
        return  # `clanker doctor --gate` ran its own preflight, holding nothing
    if (holder is not None, e.TYPE) not in JOB_TRANSITIONS:
        state_name = f"held by {holder}" if holder else "free"
        raise IllegalTransition(job, f"{e.TYPE} by {who}", state_name)
    if holder is not None and holder != who:
        raise IllegalTransition(job, f"{e.TYPE} by {who}", f"held by {holder}")
