"""The planner's context pack: never over its cap, always the newest rollup and the task's own
history first, then what bears on the work, with a manifest of every note and why."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from clanker.jobs.contextpack import Note, pack

texts = st.text(alphabet="abcdefghij klmnop\n", min_size=0, max_size=400)
notes_st = st.lists(
    st.builds(
        Note,
        key=st.uuids().map(str),
        task=st.sampled_from(["", "T1", "T2", "T3"]),
        text=texts,
        mtime=st.floats(min_value=0, max_value=1e6),
        paths=st.lists(st.sampled_from(["src/a.py", "src/b.py", "docs/x.md", "lib/c.py"]), max_size=2).map(tuple),
        rollup=st.booleans(),
    ),
    max_size=25,
    unique_by=lambda n: n.key,
)


@settings(max_examples=300, deadline=None)
@given(notes=notes_st, limit=st.integers(min_value=0, max_value=3000), task=st.sampled_from([None, "T1", "T2"]))
def test_the_pack_is_never_over_its_cap_and_puts_first_what_must_be_there(
    notes: list[Note], limit: int, task: str | None
) -> None:
    text, manifest = pack(notes, limit, task=task, paths=("src/a.py",), about="fix the login form")
    assert len(text) <= limit
    assert sorted(e.key for e in manifest) == sorted(n.key for n in notes)  # every note accounted for
    newest = max((n for n in notes if n.rollup), key=lambda n: n.mtime, default=None)
    order = [e.key for e in manifest]
    if newest is not None and limit > 2:
        first = next(e for e in manifest if e.key == newest.key)
        assert first.included and order[0] == newest.key  # the newest rollup is always in, first
    if task is not None and limit >= 200 + sum(len(n.text) + 2 for n in notes if n.task == task or n.rollup):
        for n in notes:
            if n.task == task:
                assert next(e for e in manifest if e.key == n.key).included  # the task's own history
    for e in manifest:
        assert e.why  # in or out, it says why


def test_relevant_notes_beat_recent_ones_and_the_manifest_says_so() -> None:
    notes = [
        Note("T9/work-1", "T9", "touched the login form", 100.0, ("src/login.py",)),
        Note("T8/work-1", "T8", "renamed the docs theme", 300.0, ("docs/theme.css",)),
        Note("T7/work-1", "T7", "login form validation hazards", 200.0, ("lib/forms.py",)),
        Note("rollups/2026-W48", "", "week 48: auth landed", 50.0, (), rollup=True),
        Note("T1/work-1", "T1", "own attempt: failed on the form", 10.0, ("src/login.py",)),
    ]
    text, manifest = pack(notes, 110, task="T1", paths=("src/login.py",), about="login form")
    why = {e.key: (e.included, e.why) for e in manifest}
    assert why["rollups/2026-W48"] == (True, "the newest rollup")
    assert why["T1/work-1"] == (True, "the task's own history")
    assert why["T9/work-1"] == (True, "touched src, which the work touches")
    assert why["T7/work-1"][0] and why["T7/work-1"][1].startswith("shares form, login")
    assert why["T8/work-1"] == (False, "recent; no room left under 110 characters")
    assert text.startswith("week 48") and len(text) <= 110


def test_clanker_history_reads_the_notes_by_task_and_week(tmp_path: Path) -> None:
    import json

    from clanker.jobs import history as notes
    from clanker.jobs.rollup import week_of
    from clanker.state.paths import Paths

    from .helpers import clanker, make_repo

    repo = make_repo(tmp_path / "r", "slaves: 2\n")
    paths = Paths(repo)
    notes.write(paths, "T1", "work-1", {"Outcome": "gate passed; agent: ok", "Files touched": "- src/a.py"})
    notes.write(paths, "T2", "work-1", {"Outcome": "gate failed: `pytest`"})
    lines = clanker(repo, "history").stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["T1/work-1", "T2/work-1"]
    assert any(line.endswith("gate failed: `pytest`") for line in lines)
    one = clanker(repo, "history", "T1").stdout
    assert one.startswith("# T1 · work-1") and "## Files touched\n- src/a.py" in one
    data = json.loads(clanker(repo, "history", "--json", "--week", week_of(time.time())).stdout)
    assert {d["key"] for d in data} == {"T1/work-1", "T2/work-1"}
    assert next(d for d in data if d["key"] == "T1/work-1")["files"] == ["src/a.py"]
    assert json.loads(clanker(repo, "history", "--json", "--week", "2001-W01").stdout) == []
    bad = clanker(repo, "history", "--week", "last week")
    assert bad.returncode == 2 and "ISO week like 2026-W48" in bad.stderr
    missing = clanker(repo, "history", "T9")
    assert missing.returncode == 2 and "no history for 'T9'" in missing.stderr


def test_an_attempt_s_summary_block_and_facts_are_read_as_the_seed_names_them() -> None:
    from clanker.jobs.history import commands_in, summary_block, test_results

    text = """I changed the parser.
