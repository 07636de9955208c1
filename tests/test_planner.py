"""The planner: plan documents become tasks; a task that can't go on is split into smaller ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import clanker, events, git, make_repo, status

pytestmark = pytest.mark.e2e

PLAN = """# Plan
Two small things.
fake-plan: Write the greeting :: fake: write hello.txt hello
fake-plan: Write the farewell :: fake: write bye.txt bye
"""


def repo_with(tmp_path: Path, extra: str = "", files: dict[str, str] | None = None) -> Path:
    config = f"slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - 'true'\n{extra}"
    return make_repo(tmp_path / "r", config, {"README.md": "# r\n", **(files or {})})


def test_the_planner_turns_the_plan_docs_into_tasks_that_land(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path, "planner:\n  docs: [PLAN.md]\n", {"PLAN.md": PLAN})
    asked = clanker(repo, "plan", check=True)
    assert asked.stdout.strip() == "planner asked to plan from the docs"
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = {t["title"]: t for t in status(repo)["tasks"]}
    assert set(tasks) == {"Write the greeting", "Write the farewell"}
    assert all(t["state"] == "done" for t in tasks.values())
    assert git(repo, "show", "main:hello.txt") == "hello" and git(repo, "show", "main:bye.txt") == "bye"
    ran = [e for e in events(repo) if e["type"] == "plan.ran"]
    assert len(ran) == 1 and ran[0]["usage"]["input"] > 0  # the planner's cost is kept, apart from tasks'
    prompt = next((repo / ".clanker" / "prompts").glob("plan-planner-*.md")).read_text()
    assert prompt.startswith("CLANKER-ROLE: planner") and "## Plan documents" in prompt and "Two small things" in prompt
    manifest = json.loads((repo / ".clanker" / "prompts" / "plan-planner-context.json").read_text())
    assert isinstance(manifest, list)  # what history went in, and why (none yet on a first plan)
    # Planning the same docs again adds nothing: the tasks exist.
    clanker(repo, "plan", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90).returncode == 0
    assert len(status(repo)["tasks"]) == 2


def test_a_task_out_of_budget_is_split_by_the_planner(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path)
    prompt = "\n".join(
        [
            "fake: error out_of_budget context window exhausted",
            "fake-plan: First half :: fake: write one.txt 1",
            "fake-plan: Second half :: fake: write two.txt 2",
        ]
    )
    clanker(repo, "task", "add", "Too big for one go", "--prompt", prompt, check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = {t["id"]: t["state"] for t in status(repo)["tasks"]}
    assert states == {"T1": "split", "T1.1": "done", "T1.2": "done"}
    split = next(e for e in events(repo) if e["type"] == "task.split")
    assert split["children"] == ["T1.1", "T1.2"]
    added = [e for e in events(repo) if e["type"] == "task.added" and e["task"].startswith("T1.")]
    assert all(e["parent"] == "T1" and e["tags"] == ["planned"] for e in added)
    assert git(repo, "show", "main:one.txt") == "1" and git(repo, "show", "main:two.txt") == "2"
    manifest = json.loads((repo / ".clanker" / "prompts" / "T1-planner-context.json").read_text())
    own = [e for e in manifest if e["key"].startswith("T1/")]
    assert own and all(e["included"] and e["why"].startswith("the task's own history") for e in own)


def test_the_planners_concurrency_advice_lowers_the_cap_until_its_next_answer(tmp_path: Path, socket_name: str) -> None:
    plan = PLAN + "fake-concurrency: 1 both tasks edit the same module\n"
    slow = "fake: sleep 0.6\\nfake: write {f} {f}"
    plan = plan.replace("fake: write hello.txt hello", slow.format(f="hello.txt"))
    plan = plan.replace("fake: write bye.txt bye", slow.format(f="bye.txt"))
    repo = repo_with(tmp_path, "planner:\n  docs: [PLAN.md]\n", {"PLAN.md": plan})
    clanker(repo, "plan", check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = events(repo)
    (capped,) = [e for e in log if e["type"] == "scheduler.capped"]
    assert (capped["source"], capped["cap"], capped["reason"]) == ("planner", 1, "both tasks edit the same module")
    assert any(e["type"] == "scheduler.targets" and e["cap"] == 1 and e["work"] == 1 for e in log)
    # never two agents at work at once after the advice, though there are two slaves and two tasks
    at_work, most = set(), 0
    for e in log[log.index(capped) :]:
        if e["type"] == "task.claimed":
            at_work.add(e["task"])
        elif e["type"] in ("task.submitted", "task.failed", "task.released"):
            at_work.discard(e["task"])
        most = max(most, len(at_work))
    assert most == 1
    assert status(repo)["scheduler"]["advice"] == [
        {"source": "planner", "cap": 1, "reason": "both tasks edit the same module"}
    ]
    # the next answer without advice lifts it
    (repo / "PLAN.md").write_text(PLAN)
    git(repo, "commit", "-qam", "plan without advice")
    clanker(repo, "plan", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90).returncode == 0
    assert status(repo)["scheduler"]["advice"] == [] and status(repo)["scheduler"]["cap"] == 2
    lifted = [e for e in events(repo) if e["type"] == "scheduler.capped"][-1]
    assert (lifted["source"], lifted["cap"]) == ("planner", 0)


@pytest.mark.parametrize(
    "first",
    ["fake: exit 3 the model refused", "fake: write first.txt try\nfake-judge: rework the approach is wrong"],
    ids=["attempts-used-up", "rework-verdict"],
)
def test_a_blocked_task_is_rescoped_by_the_planner_and_lands(tmp_path: Path, socket_name: str, first: str) -> None:
    """Blocked by using up its attempts, or by the judge's rework verdicts: the planner rewrites it."""
    repo = repo_with(tmp_path, "max_attempts: 1\njudge:\n  max_reworks: 1\n")
    prompt = f"{first}\nfake-rescope: fake: write fixed.txt rescoped"
    clanker(repo, "task", "add", "Said badly", "--prompt", prompt, check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (t,) = status(repo)["tasks"]
    assert t["state"] == "done" and git(repo, "show", "main:fixed.txt") == "rescoped"
    log = events(repo)
    kinds = [e["type"] for e in log if e.get("task") == "T1" or e["type"].startswith("plan.")]
    assert kinds.index("task.blocked") < kinds.index("plan.claimed") < kinds.index("task.rescoped")
    (rescoped,) = [e for e in log if e["type"] == "task.rescoped"]
    assert rescoped["prompt"] == "fake: write fixed.txt rescoped" and rescoped["reason"] == "said more simply"


def test_the_plan_is_compared_with_main_after_landings_or_a_docs_change_and_never_by_the_clock(
    tmp_path: Path, socket_name: str
) -> None:
    repo = repo_with(tmp_path, "planner:\n  docs: [PLAN.md]\n  review_every: 2\n", {"PLAN.md": PLAN})
    clanker(repo, "plan", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120).returncode == 0
    log = events(repo)
    reviews = [e for e in log if e["type"] == "plan.requested" and e["request"] == "review"]
    assert [r["reason"] for r in reviews] == ["2 landings since the plan was last compared with main"]
    assert [e["mainlined"] for e in log if e["type"] == "plan.reviewed"] == [0, 2]
    # Nothing changed since: a run adds no review and spends nothing.
    runs = sum(1 for e in log if e["type"] == "plan.ran")
    clanker(repo, "run", "--until-done", "--timeout", "30", timeout=60)
    assert sum(1 for e in events(repo) if e["type"] == "plan.ran") == runs
    # The plan grows: the review that follows finds what main lacks, and it lands.
    (repo / "PLAN.md").write_text(PLAN + "fake-plan: Write the moral :: fake: write moral.txt be kind\n")
    git(repo, "commit", "-qam", "the plan grows")
    assert clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120).returncode == 0
    reviews = [e for e in events(repo) if e["type"] == "plan.requested" and e["request"] == "review"]
    assert reviews[-1]["reason"] == "the plan documents changed"
    assert git(repo, "show", "main:moral.txt") == "be kind"
    asked = [p.read_text() for p in (repo / ".clanker" / "prompts").glob("plan-planner-*.md")]
    review = [a for a in asked if "## Review: does main still do what the plan says?" in a]
    assert review and "## Landed since the last review\n- T" in review[-1]


