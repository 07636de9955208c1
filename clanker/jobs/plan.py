"""The plan job: the planner agent turns plan documents into tasks, or splits a blocked task into
smaller ones (seed plan: "Planner Inputs"). Its context is a bounded pack: the plan docs, the
current tasks and the newest history summaries, cut to `planner.max_chars`."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from ..agents.base import Outcome
from ..errors import UsageError
from ..state import events as ev
from ..state.events import Event
from ..state.fold import fold
from ..state.intake import DEFAULT_BRANCHES, Branches, added_event
from ..state.model import State, Task, TaskState
from ..system import git
from . import rollup
from .base import JobKind, release_all
from .common import idle, prepare_worktree
from .context import JobContext
from .prompts import history_notes, planner_prompt, rollup_prompt
from .review import REVIEW, docs_fingerprint

TASK_LINE = re.compile(r"^\s*TASK:\s*(\{.*\})\s*$", re.MULTILINE)
MERGE_LINE = re.compile(r"^\s*MERGE:\s*(\{.*\})\s*$", re.MULTILINE)
RESCOPE_LINE = re.compile(r"^\s*RESCOPE:\s*(\{.*\})\s*$", re.MULTILINE)
ADVICE_LINE = re.compile(r"^\s*CONCURRENCY:\s*(\d+)\b[\s:—–-]*(.*?)\s*$", re.MULTILINE)
MAX_NEW = 20


def _objects(line: re.Pattern[str], text: str) -> list[dict[str, Any]]:
    """The JSON objects of the planner's `NAME: {…}` lines (ones that don't parse are skipped)."""
    out = []
    for raw in line.findall(text):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def parse_tasks(text: str) -> list[dict[str, Any]]:
    """`TASK: {"title": …, "prompt": …, "paths": […], "priority": n, "depends_on": […]}` lines."""
    specs = [o for o in _objects(TASK_LINE, text) if isinstance(o.get("title"), str) and o["title"].strip()]
    return specs[:MAX_NEW]


def parse_merges(text: str) -> list[dict[str, Any]]:
    """`MERGE: {"tasks": ["T3", "T4"], "title": …, "prompt": …, "paths": […]}` lines."""
    return [
        o for o in _objects(MERGE_LINE, text)
        if isinstance(o.get("tasks"), list) and len(o["tasks"]) >= 2 and all(isinstance(t, str) for t in o["tasks"])
        and o.get("title")
    ]  # fmt: skip


MERGEABLE = (TaskState.READY, TaskState.BLOCKED)  # not in anyone's hands


def merge_events(state: State, specs: list[dict[str, Any]], actor: str, branches: Branches) -> list[Event]:
    """Overlapping tasks merged into one (pure): the new task, its first source as its parent,
    and each merged one cancelled naming it — kept, never deleted."""
    evs: list[Event] = []
    st = state
    for spec in specs:
        ids = list(dict.fromkeys(spec["tasks"]))
        if not all(st.tasks.get(t) is not None and st.tasks[t].state in MERGEABLE for t in ids):
            continue  # one is gone or in someone's hands: not this merge
        fields = {"title": spec["title"], "prompt": spec.get("prompt") or spec["title"],
                  "paths": spec.get("paths") or [p for t in ids for p in st.tasks[t].paths],
                  "tags": ["planned"], "parent": ids[0]}  # fmt: skip
        try:
            added = msgspec.structs.replace(added_event(st, fields, branches=branches), actor=actor)
        except UsageError:
            continue
        batch: list[Event] = [added]
        batch += [ev.TaskCancelled(actor=actor, task=t, reason=f"merged into {added.task} by the planner") for t in ids]
        for e in batch:
            st = fold(st, [(e, st.offset)])
        evs += batch
    return evs


def parse_rescope(text: str) -> dict[str, Any] | None:
    """`RESCOPE: {"prompt": …, "title": …, "paths": […], "reason": …}`: the task rewritten."""
    found = [o for o in _objects(RESCOPE_LINE, text) if isinstance(o.get("prompt"), str) and o["prompt"].strip()]
    return found[-1] if found else None


def rescope_events(state: State, target: Task | None, spec: dict[str, Any] | None, actor: str) -> list[Event]:
    """The blocked task rewritten by the planner and back in the queue (it keeps its history)."""
    if target is None or spec is None:
        return []
    current = state.tasks.get(target.id)
    if current is None or current.state != TaskState.BLOCKED:
        return []
    paths = tuple(p for p in spec.get("paths") or () if isinstance(p, str))
    return [ev.TaskRescoped(actor=actor, task=target.id, title=str(spec.get("title") or ""), prompt=spec["prompt"],
                            paths=paths, reason=str(spec.get("reason") or "")[:300])]  # fmt: skip


def parse_advice(text: str) -> tuple[int, str] | None:
    """The planner's `CONCURRENCY: n — reason` (the last one, if it wrote several), or None."""
    found = ADVICE_LINE.findall(text)
    if not found:
        return None
    n, reason = found[-1]
    return int(n), reason[:200]


