"""Every bad input is one line and exit 2, never a traceback: the cases found by hand, then
hypothesis over clanker.yaml and task import files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clanker.state.paths import Paths
from clanker.state.store import Store

from .helpers import clanker, git, make_repo


def one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clanker: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / "clanker.yaml").write_bytes(b"slaves: 2\n# caf\xe9\n")
    one_line_exit_2(clanker(repo, "status"), "clanker.yaml:2", "not UTF-8")


def _import(repo: Path, tmp_path: Path, content: bytes) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "tasks.jsonl"
    f.write_bytes(content)
    return clanker(repo, "task", "import", str(f))


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\x9b"])
def test_a_key_with_a_line_break_python_knows_stays_on_one_line(repo: Path, char: str) -> None:
    # NEL and U+2028 end a line for Python's splitlines (hypothesis found NEL); CSI starts a
    # terminal escape. Each is shown escaped.
    code = f"{ord(char):04x}"
    (repo / "clanker.yaml").write_text(f'agent:\n  kind: fake\n  "a\\u{code}b": 1\n', encoding="utf-8")
    line = one_line_exit_2(clanker(repo, "status"), "unknown key")
    assert char not in line and char.encode("unicode_escape").decode("ascii") in line


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b'{"id": "a", "title": "t", "paths": 5}\n', ["tasks.jsonl:1", "paths must be a list of strings"]),
        (b'{"id": "a", "title": "t"}\n{"title": "\xff"}\n', ["tasks.jsonl:2", "not UTF-8"]),
        (b'{"id": "a", "title": {"an": "object"}}\n', ["tasks.jsonl:1", "title must be text"]),
        (b'{"id": "a", "title": "one"}\n{"id": "a", "title": "two"}\n', ["tasks.jsonl:2", "already on line 1"]),
        (b'{"id": "", "title": "t"}\n', ["tasks.jsonl:1", "bad task id ''"]),
        (b'{"id": "a", "title": "t", "priority": "high"}\n', ["tasks.jsonl:1", "priority"]),
        (b'{"id": "a", "title": "t", "depends_on": [1]}\n', ["tasks.jsonl:1", "depends_on"]),
    ],
    ids=["paths-5", "not-utf8", "title-object", "duplicate-id", "empty-id", "priority-word", "depends-int"],
)
def test_a_bad_import_file(repo: Path, tmp_path: Path, content: bytes, needles: list[str]) -> None:
    one_line_exit_2(_import(repo, tmp_path, content), *needles)
    assert Store(Paths(repo), "t").state().tasks == {}, "nothing of a bad file is imported"


@pytest.mark.parametrize(
    ("branch", "needle"),
    [
        ("main", "not a task branch"),
        ("../../evil", "not a task branch"),
        ("clanker/../../evil", "not a valid git branch name"),
        ("clanker/a..b", "not a valid git branch name"),
        ("clanker/x.lock", "not a valid git branch name"),
        ("clanker/", "not a task branch"),
        ("clanker/has space", "not a valid git branch name"),
        ("feature/x", "must be under clanker/"),
    ],
)
def test_a_task_branch_must_be_a_clanker_branch_and_never_main(
    repo: Path, tmp_path: Path, branch: str, needle: str
) -> None:
    row = json.dumps({"id": "a", "title": "t", "branch": branch}).encode() + b"\n"
    one_line_exit_2(_import(repo, tmp_path, row), needle)
    assert Store(Paths(repo), "t").state().tasks == {}


def test_task_branches_follow_branch_prefix(tmp_path: Path) -> None:
    # A flocks task file names its branches flocks/…: with `branch_prefix: flocks/` it imports as is.
    repo = make_repo(tmp_path / "r", "branch_prefix: flocks/\nagent:\n  kind: fake\n")
    row = {"id": "test-1", "branch": "flocks/test-1", "prompt": "Create a file"}
    assert _import(repo, tmp_path, json.dumps(row).encode() + b"\n").returncode == 0
    assert clanker(repo, "task", "add", "no branch given", "--id", "t2").returncode == 0
    tasks = Store(Paths(repo), "t").state().tasks
    assert (tasks["test-1"].branch, tasks["t2"].branch) == ("flocks/test-1", "flocks/t2")
    one_line_exit_2(_import(repo, tmp_path, b'{"id": "x", "title": "t", "branch": "clanker/x"}\n'), "under flocks/")


def test_branch_rules_agree_with_git(tmp_path: Path) -> None:
    # The pure check refuses what `git check-ref-format` refuses, on names chosen to hit each rule.
    from clanker.errors import UsageError
    from clanker.state.intake import Branches

    names = ["clanker/ok", "clanker/a/b", "clanker/a..b", "clanker/.hidden", "clanker/a.lock", "clanker/a/",
             "clanker/a.", "clanker/a@{1}", "clanker/a b", "clanker/a~1", "clanker/a^", "clanker/a:b",
             "clanker/a?", "clanker/a*", "clanker/a[1]", "clanker/a\\b", "clanker//a", "clanker/a\tb",
             "clanker/ünï", "clanker/a@b", "clanker/-x", "clanker/x.lock/y"]  # fmt: skip
    for name in names:
        by_git = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True).returncode == 0
        try:
            Branches().check(name)
            ours = True
        except UsageError:
            ours = False
        assert ours == by_git, name
    del tmp_path


def test_an_empty_id_is_refused(repo: Path) -> None:
    one_line_exit_2(clanker(repo, "task", "add", "a title", "--id", ""), "bad task id ''")


def test_a_prompt_file_that_is_not_utf8(repo: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.md"
    f.write_bytes(b"fix \xff it\n")
    one_line_exit_2(clanker(repo, "task", "add", "t", "--prompt-file", str(f)), "not UTF-8")


@pytest.mark.parametrize("snapshot", ['{"head": "%s", "state": []}', '{"head": "%s", "state": {"tasks": 5}}', "[]"])
def test_a_snapshot_of_the_wrong_shape_is_ignored(repo: Path, snapshot: str) -> None:
    assert clanker(repo, "task", "add", "first", check=True).returncode == 0
    paths = Paths(repo)
    head = paths.events.read_text().splitlines()[0] + "\n"
    paths.snapshot.write_text(snapshot % json.dumps(head)[1:-1] if "%s" in snapshot else snapshot)
    proc = clanker(repo, "task", "list")
    assert proc.returncode == 0 and "first" in proc.stdout, proc.stderr


# --- fuzzing -------------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["slaves", "agent", "kind", "gate", "worktree", "copy", "mainline", "branch", "env", "pass", "credentials",
        "prices", "judge", "planner", "health", "tmux", "socket", "retry", "branch_prefix", "prompts", "x"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(KEYS),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _no_crash(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_fuzz_clanker_yaml_from_structures(tmp_path: Path, doc: dict[str, Any]) -> None:
    import yaml

    repo = _fuzz_repo(tmp_path)
    (repo / "clanker.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _no_crash(clanker(repo, "status", "--json"))


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_clanker_yaml_from_bytes(tmp_path: Path, raw: bytes) -> None:
    repo = _fuzz_repo(tmp_path)
    (repo / "clanker.yaml").write_bytes(raw)
    _no_crash(clanker(repo, "status", "--json"))


rows = st.dictionaries(
    st.sampled_from(["id", "title", "prompt", "description", "branch", "paths", "tags", "priority", "depends_on", "z"]),
    values,
    max_size=6,
)


@FUZZ
@given(lines=st.lists(rows.map(lambda r: json.dumps(r)) | st.text(max_size=30), max_size=5))
def test_fuzz_task_import(tmp_path: Path, lines: list[str]) -> None:
    repo = _fuzz_repo(tmp_path)
    f = tmp_path / "fuzz.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    proc = clanker(repo, "task", "import", str(f))
    _no_crash(proc)
    if proc.returncode == 0:
        for t in Store(Paths(repo), "t").state().tasks.values():
            assert t.branch.startswith("clanker/") and t.branch != "main" and t.title.strip()


_REPOS: dict[Path, Path] = {}


def _fuzz_repo(tmp_path: Path) -> Path:
    """One repository per test function (hypothesis runs many examples in it): reset, not rebuilt."""
    repo = _REPOS.get(tmp_path)
    if repo is None:
        repo = _REPOS[tmp_path] = make_repo(tmp_path / "fuzz", "slaves: 2\n")
    state = repo / ".clanker"
    if state.exists():
        subprocess.run(["rm", "-rf", str(state)], check=True)
    git(repo, "checkout", "-q", "--", "clanker.yaml")
    return repo
