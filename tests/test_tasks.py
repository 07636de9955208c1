"""Task commands: add/list/show through the real CLI (no shell anywhere), import, cancel, retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clanker.commands import task as tasks
from clanker.errors import UnknownTask, UsageError
from clanker.state.model import TaskState
from clanker.state.paths import Paths
from clanker.state.store import Store
from tests.helpers import clanker, make_repo

from .helpers import event


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A directory for a store alone (no git needed) for tests that don't run the CLI."""
    path = tmp_path / "bare"
    path.mkdir()
    return path


def log_of(repo: Path) -> bytes:
    path = repo / ".clanker" / "events.log"
    return path.read_bytes() if path.exists() else b""


def one_error_line(proc: Any, code: int = 2) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("clanker: ")
    return str(lines[0])


def list_json(repo: Path) -> list[dict[str, Any]]:
    proc = clanker(repo, "task", "list", "--json", check=True)
    data: list[dict[str, Any]] = json.loads(proc.stdout)
    return data


# --- titles are data ---------------------------------------------------------------------------------


def test_titles_are_stored_and_shown_exactly(repo: Path, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    titles = {
        "Q": """say "hi" and 'bye' \\"escaped\\" """,
        "SUB": f"$(rm -rf /) and $(touch {canary})",
        "TICK": f"`touch {canary}` `id`; echo $HOME && exit 1 | cat",
        "NL": "first line\nsecond line\n\tindented",
        "UNI": "héllo ✓ 日本語 🚀 — ümlaut",
        "PAD": "  padded with spaces  ",
        "GLOB": "* ? [a-z] ~ ../../etc/passwd %s {0} \\n \\x00",
    }
    for tid, title in titles.items():
        proc = clanker(repo, "task", "add", title, "--id", tid)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{tid}\n"
    assert not canary.exists()

    listed = {t["id"]: t for t in list_json(repo)}
    assert {tid: t["title"] for tid, t in listed.items()} == titles
    assert all(t["state"] == "ready" and t["attempts"] == 0 for t in listed.values())

    plain = clanker(repo, "task", "list", check=True).stdout.splitlines()
    assert len(plain) == len(titles)  # a newline in a title never breaks the one-line-per-task list
    for line, (tid, title) in zip(plain, titles.items(), strict=True):
        assert line.split()[0] == tid and line.split()[1] == "ready"
        assert line.endswith(title.replace("\n", "⏎"))

    for tid, title in titles.items():
        shown = clanker(repo, "task", "show", tid, check=True).stdout
        assert shown.startswith(f"{tid}  {title}\n")
        assert f"\nprompt:\n{title}\n" in shown  # the prompt defaults to the title
    assert not canary.exists()


def test_prompt_and_options_are_kept_exactly(repo: Path) -> None:
    clanker(repo, "task", "add", "the dependency", "--id", "P0", check=True)
    prompt = "Do it:\n  $(echo no) `no` \"quoted\" 'single'\n✓ done\n"
    proc = clanker(
        repo,
        "task",
        "add",
        "T",
        "--id",
        "P1",
        "--prompt",
        prompt,
        "--description",
        "why: $USER",
        "--path",
        "src/a.py",
        "--path",
        "docs",
        "--priority",
        "7",
        "--depends-on",
        "P0",
    )
    assert proc.returncode == 0, proc.stderr
    state = Store(Paths(repo), "test").state()
    t = state.tasks["P1"]
    assert t.prompt == prompt and t.description == "why: $USER"
    assert t.paths == ("src/a.py", "docs") and t.priority == 7 and t.depends_on == ("P0",)
    shown = clanker(repo, "task", "show", "P1", check=True).stdout
    assert f"prompt:\n{prompt}" in shown and "description:\nwhy: $USER" in shown
    assert "priority  7" in shown and "paths     src/a.py, docs" in shown and "depends   P0" in shown


def test_prompt_file(repo: Path, tmp_path: Path) -> None:
    pf = tmp_path / "prompt.md"
    pf.write_text("from a file: $(x)\nline 2\n", encoding="utf-8")
    clanker(repo, "task", "add", "title", "--id", "F1", "--prompt-file", str(pf), check=True)
    assert Store(Paths(repo), "t").state().tasks["F1"].prompt == "from a file: $(x)\nline 2\n"
    both = clanker(repo, "task", "add", "title", "--prompt", "x", "--prompt-file", str(pf))
    assert "not both" in one_error_line(both)


def test_ids_are_generated_in_order(repo: Path) -> None:
    assert clanker(repo, "task", "add", "one", check=True).stdout == "T1\n"
    assert clanker(repo, "task", "add", "two", "--id", "T3", check=True).stdout == "T3\n"
    assert clanker(repo, "task", "add", "three", check=True).stdout == "T4\n"  # T3 is taken: skip it
    assert [t["id"] for t in list_json(repo)] == ["T1", "T3", "T4"]


# --- bad input ---------------------------------------------------------------------------------------


def test_duplicate_id_is_an_error(repo: Path) -> None:
    clanker(repo, "task", "add", "first", "--id", "X1", check=True)
    before = log_of(repo)
    line = one_error_line(clanker(repo, "task", "add", "second", "--id", "X1"))
    assert "task X1 exists already" in line
    assert log_of(repo) == before
    assert [t["title"] for t in list_json(repo)] == ["first"]


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_a_title_is_required(repo: Path, title: str) -> None:
    line = one_error_line(clanker(repo, "task", "add", title))
    assert "a task needs a title" in line
    assert log_of(repo) == b""


@pytest.mark.parametrize(
    "bad",
    [
        "has space",
        "a/b",
        "../up",
        ".hidden",
        "-dash",
        "x" * 65,
        "semi;colon",
        "ünï",
        "tab\t",
        "new\nline",
        "trailing\n",
    ],
)
def test_bad_ids_are_rejected(bare: Path, bad: str) -> None:
    store = Store(Paths(bare), "test")
    with pytest.raises(UsageError, match="bad task id"):
        tasks.add(store, {"id": bad, "title": "t"})
    assert store.state().tasks == {} and log_of(bare) == b""


@pytest.mark.parametrize("good", ["a", "x" * 64, "A.b_c-1", "0", "fix-1.2_x"])
def test_good_ids_are_accepted(bare: Path, good: str) -> None:
    store = Store(Paths(bare), "test")
    assert tasks.add(store, {"id": good, "title": "t"}).message == good
    assert store.state().tasks[good].branch == f"clanker/{good}"


def test_bad_id_through_the_cli(repo: Path) -> None:
    line = one_error_line(clanker(repo, "task", "add", "t", "--id=../../etc"))
    assert "bad task id '../../etc'" in line
    assert log_of(repo) == b""


def test_unknown_task(repo: Path) -> None:
    assert "no task 'nope'" in one_error_line(clanker(repo, "task", "show", "nope"))
    assert "no task 'nope'" in one_error_line(clanker(repo, "task", "cancel", "nope"))
    assert "no task 'nope'" in one_error_line(clanker(repo, "task", "retry", "nope"))


# --- import (flocks' JSONL) --------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "fl-1", "title": "First", "prompt": "do $(one)", "description": "d1", "branch": "clanker/feature-one"},
    {"id": "fl-2", "title": "Second ✓", "prompt": "do two", "description": "", "branch": ""},
    {"id": "fl-3", "prompt": "a prompt only\nwith a second line"},
]


