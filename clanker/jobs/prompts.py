"""Built-in prompts for each role. The first line is always the `CLANKER-ROLE:` marker.

A template file (`prompts.worker`, `prompts.judge` in clanker.yaml) replaces the built-in text;
its placeholders are config.model.TEMPLATE_FIELDS: {{task.id}}, {{task.title}}, {{task.prompt}}
(flocks' {{prompt}} too), {{task.description}}, {{task.branch}}, {{task.summary}}; worker
templates also {{prior_attempts}}, {{judge_notes}}, {{conflicts}}, {{history}}; judge templates
{{diff}} and {{gate}}; planner templates {{split}}, {{docs}}, {{tasks}}, {{history}}, {{slaves}}.
An unknown one is refused when clanker.yaml is read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from ..config import Config
from ..errors import UsageError
from ..state import atomic
from ..state.model import State, Task, TaskState
from ..state.paths import Paths
from . import contextpack, rollup

WORKER = """CLANKER-ROLE: worker
You are a coding agent working on task {{task.id}}: {{task.title}}
You are in a git worktree on branch {{task.branch}}; change files here only. Do not push, do not switch
branches. clanker commits what you leave and runs the gate (the project's checks) afterwards.

## Task
{{task.prompt}}
{{task.description}}
{{prior_attempts}}{{judge_notes}}{{conflicts}}{{history}}
When you are done, end with a short summary of what you changed and why, then this block (one
line per item, leave out what has none):
SUMMARY:
- decisions: what you chose, and why
- assumptions: what you took for granted
- hazards: errors you met and how you fixed them, and traps for whoever comes next
- todo: what is left to do
- missing tests: what should be tested and is not
If you see work that should follow once this task is merged, add one line per task:
`FOLLOW-UP: <title>`."""

JUDGE = """CLANKER-ROLE: judge
You are the judge for task {{task.id}}: {{task.title}}, built by another agent. Verify it independently:
does the change do what the task asks, correctly, without breaking anything? The gate already passed.

## Task
{{task.prompt}}
{{task.description}}

## Author's summary
{{task.summary}}

## Gate output (tail)
{{gate}}

## Diff against main
{{diff}}

End your answer with one last line: `VERDICT: done`, `VERDICT: rework <reasons>` or
`VERDICT: blocked <reason>`."""

PLANNER = """CLANKER-ROLE: planner
You are the planner for this repository. Turn the plan into small, independent tasks that coding
agents can each finish in one session and a judge can verify; give each the top-level directories
it will touch (`paths`), so tasks that would collide are not run at the same time.
{{split}}
## Plan documents
{{docs}}

## Current tasks
{{tasks}}
{{history}}
Answer with one line per new task, exactly in this form (JSON on one line):
TASK: {"title": "…", "prompt": "what to do, precisely", "paths": ["dir"], "priority": 0, "depends_on": []}
Don't repeat tasks that exist already. Tasks waiting in the queue that overlap so much they
should be one may be merged: `MERGE: {"tasks": ["T3", "T4"], "title": "…", "prompt": "…"}`.
If nothing needs doing, answer NO TASKS.
If fewer agents at once would do better for now (the tasks overlap, or one area is fragile), add a
line `CONCURRENCY: n — why` with n below {{slaves}}; it stands until your next answer."""

_FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def render(template: str, task: Task, **extra: str) -> str:
    values = {
        "task.id": task.id,
        "task.title": task.title,
        "task.prompt": task.prompt,
        "task.description": task.description,
        "task.branch": task.branch,
        "task.summary": task.summary or "(none)",
        "prompt": task.prompt,  # flocks' name for it
        **extra,
    }

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:  # a user's template was checked when clanker.yaml was read
            raise UsageError(f"prompt template: unknown field {{{{{name}}}}}")
        return values[name]

    return _FIELD.sub(fill, template)


MARKER = re.compile(r"^CLANKER-ROLE: (worker|judge|planner)\s*$")
HISTORY_CHARS = 3000


def load_template(path: Path | None, role: str, default: str) -> str:
    """The user's template for `role`, or the built-in one. The marker line is always first."""
    if path is None:
        return default
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        problem = f"prompt template {path}: can't read it ({e.strerror})"
        raise UsageError(f"{problem}; fix prompts.{role} in clanker.yaml") from None
    first = text.splitlines()[0] if text.strip() else ""
    if not MARKER.match(first):
        text = f"CLANKER-ROLE: {role}\n{text}"
    return text


def history_of(paths: Paths | None, task: Task, limit: int = HISTORY_CHARS) -> str:
    """The newest summaries of this task's earlier attempts and judgements, at most `limit` chars."""
    if paths is None:
        return ""
    folder = paths.history / task.id
    if not folder.is_dir():
        return ""
    notes = sorted(folder.glob("*.md"), key=lambda p: p.stat().st_mtime, reverse=True)
    out: list[str] = []
    size = 0
    for note in notes:
        text = note.read_text(encoding="utf-8", errors="replace").strip()
        if size + len(text) > limit:
            break
        out.insert(0, text)
        size += len(text)
    return ("\n## History of this task\n" + "\n\n".join(out) + "\n") if out else ""


def worker_prompt(
    task: Task, conflicts: list[str] | None = None, template: Path | None = None, paths: Paths | None = None
) -> str:
    prior = ""
    if task.errors:
        lines = "\n".join(f"- attempt {i}: {e}" for i, e in enumerate(task.errors[-5:], 1))
        prior = f"\n## Earlier attempts failed\n{lines}\nAvoid repeating these mistakes.\n"
    notes = ""
    if task.judge_rounds and task.reason:
        notes = f"\n## The judge asked for rework\n{task.reason}\n"
    conflict = ""
    if conflicts:
        conflict = (
            "\n## Merge conflicts to resolve\nmain was merged into your branch and these files have conflict "
            "markers: " + ", ".join(conflicts) + "\nResolve them, keeping both intents.\n"
        )
    body = load_template(template, "worker", WORKER)
    return render(
        body, task, prior_attempts=prior, judge_notes=notes, conflicts=conflict, history=history_of(paths, task)
    )


def history_notes(paths: Paths) -> list[contextpack.Note]:
    """Every history note on disk, with the files it says it touched."""
    out = []
    for f in paths.history.glob("*/*.md"):
        text = f.read_text(encoding="utf-8", errors="replace")
        touched = re.search(r"^## Files touched\n(.*?)(?:\n## |\Z)", text, re.S | re.M)
        files = tuple(line[2:].strip() for line in (touched.group(1) if touched else "").splitlines()
                      if line.startswith("- "))  # fmt: skip
        rollup = f.parent.name == "rollups"
        out.append(contextpack.Note(f"{f.parent.name}/{f.stem}", "" if rollup else f.parent.name, text,
                                    f.stat().st_mtime, files, rollup))  # fmt: skip
    return out


def planner_prompt(
    cfg: Config, paths: Paths, state: State, target: Task | None, manifest_to: Path | None = None, review: bool = False
) -> str:
    """The planner's bounded context pack: plan docs, current tasks, and the history that bears
    on the work (contextpack: the task's own and the newest rollup first, then by relevance and
    recency); `manifest_to`: where to write what went in and what was left out, and why."""
    budget = cfg.planner_max_chars
    docs = []
    for name in cfg.planner_docs:
        try:
            docs.append(f"### {name}\n" + (cfg.repo / name).read_text(encoding="utf-8"))
        except OSError as e:
            docs.append(f"### {name}\n(can't read it: {e.strerror})")
    doc_text = _cut("\n\n".join(docs) or "(none configured: planner.docs in clanker.yaml)", budget // 2)
    rows = [f"- {t.id} [{t.state}] {t.title}" for t in state.tasks.values()][-200:]
    task_text = _cut("\n".join(rows) or "(none yet)", budget // 4)
    about = " ".join([target.title, target.prompt] if target else [doc_text[:4000]])
    notes = history_notes(paths)  # closed weeks' rollups are the controller's to see to (fleet/controller.py)
    upto = rollup.covered(notes)
    own = target.id if target else None
    # Rolled up: a week's notes leave the window, its rollup speaks for them (a task's own stay).
    notes = [n for n in notes if n.rollup or n.task == own or upto is None or rollup.week_of(n.mtime) > upto]
    hist, manifest = contextpack.pack(
        notes, budget // 4, task=own,
        paths=(*target.paths, *target.touched) if target else (), about=about,
    )  # fmt: skip
    _save_manifest(manifest_to, manifest)
    split = ""
    if target is not None:
        split = (
            f"\n## Task to split\n{target.id} ({target.title}) is {target.state}: {target.reason}\n"
            f"Its prompt:\n{target.prompt}\n\nReplace it with smaller tasks that together do the same, or, if it "
            "only needs saying differently, rewrite it instead with one line\n"
            'RESCOPE: {"prompt": "…", "title": "…", "paths": ["dir"], "reason": "why this will work"}\n'
        )
    if review:
        done = sorted((t for t in state.tasks.values() if t.state == TaskState.DONE), key=lambda t: t.updated)
        recent = done[-max(1, state.mainlined - state.reviewed[0]) :][-30:]
        landed = "\n".join(f"- {t.id}: {t.title}" + (f" ({t.sha[:8]})" if t.sha else "") for t in recent)
        split = (
            "\n## Review: does main still do what the plan says?\nThe plan documents and what has landed since "
            "the last review (below) may have drifted apart. Where main does not do what the plan says, or the plan "
            "asks for more than main does, answer TASK lines for the follow-ups needed. If they agree, answer NO "
            f"TASKS.\n\n## Landed since the last review\n{landed or '(nothing yet)'}\n"
        )
    body = load_template(cfg.prompt_templates.get("planner"), "planner", PLANNER)
    fake = Task(target.id if target else "plan", target.title if target else "plan")
    history_text = f"\n## Recent history\n{hist}\n" if hist else ""
    return render(body, fake, split=split, docs=doc_text, tasks=task_text, history=history_text, slaves=str(cfg.slaves))


ROLLUP = """CLANKER-ROLE: planner
You are the planner. The ISO week {week} has closed. Sum up its history notes for whoever plans
next: the notes leave the planning context once this rollup covers them, so what is not here is
forgotten. Say only what the notes and the facts below support.

## Week to roll up
{week}: {count} notes about {tasks} tasks.

## Facts clanker gathered
{draft}

## The week's notes
{notes}

Answer with these sections, each a list of `- ` lines (leave out a section with nothing in it):
## Landed
(what landed, one line per task with what it changed)
## Recurring hazards
(errors and traps met more than once, or likely to be met again, with the fix)
## Open TODOs
(what is left to do, and follow-ups not yet done)
## Decisions still in force
(choices later work must respect, with why)
Write no TASK lines: this answer is a summary, not a plan."""


def rollup_prompt(
    cfg: Config, state: State, week: str, notes: list[contextpack.Note], manifest_to: Path | None = None
) -> str:
    """The planner's prompt to roll up a closed week from its `notes`: the summariser's draft as
    the facts, and the notes, newest first, under `planner.max_chars`."""
    draft = rollup.text(week, notes, state)
    budget = max(1000, cfg.planner_max_chars - len(ROLLUP) - len(draft))
    packed, manifest = contextpack.pack(notes, budget)
    _save_manifest(manifest_to, manifest)
    tasks = len({n.task for n in notes})
    return ROLLUP.format(week=week, count=len(notes), tasks=tasks, draft=draft, notes=packed or "(none)")


def _save_manifest(path: Path | None, manifest: list[contextpack.Entry]) -> None:
    """What a planning run's context pack took in and left out, and why (when asked where)."""
    if path is not None:
        atomic.write_text(path, json.dumps([msgspec.structs.asdict(e) for e in manifest], indent=1) + "\n")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 30] + "\n… (cut to fit the context pack)"


def judge_prompt(task: Task, diff: str, gate_output: str, template: Path | None = None) -> str:
    body = load_template(template, "judge", JUDGE)
    return render(body, task, diff=diff or "(empty)", gate=gate_output.strip() or "(no output)")
