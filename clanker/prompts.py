"""Built-in prompts for each role. The first line is always the `CLANKER-ROLE:` marker."""

from __future__ import annotations

import re

from .model import Task

WORKER = """CLANKER-ROLE: worker
You are a coding agent working on task {{task.id}}: {{task.title}}
You are in a git worktree on branch {{task.branch}}; change files here only. Do not push, do not switch
branches. clanker commits what you leave and runs the gate (the project's checks) afterwards.

## Task
{{task.prompt}}
{{task.description}}
{{prior_attempts}}{{judge_notes}}{{conflicts}}
When you are done, end with a short summary of what you changed and why."""

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

_FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def render(template: str, task: Task, **extra: str) -> str:
    values = {
        "task.id": task.id,
        "task.title": task.title,
        "task.prompt": task.prompt,
        "task.description": task.description,
        "task.branch": task.branch,
        "task.summary": task.summary or "(none)",
        **extra,
    }
    return _FIELD.sub(lambda m: values.get(m.group(1), ""), template)


def worker_prompt(task: Task, conflicts: list[str] | None = None) -> str:
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
    return render(WORKER, task, prior_attempts=prior, judge_notes=notes, conflicts=conflict)


def judge_prompt(task: Task, diff: str, gate_output: str) -> str:
    return render(JUDGE, task, diff=diff or "(empty)", gate=gate_output.strip() or "(no output)")