def test_the_planner_merges_two_queued_tasks_into_one_that_lands(tmp_path: Path, socket_name: str) -> None:
    plan = "# Plan\nfake-merge: T2,T3 :: Both parts :: fake: write both.txt 23\n"
    repo = repo_with(tmp_path, "planner:\n  docs: [PLAN.md]\n", {"PLAN.md": plan})
    clanker(repo, "task", "add", "Never", check=True)
    clanker(repo, "task", "cancel", "T1", check=True)  # what T2 and T3 wait on: they stay queued
    for title in ("Part one", "Part two"):
        clanker(repo, "task", "add", title, "--depends-on", "T1", check=True)
    clanker(repo, "plan", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120).returncode == 0
    states = {t["id"]: (t["title"], t["state"]) for t in status(repo)["tasks"]}
    assert states["T4"] == ("Both parts", "done") and git(repo, "show", "main:both.txt") == "23"
    assert states["T2"][1] == states["T3"][1] == "cancelled"  # kept, with the reason
    reasons = {e["task"]: e["reason"] for e in events(repo) if e["type"] == "task.cancelled"}
    assert reasons["T2"] == reasons["T3"] == "merged into T4 by the planner"
    assert next(e for e in events(repo) if e["type"] == "task.added" and e["task"] == "T4")["parent"] == "T2"