def test_import_flocks_jsonl_and_again(repo: Path, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "tasks.jsonl", [ROWS[0], "", ROWS[1], "   ", ROWS[2]])
    proc = clanker(repo, "task", "import", str(f), check=True)
    assert proc.stdout.strip() == "imported 3 task(s): fl-1, fl-2, fl-3"
    st = Store(Paths(repo), "t").state()
    one, two, three = st.tasks["fl-1"], st.tasks["fl-2"], st.tasks["fl-3"]
    assert (one.title, one.prompt, one.description, one.branch) == ("First", "do $(one)", "d1", "clanker/feature-one")
    assert two.title == "Second ✓" and two.branch == "clanker/fl-2"  # empty branch: the default
    assert three.title == "a prompt only" and three.prompt == "a prompt only\nwith a second line"
    before = log_of(repo)
    again = clanker(repo, "task", "import", str(f), check=True)
    assert again.stdout.strip() == "imported 0 task(s)"
    assert log_of(repo) == before


def test_import_of_a_partly_known_file_adds_only_the_new_rows(bare: Path, tmp_path: Path) -> None:
    store = Store(Paths(bare), "t")
    tasks.import_file(store, write_jsonl(tmp_path / "a.jsonl", ROWS[:1]))
    created = tasks.import_file(store, write_jsonl(tmp_path / "b.jsonl", ROWS))
    assert created.message == "imported 2 task(s): fl-2, fl-3"
    assert sorted(store.state().tasks) == ["fl-1", "fl-2", "fl-3"]


def test_import_takes_a_long_first_prompt_line_as_a_short_title(bare: Path, tmp_path: Path) -> None:
    store = Store(Paths(bare), "t")
    tasks.import_file(store, write_jsonl(tmp_path / "a.jsonl", [{"id": "L", "prompt": "y" * 200}]))
    title = store.state().tasks["L"].title
    assert len(title) == 80 and title.endswith("…")