def advice_events(state: State, advice: tuple[int, str] | None, slaves: int, actor: str) -> list[Event]:
    """The newest planner answer's advice stands: a new one replaces it, an answer without one
    lifts it. The planner may only go lower: an advice of `slaves` or more is not recorded."""
    if advice is not None and 1 <= advice[0] < slaves:
        if state.caps.get("planner") == advice:
            return []
        return [ev.SchedulerCapped(actor=actor, source="planner", cap=advice[0], reason=advice[1])]
    return [ev.SchedulerCapped(actor=actor, source="planner", cap=0)] if "planner" in state.caps else []


def new_task_events(
    state: State, specs: list[dict[str, Any]], parent: Task | None, actor: str, branches: Branches = DEFAULT_BRANCHES
) -> list[Event]:
    """task.added for each spec (children of `parent`, if splitting), then the split itself."""
    evs: list[Event] = []
    ids: list[str] = []
    st = state
    gone = (TaskState.CANCELLED, TaskState.SPLIT)
    existing = {t.title for t in state.tasks.values() if t.state not in gone}
    existing.update(a.title for a in state.archive.entries.values() if a.state not in gone)
    for n, spec in enumerate(specs, 1):
        if spec["title"] in existing and parent is None:
            continue  # the planner saw it in the task list already
        fields = {
            "id": f"{parent.id}.{n}" if parent else None,
            "title": spec["title"],
            "prompt": spec.get("prompt") or spec["title"],
            "description": spec.get("description") or "",
            "paths": spec.get("paths") or [],
            "priority": spec.get("priority") if isinstance(spec.get("priority"), int) else 0,
            "depends_on": [d for d in spec.get("depends_on") or [] if st.known(d)],
            "tags": ["planned"],
            "parent": parent.id if parent else None,
        }
        try:
            added = msgspec.structs.replace(added_event(st, fields, branches=branches), actor=actor)
        except UsageError:
            continue  # the planner wrote a task clanker can't make (a list that is not one, …)
        evs.append(added)
        ids.append(added.task)
        st = fold(st, [(added, st.offset)])
    if (
        parent is not None
        and ids
        and state.tasks[parent.id].state in (TaskState.BLOCKED, TaskState.READY, TaskState.REWORK)
    ):
        evs.append(ev.TaskSplit(actor=actor, task=parent.id, children=tuple(ids)))
    return evs


def run_rollup(ctx: JobContext, request: str, week: str) -> None:
    """The planner writes a closed week's rollup; when its answer is not one (or it failed), the
    summariser's is written instead, and said — a week is never left without one."""
    agent = ctx.cfg.planner_agent
    assert agent is not None
    ctx.say(f"▶ planner: roll up {week}")
    prepare_worktree(ctx)
    git.checkout_detached(ctx.worktree, ctx.main)  # it may look at main as it is
    ctx.heart.update(job="plan", task=None, phase="planner agent")
    st = ctx.store.state()
    notes = rollup.of_week(history_notes(ctx.paths), week)
    manifest = ctx.paths.prompts / f"rollup-{week}-context.json"
    prompt = rollup_prompt(ctx.cfg, st, week, notes, manifest_to=manifest)
    res = ctx.run_agent_settled(agent, "planner", f"rollup-{week}", st.events, prompt)
    if res is None:
        stop = ctx.held or "the slave was asked to stop"
        ctx.store.append(ev.PlanReleased(actor=ctx.sid, slave=ctx.sid, request=request, reason=stop))
        return
    who = " ".join(x for x in (agent.kind, res.result.model or agent.model) if x)
    body = rollup.from_planner(week, res.result.text, who, len(notes)) if res.outcome == Outcome.OK else None
    why = "" if body else (f"the planner failed: {res.result.error[:200]}" if res.outcome != Outcome.OK
                           else "the planner's answer had none of the rollup's sections")  # fmt: skip
    rollup.save(ctx.paths, week, body or rollup.text(week, notes, ctx.store.state()))
    by = "planner" if body else "summariser"
    failed = res.result.error[:300] if res.outcome != Outcome.OK else ""
    risk = [ev.Risk(actor=ctx.sid, kind="planner", message=f"planner failed: {failed[:200]}")] if failed else []
    done = ev.PlanDone(actor=ctx.sid, slave=ctx.sid, request=request, error=failed)
    ctx.store.append(ev.RolledUp(actor=ctx.sid, week=week, by=by, notes=len(notes), why=why), *risk, done)
    ctx.say(f"  ✓ rollup of {week} written by the {by}" + (f" ({why})" if why else ""))
    idle(ctx)