SUMMARY:
- decisions: kept the old API, because callers depend on it
- Assumptions: inputs are UTF-8
- hazards: the cache must be cleared after a schema change
- todo: port the CLI
- todo: remove the shim
- missing tests: the error path
FOLLOW-UP: port the CLI
"""
    assert summary_block(text) == {
        "Decisions and rationale": "- kept the old API, because callers depend on it",
        "Assumptions": "- inputs are UTF-8",
        "Errors, fixes and known hazards": "- the cache must be cleared after a schema change",
        "TODOs and follow-ups": "- port the CLI\n- remove the shim",
        "Missing tests": "- the error path",
    }
    assert summary_block("no block here") is None
    out = "FAILED tests/test_a.py::test_x - assert 1 == 2\nERROR tests/test_b.py\n=== 2 failed, 10 passed in 1.2s ==="
    assert test_results(out) == "- 2 failed, 10 passed\n- failing: tests/test_a.py::test_x\n- failing: tests/test_b.py"
    assert test_results("all good") == ""
    log = "# worker T1\n  │ ✎ write a.py\n  │ $ pytest -q\n  │ $ git status\n  │ $ pytest -q\n"
    assert commands_in(log) == ["pytest -q", "git status"]


def test_commands_run_say_how_each_ended_the_agent_s_as_its_stream_said() -> None:
    from clanker.agents.base import Ran
    from clanker.jobs.history import commands_run
    from clanker.project.gate import GateResult

    agent = [Ran("pytest -q", 1), Ran("make", None), Ran("pytest -q", 1), Ran("pytest -q", 0)]
    gate = ("ruff check .", "pytest -q", "mypy")
    passed = GateResult(True, "$ ruff check .\n$ pytest -q\n3 passed\n$ mypy\n", 1.0)
    assert commands_run(agent, gate, passed).splitlines() == [
        "- `pytest -q` (agent, exit 1)",
        "- `make` (agent, exit code not reported)",
        "- `pytest -q` (agent, exit 0)",
        "- `ruff check .` (gate, exit 0)",
        "- `pytest -q` (gate, exit 0)",
        "- `mypy` (gate, exit 0)",
    ]
    failed = GateResult(False, "$ ruff check .\n$ pytest -q\n1 failed\n(exit 2)\n", 1.0, failed="pytest -q")
    assert commands_run([], gate, failed).splitlines() == [
        "- `ruff check .` (gate, exit 0)",
        "- `pytest -q` (gate, exit 2)",
        "- `mypy` (gate, not run)",
    ]
    slow = GateResult(False, "$ ruff check .\n(timed out after 60s)\n", 60.0, failed="ruff check .")
    assert commands_run([], gate, slow).splitlines()[0] == "- `ruff check .` (gate, timed out)"


def test_a_closed_week_is_rolled_up_and_its_notes_leave_the_planners_window(tmp_path: Path) -> None:
    import os

    from clanker.config import Config
    from clanker.jobs import history as notes
    from clanker.jobs import rollup
    from clanker.jobs.prompts import history_notes, planner_prompt
    from clanker.state import events as ev
    from clanker.state.fold import fold
    from clanker.state.model import State
    from clanker.state.paths import Paths

    paths = Paths(tmp_path)
    last_week = time.time() - 8 * 86400
    hazard = {"Errors, fixes and known hazards": "- the cache must be cleared after a migration"}
    for task, extra in (("T1", {"Decisions and rationale": "- kept the old API, callers need it"}),
                        ("T2", {"TODOs and follow-ups": "- port the CLI"})):  # fmt: skip
        path = notes.write(paths, task, "work-1", {"Outcome": "gate passed", **hazard, **extra})
        os.utime(path, (last_week, last_week))
    fresh = notes.write(paths, "T3", "work-1", {"Outcome": "gate passed", "Agent summary": "this week's work"})
    evs: list[ev.Event] = [ev.TaskAdded(actor="cli", task=t, title=f"title {t}") for t in ("T1", "T2", "T3")]
    evs += [ev.TaskClaimed(actor="c1", task="T1", slave="c1"), ev.TaskSubmitted(actor="c1", task="T1", slave="c1"),
            ev.JudgeClaimed(actor="c2", task="T1", slave="c2"), ev.Verdict(actor="c2", task="T1", slave="c2",
            verdict="done"), ev.LandingClaimed(actor="c2", task="T1", slave="c2"),
            ev.Mainlined(actor="c2", task="T1", slave="c2", sha="a" * 40)]  # fmt: skip
    st = fold(State(), [(e, n) for n, e in enumerate(evs, 1)])
    assert rollup.due(history_notes(paths), time.time()) == [rollup.week_of(last_week)]
    rollup.write_closed(paths, history_notes(paths), st, time.time(), planner=False)  # the controller's step
    prompt = planner_prompt(Config(repo=tmp_path), paths, st, None)
    week = rollup.week_of(last_week)
    text = (paths.history / "rollups" / f"{week}.md").read_text()
    assert text.startswith(f"# Rollup {week}") and "## Landed\n- T1: title T1" in text
    assert "## Still open\n- T2 (ready)" in text
    assert "- the cache must be cleared after a migration (×2)" in text  # recurring
    assert "## TODOs and follow-ups\n- port the CLI" in text and "- kept the old API, callers need it" in text
    assert f"# Rollup {week}" in prompt and "this week's work" in prompt  # the rollup, and this week's notes
    assert "# T1 · work-1" not in prompt  # a rolled-up note leaves the window (it stays on disk)
    assert (paths.history / "T1" / "work-1.md").exists() and fresh.exists()
    assert rollup.due(history_notes(paths), time.time()) == []  # written once


def test_the_details_view_shows_the_seed_fields_of_a_task_s_newest_note(tmp_path: Path) -> None:
    from clanker.fleet.rows import SlaveRow
    from clanker.jobs import history as notes
    from clanker.state import events as ev
    from clanker.state.fold import fold
    from clanker.state.model import State
    from clanker.state.paths import Paths
    from clanker.tui.overlays import details_lines

    paths = Paths(tmp_path)
    notes.write(paths, "T1", "work-1", {"Outcome": "gate failed", "Agent summary": "long text " * 50})
    time.sleep(0.01)
    notes.write(paths, "T1", "work-2", {"Outcome": "gate passed", "Assumptions": "- inputs are UTF-8",
                                        "Agent summary": "long text"})  # fmt: skip
    st = fold(State(), [(ev.TaskAdded(actor="cli", task="T1", title="t"), 1),
                        (ev.TaskClaimed(actor="c1", task="T1", slave="c1"), 2)])  # fmt: skip
    row = SlaveRow("c1", "working", "T1", 1.0, "%1", "agent")
    lines = details_lines(st, row, None, paths)
    at = lines.index("latest note: work-2")
    assert lines[at + 1 :] == ["## Outcome", "gate passed", "## Assumptions", "- inputs are UTF-8"]
    assert "latest note" not in " ".join(details_lines(st, row, None))  # no paths: the task alone


def test_who_rolls_up_which_week() -> None:
    from clanker.jobs.rollup import split

    weeks = ["2026-W45", "2026-W46", "2026-W47"]
    assert split(weeks, planner=True, pending=set()) == ("2026-W47", ["2026-W45", "2026-W46"])
    assert split(weeks, planner=False, pending=set()) == (None, weeks)
    assert split(weeks, planner=True, pending={"2026-W47"}) == (None, ["2026-W45", "2026-W46"])
    assert split(["2026-W48"], planner=True, pending={"2026-W47"}) == ("2026-W48", [])
    assert split([], planner=True, pending=set()) == (None, [])


def test_the_planner_writes_a_closed_week_s_rollup_or_the_summariser_stands_in(tmp_path: Path) -> None:
    """The plan job for `rollup:<week>` runs the (fake) planner agent on the week's notes with the
    summariser's facts; an answer without the rollup's sections is replaced by the summariser's."""
    import os

    from clanker.config import load
    from clanker.jobs import history as notes
    from clanker.jobs import rollup
    from clanker.jobs.context import JobContext
    from clanker.jobs.plan import run_plan
    from clanker.jobs.prompts import history_notes
    from clanker.state import events as ev
    from clanker.state.heartbeat import Heart
    from clanker.state.paths import Paths, prepare
    from clanker.state.store import Store
    from clanker.system import git as gitw

    from .helpers import events, make_repo

    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    cfg = load(repo)
    prepare(cfg)
    paths = Paths(repo)
    ctx = JobContext(cfg=cfg, paths=paths, store=Store(paths, "c1"), sid="c1", worktree=paths.worktree("c1"),
                     heart=Heart(paths, "c1", 60), say=lambda _s: None)  # fmt: skip
    gitw.ensure_worktree(repo, ctx.worktree, "main")
    one, two = time.time() - 8 * 86400, time.time() - 15 * 86400
    for task, when, extra in (("T1", one, "- kept the API"), ("T2", two, "fake-rollup: I have nothing to add")):
        ctx.store.append(ev.TaskAdded(actor="cli", task=task, title=f"title {task}"))
        note = notes.write(paths, task, "work-1", {"Outcome": "gate passed", "Decisions and rationale": extra})
        os.utime(note, (when, when))
    last, before = rollup.week_of(one), rollup.week_of(two)

    for week in (last, before):
        request = rollup.ASK + week
        ctx.store.append(ev.PlanRequested(actor="ctl", request=request),
                         ev.PlanClaimed(actor="c1", slave="c1", request=request))  # fmt: skip
        run_plan(ctx, request)
        assert ctx.store.state().plan_request is None and not ctx.store.state().plan_requests

    by_planner = (paths.history / "rollups" / f"{last}.md").read_text()
    assert by_planner.startswith(f"# Rollup {last}\n\nWritten by the planner (fake") and "from 1 note." in by_planner
    assert "## Decisions still in force\n- the fake planner's: keep it" in by_planner
    prompt = next(paths.prompts.glob(f"rollup-{last}-planner-*.md")).read_text()
    assert prompt.startswith("CLANKER-ROLE: planner") and "- kept the API" in prompt and "T2" not in prompt
    stood_in = (paths.history / "rollups" / f"{before}.md").read_text()
    assert stood_in == f"# Rollup {before}\n\n1 note about 1 task.\n\n## Still open\n- T2 (ready)\n"
    rolled = [(e["week"], e["by"], e.get("why", "")) for e in events(repo) if e["type"] == "history.rolled_up"]
    why = "the planner's answer had none of the rollup's sections"
    assert rolled == [(last, "planner", ""), (before, "summariser", why)]
    assert rollup.due(history_notes(paths), time.time()) == []