@pytest.mark.parametrize(
    ("rows", "line", "problem"),
    [
        ([ROWS[0], ROWS[1], "{not json", ROWS[2]], 3, "not valid JSON"),
        ([ROWS[0], "", '{"id": "x", "title": "t"', ROWS[2]], 3, "not valid JSON"),
        (["[1, 2]"], 1, "each line must be a JSON object"),
        ([ROWS[0], {"id": "empty", "description": "no title, no prompt"}], 2, "needs a title or a prompt"),
        ([ROWS[0], {"id": "n", "title": "t", "priority": "high"}], 2, "priority"),
        ([{"id": ["a"], "title": "t"}], 1, "id"),
    ],
)
def test_import_errors_name_the_file_and_line(
    repo: Path, tmp_path: Path, rows: list[Any], line: int, problem: str
) -> None:
    f = write_jsonl(tmp_path / "bad.jsonl", rows)
    err = one_error_line(clanker(repo, "task", "import", str(f)))
    assert f"{f}:{line}: " in err and problem in err
    assert log_of(repo) == b""  # nothing from a bad file is imported


def test_import_of_a_numeric_id(repo: Path, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "n.jsonl", [{"id": 5, "title": "numbered"}])
    proc = clanker(repo, "task", "import", str(f))
    assert proc.returncode == 0, proc.stderr
    assert clanker(repo, "task", "show", "5", check=True).stdout.startswith("5  numbered\n")
    assert clanker(repo, "task", "import", str(f), check=True).stdout.strip() == "imported 0 task(s)"


def test_import_accepts_a_single_path_as_a_string(bare: Path, tmp_path: Path) -> None:
    store = Store(Paths(bare), "t")
    rows = [
        {"id": "fl-1", "title": "the dependency"},
        {"id": "s", "title": "t", "paths": "src/a.py", "tags": "regression", "depends_on": "fl-1"},
    ]
    tasks.import_file(store, write_jsonl(tmp_path / "s.jsonl", rows))
    t = store.state().tasks["s"]
    assert t.paths == ("src/a.py",) and t.tags == ("regression",) and t.depends_on == ("fl-1",)


def test_import_of_a_missing_file(bare: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="can't read it"):
        tasks.import_file(Store(Paths(bare), "t"), tmp_path / "nope.jsonl")


# --- cancel and retry ----------------------------------------------------------------------------------

TO: dict[TaskState, list[tuple[str, dict[str, Any]]]] = {
    TaskState.READY: [],
    TaskState.CLAIMED: [("task.claimed", {"slave": "c1"})],
    TaskState.NEEDS_JUDGE: [("task.claimed", {"slave": "c1"}), ("task.submitted", {})],
    TaskState.JUDGING: [
        ("task.claimed", {"slave": "c1"}),
        ("task.submitted", {}),
        ("task.judge_claimed", {"slave": "c2"}),
    ],
    TaskState.REWORK: [
        ("task.claimed", {"slave": "c1"}),
        ("task.submitted", {}),
        ("task.judge_claimed", {"slave": "c2"}),
        ("task.verdict", {"verdict": "rework", "reasons": "more"}),
    ],
    TaskState.DONE: [
        ("task.claimed", {"slave": "c1"}),
        ("task.submitted", {}),
        ("task.judge_claimed", {"slave": "c2"}),
        ("task.verdict", {"verdict": "done"}),
        ("task.landing", {"slave": "c2"}),
        ("task.mainlined", {"sha": "b" * 40}),
    ],
    TaskState.BLOCKED: [("task.claimed", {"slave": "c1"}), ("task.blocked", {"reason": "stuck"})],
    TaskState.CANCELLED: [("task.cancelled", {})],
    TaskState.SPLIT: [("task.split", {})],
}


def task_in(repo: Path, state: TaskState, tid: str = "T1") -> Store:
    store = Store(Paths(repo), "test")
    tasks.add(store, {"id": tid, "title": "a task"})
    for type_, data in TO[state]:
        store.append(event(type_, "test", tid, data))
    assert store.state().tasks[tid].state == state
    return store


@pytest.mark.parametrize(
    "state",
    [TaskState.READY, TaskState.CLAIMED, TaskState.NEEDS_JUDGE, TaskState.JUDGING, TaskState.REWORK, TaskState.BLOCKED],
)
def test_cancel_legal(bare: Path, state: TaskState) -> None:
    store = task_in(bare, state)
    tasks.cancel(store, "T1")
    t = store.state().tasks["T1"]
    assert t.state == TaskState.CANCELLED and t.slave is None and t.reason == "cancelled by the user"