def run_plan(ctx: JobContext, request: str) -> None:
    agent = ctx.cfg.planner_agent
    assert agent is not None
    week = rollup.week_asked(request)
    if week is not None:
        run_rollup(ctx, request, week)
        return
    prepare_worktree(ctx)
    git.checkout_detached(ctx.worktree, ctx.main)  # the planner reads main as it is
    st = ctx.store.state()
    target = st.tasks.get(request) if request and request != REVIEW else None
    review = request == REVIEW
    what = f"split {target.id}" if target else "compare the plan with main" if review else "plan from the docs"
    ctx.say(f"▶ planner: {what}")
    ctx.heart.update(job="plan", task=target.id if target else None, phase="planner agent")
    run_id = target.id if target else "plan"
    manifest = ctx.paths.prompts / f"{run_id}-planner-context.json"
    prompt = planner_prompt(ctx.cfg, ctx.paths, st, target, manifest_to=manifest, review=review)
    fingerprint = docs_fingerprint(ctx.cfg)
    res = ctx.run_agent_settled(agent, "planner", run_id, st.events, prompt)
    if res is None:
        stop = ctx.held or "the slave was asked to stop"
        ctx.store.append(ev.PlanReleased(actor=ctx.sid, slave=ctx.sid, request=request, reason=stop))
        return
    if res.outcome != Outcome.OK:
        ctx.store.append(
            ev.PlanDone(actor=ctx.sid, slave=ctx.sid, request=request, error=res.result.error[:300]),
            ev.Risk(actor=ctx.sid, kind="planner", message=f"planner failed: {res.result.error[:200]}"),
        )
        return
    specs = parse_tasks(res.result.text)
    advice = parse_advice(res.result.text)
    rescope = parse_rescope(res.result.text)
    merges = parse_merges(res.result.text)

    def decide(state: State) -> list[Event]:
        target_task = state.tasks.get(request) if request else None
        evs = rescope_events(state, target_task, rescope, ctx.sid)
        if not evs:  # rewritten, or else split (a task is one or the other)
            evs = new_task_events(state, specs, target_task, ctx.sid, Branches.of(ctx.cfg))
        evs += merge_events(fold(state, [(e, state.offset) for e in evs]), merges, ctx.sid, Branches.of(ctx.cfg))
        evs += advice_events(state, advice, ctx.cfg.slaves, ctx.sid)
        added = tuple(e.task for e in evs if isinstance(e, ev.TaskAdded))
        if review or not request:  # a plan made from the docs, or compared with main, is a review
            evs.append(ev.PlanReviewed(actor=ctx.sid, mainlined=state.mainlined, docs=fingerprint))
        return [*evs, ev.PlanDone(actor=ctx.sid, slave=ctx.sid, request=request, added=added)]

    evs = ctx.store.transact(decide)
    added = [e.task for e in evs if isinstance(e, ev.TaskAdded)]
    ctx.say(f"  ✓ planner added {len(added)} task(s){': ' + ', '.join(added) if added else ''}")
    if advice is not None and advice[0] >= ctx.cfg.slaves:
        ctx.say(f"  planner advised {advice[0]} agents at once: not below slaves ({ctx.cfg.slaves}), so not taken")
    idle(ctx)


KIND = JobKind(
    "plan",
    claim=lambda job, sid, _key: [ev.PlanClaimed(actor=sid, slave=sid, request=job.task)],
    run=lambda ctx, job: run_plan(ctx, job.task),
    on_error=release_all,
)