def test_a_closed_week_is_rolled_up_by_the_planner_once_and_older_ones_by_the_summariser(
    tmp_path: Path, socket_name: str
) -> None:
    import os
    import time

    from clanker.jobs.rollup import week_of

    repo = repo_with(tmp_path)
    history = repo / ".clanker" / "history"
    last, before = time.time() - 8 * 86400, time.time() - 15 * 86400
    for task, when, note in (("T8", last, "- kept the old API"), ("T9", before, "- cache cleared by hand")):
        path = history / task / "work-1.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {task} · work-1\n\n## Outcome\ngate passed\n\n## Decisions and rationale\n{note}\n")
        os.utime(path, (when, when))
    clanker(repo, "task", "add", "Now", "--prompt", "fake: write now.txt now", check=True)
    assert clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120).returncode == 0
    log = events(repo)
    asked = [e["request"] for e in log if e["type"] == "plan.requested"]
    assert asked == [f"rollup:{week_of(last)}"]  # the week that just closed, asked of the planner once
    rolled = {e["week"]: (e["by"], e.get("why", "")) for e in log if e["type"] == "history.rolled_up"}
    assert rolled == {week_of(last): ("planner", ""),
                      week_of(before): ("summariser", "older than the week the planner rolls up")}  # fmt: skip
    text = (history / "rollups" / f"{week_of(last)}.md").read_text()
    assert "Written by the planner (fake" in text and "## Decisions still in force" in text
    assert "- cache cleared by hand" in (history / "rollups" / f"{week_of(before)}.md").read_text()
    assert git(repo, "show", "main:now.txt") == "now"
    # Written once: the next run asks nothing.
    assert clanker(repo, "run", "--until-done", "--timeout", "30", timeout=60).returncode == 0
    assert sum(1 for e in events(repo) if e["type"] == "plan.requested") == 1


def test_plan_command_errors_are_one_line(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    no_docs = clanker(repo, "plan")
    assert no_docs.returncode == 2 and "planner: {docs: [PLAN.md]}" in no_docs.stderr
    assert clanker(repo, "plan", "--split", "T9").stderr.strip() == (
        "clanker: no task 'T9': `clanker task list` shows the ids"
    )
    off = repo_with(tmp_path / "off", "planner:\n  agent: none\n")
    assert "no planner" in clanker(off, "plan").stderr