@pytest.mark.parametrize("state", [TaskState.DONE, TaskState.CANCELLED, TaskState.SPLIT])
def test_cancel_illegal(bare: Path, state: TaskState) -> None:
    store = task_in(bare, state)
    before = log_of(bare)
    with pytest.raises(UsageError, match=f"task T1 is {state}: nothing to cancel"):
        tasks.cancel(store, "T1")
    assert log_of(bare) == before


@pytest.mark.parametrize("state", [TaskState.BLOCKED, TaskState.CANCELLED, TaskState.READY, TaskState.REWORK])
def test_retry_legal(bare: Path, state: TaskState) -> None:
    store = task_in(bare, state)
    tasks.retry(store, "T1")
    t = store.state().tasks["T1"]
    assert t.state == TaskState.READY and t.reason == "" and t.slave is None
    assert t.attempt_base == t.attempts and t.attempts_since_retry == 0


@pytest.mark.parametrize(
    "state", [TaskState.CLAIMED, TaskState.NEEDS_JUDGE, TaskState.JUDGING, TaskState.DONE, TaskState.SPLIT]
)
def test_retry_illegal(bare: Path, state: TaskState) -> None:
    store = task_in(bare, state)
    before = log_of(bare)
    with pytest.raises(UsageError, match=f"task T1 is {state}: only blocked or cancelled"):
        tasks.retry(store, "T1")
    assert log_of(bare) == before and store.state().tasks["T1"].state == state


def test_cancel_and_retry_unknown_tasks(bare: Path) -> None:
    store = Store(Paths(bare), "test")
    with pytest.raises(UnknownTask):
        tasks.cancel(store, "ghost")
    with pytest.raises(UnknownTask):
        tasks.retry(store, "ghost")


def test_retry_restarts_the_attempt_count(bare: Path) -> None:
    store = task_in(bare, TaskState.BLOCKED)
    store.append(event("task.retried", "test", "T1", {}))
    store.append(event("task.claimed", "test", "T1", {"slave": "c1"}))
    store.append(event("task.blocked", "test", "T1", {"reason": "again"}))
    t = store.state().tasks["T1"]
    assert t.attempts == 2 and t.attempts_since_retry == 1
    tasks.retry(store, "T1")
    t = store.state().tasks["T1"]
    assert t.attempts == 2 and t.attempts_since_retry == 0


def test_cancel_and_retry_through_the_cli(repo: Path) -> None:
    clanker(repo, "task", "add", "something", "--id", "C1", check=True)
    assert clanker(repo, "task", "cancel", "C1", check=True).stdout.strip() == "cancelled C1"
    assert list_json(repo)[0]["state"] == "cancelled"
    assert "nothing to cancel" in one_error_line(clanker(repo, "task", "cancel", "C1"))
    assert clanker(repo, "task", "retry", "C1", check=True).stdout.strip() == "C1 is ready again"
    assert list_json(repo)[0]["state"] == "ready"
    Store(Paths(repo), "test").append(event("task.claimed", "test", "C1", {"slave": "c1"}))
    assert "only blocked or cancelled" in one_error_line(clanker(repo, "task", "retry", "C1"))
    assert list_json(repo)[0]["state"] == "claimed"


def test_depending_on_an_unknown_task_is_refused(repo: Path) -> None:
    proc = clanker(repo, "task", "add", "needs a ghost", "--depends-on", "GHOST")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "clanker: task T1 depends on GHOST, which do not exist: add them first"


def test_import_allows_forward_references_and_dedupes_rows_without_ids(repo: Path, tmp_path: Path) -> None:
    f = tmp_path / "tasks.jsonl"
    rows = [
        {"id": "B", "title": "second", "depends_on": ["A"]},
        {"id": "A", "title": "first"},
        {"title": "no id", "prompt": "do it"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert clanker(repo, "task", "import", str(f), check=True).stdout.strip() == "imported 3 task(s): B, A, T3"
    assert clanker(repo, "task", "import", str(f), check=True).stdout.strip() == "imported 0 task(s)"


def test_escape_sequences_in_titles_never_reach_the_terminal(repo: Path) -> None:
    clanker(repo, "task", "add", "evil\x1b]2;pwned\x07 title", check=True)
    for args in (["task", "list"], ["task", "show", "T1"], ["status"]):
        out = clanker(repo, *args, check=True).stdout
        assert "\x1b" not in out and "evil title" in out
