"""clanker.yaml: defaults, validation errors with file:line and dotted key, discovery, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from clanker.config import (
    AGENT_SCHEMA,
    CONFIG_NAME,
    PLACES,
    SCHEMA,
    SPECIAL,
    AgentConfig,
    Config,
    WorktreeConfig,
    find_config,
    load,
)
from clanker.config.load import ALIASES
from clanker.errors import ConfigError, UsageError
from tests.helpers import clanker, make_repo

EXAMPLE = Path(__file__).resolve().parent.parent / "clanker.yaml.example"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / CONFIG_NAME
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load(tmp_path, write(tmp_path, text))


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, path)
    assert str(info.value).startswith(f"{path}:")
    assert "\n" not in str(info.value)
    return info.value


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    cfg = load(repo)
    assert cfg.path is None and cfg.repo == repo
    assert cfg.slaves == 3
    assert cfg.mainline_branch == "main"
    assert cfg.max_attempts == 3 and cfg.conflict_budget == 3 and cfg.judge_max_parallel is None and cfg.judges == 1
    assert cfg.agent == AgentConfig() and cfg.agent.kind == "fake"
    assert cfg.judge_agent == cfg.agent
    assert cfg.gate == () and cfg.owner_files == ()
    assert cfg.tmux_socket is None and cfg.tmux_session is None and cfg.worktrees is None
    assert cfg.git_ignore == "exclude" and cfg.heartbeat_secs == 5.0


def test_every_default_is_the_dataclass_default(tmp_path: Path) -> None:
    # The defaults are written once, in the structs: a file-less load builds exactly Config().
    repo = make_repo(tmp_path / "repo")
    assert load(repo) == Config(repo=repo)


def _leaves(schema: dict[str, object], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out = set()
    for key, rule in schema.items():
        place = (*prefix, key)
        if isinstance(rule, dict) and place not in SPECIAL:
            out |= _leaves(rule, place)
        else:
            out.add(place)
    return out


def test_every_setting_reaches_a_field() -> None:
    # No key of the schema is validated and then dropped, and no field is filled from two places.
    assert _leaves(SCHEMA) == set(PLACES) | SPECIAL | set(ALIASES)
    fields = {f.name for f in msgspec.structs.fields(Config)}
    assert set(PLACES.values()) <= fields and len(set(PLACES.values())) == len(PLACES)
    assert set(AGENT_SCHEMA) == {f.name for f in msgspec.structs.fields(AgentConfig)}
    assert set(SCHEMA["worktree"]) - {"root"} == {f.name for f in msgspec.structs.fields(WorktreeConfig)}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    cfg = load_text(tmp_path, text)
    assert cfg.slaves == 3 and cfg.agent.kind == "fake" and cfg.path == tmp_path / CONFIG_NAME


def test_judge_agent_follows_the_agent_by_default(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "agent:\n  kind: command\n  command: [my-agent, --x]\n  timeout_secs: 30\n")
    assert cfg.agent.kind == "command" and cfg.agent.command == ("my-agent", "--x")
    assert cfg.agent.timeout_secs == 30.0
    assert cfg.judge_agent == cfg.agent


def test_every_key_is_read(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """\
slaves: 5
heartbeat_secs: 0.5
max_attempts: 7
agent:
  kind: command
  command: [sh, -c, "echo hi"]
  model: big
  max_turns: 9
  timeout_secs: 12
  stall_secs: 3.5
  args: [--fast]
  env: {FOO: 1, BAR: x}
judge:
  agent: {kind: fake, timeout_secs: 60}
  max_parallel: 2
gate: ["make test", "ruff check"]
gate_timeout_secs: 99
mainline: {branch: trunk, conflict_budget: 0}
tmux: {socket: sock, session: sess}
worktrees: ../wt
owner_files: [src/hot, "*.lock"]
git_ignore: gitignore
worktree:
  copy: [.env, "config/*.local.yml"]
  link: [.cache/models]
  setup: ["npm ci"]
  setup_inputs: [package-lock.json]
  setup_timeout_secs: 60
  port_base: 30000
  port_span: 10
env: {pass: [DATABASE_URL]}
gate_preflight: false
""",
    )
    assert cfg.slaves == 5 and cfg.heartbeat_secs == 0.5 and cfg.max_attempts == 7
    assert cfg.agent == AgentConfig(
        kind="command",
        command=("sh", "-c", "echo hi"),
        model="big",
        max_turns=9,
        timeout_secs=12.0,
        stall_secs=3.5,
        args=("--fast",),
        env={"FOO": "1", "BAR": "x"},
    )
    assert cfg.judge_agent == AgentConfig(kind="fake", timeout_secs=60.0)
    assert cfg.judge_max_parallel == 2
    assert cfg.gate == ("make test", "ruff check") and cfg.gate_timeout_secs == 99.0
    assert cfg.mainline_branch == "trunk" and cfg.conflict_budget == 0
    assert cfg.tmux_socket == "sock" and cfg.tmux_session == "sess"
    assert cfg.worktrees == tmp_path.parent / "wt"  # normalised: a path outside the repo stays outside
    assert cfg.worktree == WorktreeConfig(
        copy=(".env", "config/*.local.yml"),
        link=(".cache/models",),
        setup=("npm ci",),
        setup_inputs=("package-lock.json",),
        setup_timeout_secs=60.0,
        port_base=30000,
        port_span=10,
    )
    assert cfg.env_pass == ("DATABASE_URL",) and cfg.gate_preflight is False
    assert cfg.owner_files == ("src/hot", "*.lock") and cfg.git_ignore == "gitignore"


@pytest.mark.parametrize(
    ("judge", "expected"),
    [("none", None), ("same", "agent"), ("null", "agent"), ("{kind: command, command: [j]}", "custom")],
)
def test_judge_agent_choices(tmp_path: Path, judge: str, expected: str | None) -> None:
    cfg = load_text(tmp_path, f"agent: {{kind: fake, model: m}}\njudge:\n  agent: {judge}\n")
    if expected is None:
        assert cfg.judge_agent is None
    elif expected == "agent":
        assert cfg.judge_agent == cfg.agent and cfg.agent.model == "m"
    else:
        assert cfg.judge_agent == AgentConfig(kind="command", command=("j",))


# --- errors: file, line and dotted key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        # unknown keys
        ("slaves: 2\nbogus: 1\n", 2, "bogus", "unknown key"),
        ("slaves: 2\nagent:\n  kind: fake\n  colour: red\n", 4, "agent.colour", "unknown key"),
        ("mainline:\n  branch: main\n  brnch: x\n", 3, "mainline.brnch", "unknown key"),
        ("judge:\n  agent:\n    kind: fake\n    nope: 1\n", 4, "judge.agent.nope", "unknown key"),
        ("tmux: {socket: s, sesion: x}\n", 1, "tmux.sesion", "unknown key"),
        # wrong types
        ("slaves: three\n", 1, "slaves", "must be a whole number"),
        ("# comment\n\nslaves: 2.5\n", 3, "slaves", "must be a whole number"),
        ("max_attempts: true\n", 1, "max_attempts", "must be a whole number"),
        ("heartbeat_secs: fast\n", 1, "heartbeat_secs", "must be a number"),
        ("agent: 5\n", 1, "agent", "must be a mapping"),
        ("slaves: 1\nmainline: main\n", 2, "mainline", "must be a mapping"),
        ("gate: make test\n", 1, "gate", "must be a list of non-empty strings"),
        ("gate: [ok, 3]\n", 1, "gate", "must be a list of non-empty strings"),
        ("slaves: 2\nagent:\n  kind: command\n  command: run-me\n", 4, "agent.command", "must be a list"),
        ("agent:\n  env: [A, B]\n", 2, "agent.env", "must be a mapping of NAME: value"),
        ("judge:\n  agent: 3\n", 2, "judge.agent", "must be none, same, or a mapping"),
        # bad values
        ("slaves: 0\n", 1, "slaves", "must be between 1 and 64"),
        ("slaves: 65\n", 1, "slaves", "must be between 1 and 64"),
        ("slaves: 2\nheartbeat_secs: 0.1\n", 2, "heartbeat_secs", "must be ≥ 0.2"),
        ("slaves: 2\nagent:\n  kind: fake\n  timeout_secs: -1\n", 4, "agent.timeout_secs", "must be ≥ 0"),
        ("slaves: 2\nagent:\n  model: fake\n  kind: gpt\n", 4, "agent.kind", "must be one of fake, command"),
        ("agent:\n  max_turns: 0\n", 2, "agent.max_turns", "must be ≥ 1"),
        ("mainline:\n  branch: ''\n", 2, "mainline.branch", "must be a non-empty string"),
        ("mainline:\n  conflict_budget: -2\n", 2, "mainline.conflict_budget", "must be ≥ 0"),
        ("judge:\n  max_parallel: 100\n", 2, "judge.max_parallel", "must be between 1 and 64"),
        ("git_ignore: nope\n", 1, "git_ignore", "must be one of exclude, gitignore"),
        ("gate_timeout_secs: 0\n", 1, "gate_timeout_secs", "must be ≥ 1"),
        (
            "judge:\n  agent:\n    kind: fake\n    stall_secs: -3\n",
            4,
            "judge.agent.stall_secs",
            "must be ≥ 0",
        ),
        # structure
        ("- slaves\n- 3\n", 1, "(top level)", "must be a mapping of settings"),
        ("just words\n", 1, "(top level)", "must be a mapping of settings"),
    ],
)
def test_config_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, problem: str) -> None:
    err = config_error(tmp_path, text)
    path = tmp_path / CONFIG_NAME
    assert str(err).startswith(f"{path}:{line}: {key}: "), str(err)
    assert problem in str(err)
    assert err.line == line and err.key == key and err.path == str(path)


def test_the_message_looks_like_the_documented_example(tmp_path: Path) -> None:
    err = config_error(tmp_path, "slaves: 3\ngate: []\n\nagent:\n  kind: robot\n")
    assert f"{CONFIG_NAME}:5: agent.kind: must be one of" in str(err)
    assert "'robot'" in str(err)


def test_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    err = config_error(tmp_path, "mainline:\n  brnch: x\n")
    assert "known here: batch_commits, batch_max, batch_wait_secs, branch, conflict_budget)" in str(err)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("slaves: 3\n\tgate: x\n", 2),
        ("slaves: 3\nagent: {kind: fake\ngate: []\n", 3),
        ("slaves: 3\nagent:\n  kind: fake\n bad: indent\n", 4),
        ("slaves: 3\ngate: @x\n", 2),
        ("slaves: 3\nkey: value: other\n", 2),
    ],
)
def test_invalid_yaml_reports_a_line(tmp_path: Path, text: str, line: int) -> None:
    err = config_error(tmp_path, text)
    assert err.key == "yaml" and "not valid YAML" in str(err)
    assert err.line == line, str(err)
    assert str(err).startswith(f"{tmp_path / CONFIG_NAME}:{line}: yaml: ")


def test_command_agent_needs_a_command(tmp_path: Path) -> None:
    err = config_error(tmp_path, "slaves: 2\nagent:\n  kind: command\n")
    assert err.key == "agent.command" and err.line == 2
    assert "kind `command` needs `command:" in str(err)


def test_command_judge_agent_needs_a_command(tmp_path: Path) -> None:
    err = config_error(tmp_path, "agent:\n  kind: fake\njudge:\n  agent:\n    kind: command\n")
    assert err.key == "judge.agent.command" and err.line == 4


def test_an_unreadable_config_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can't read it"):
        load(tmp_path, tmp_path / "missing.yaml")


# --- environment and discovery ------------------------------------------------------------------


def test_env_socket_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "tmux:\n  socket: from-file\n  session: s1\n"
    assert load_text(tmp_path, text).tmux_socket == "from-file"
    monkeypatch.setenv("CLANKER_TMUX_SOCKET", "from-env")
    cfg = load_text(tmp_path, text)
    assert cfg.tmux_socket == "from-env" and cfg.tmux_session == "s1"
    assert load_text(tmp_path, "slaves: 1\n").tmux_socket == "from-env"


def test_find_config_walks_up_from_a_subdirectory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", config="slaves: 2\n")
    deep = repo / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep) == repo / CONFIG_NAME
    assert find_config(repo) == repo / CONFIG_NAME
    # The nearest one wins.
    (repo / "a" / CONFIG_NAME).write_text("slaves: 4\n")
    assert find_config(deep) == repo / "a" / CONFIG_NAME


def test_find_config_stops_at_the_repository_top(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text("slaves: 9\n")  # outside the repo: never used
    repo = make_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    assert find_config(repo / "sub") is None
    assert find_config(repo) is None


def test_load_finds_the_config_from_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo", config="slaves: 2\n")
    (repo / "pkg" / "mod").mkdir(parents=True)
    monkeypatch.chdir(repo / "pkg" / "mod")
    cfg = load(repo)
    assert cfg.slaves == 2 and cfg.path == repo / CONFIG_NAME
    monkeypatch.chdir(tmp_path)  # outside the repo: the repo's own file is still used
    assert load(repo).slaves == 2


# --- through the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("slaves: 2\nagent:\n  kind: robot\n", ":3: agent.kind: "),
        ("slaves: 2\nbogus: 1\n", ":2: bogus: "),
        ("slaves: 2\n\tagent: x\n", ":2: yaml: "),
    ],
)
def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path, text: str, where: str) -> None:
    repo = make_repo(tmp_path / "repo", config=text)
    proc = clanker(repo, "status")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert lines[0].startswith("clanker: ") and f"{repo / CONFIG_NAME}{where}" in lines[0]
    assert not (repo / ".clanker").exists()


# --- the documented example -------------------------------------------------------------------------


def test_the_example_config_validates(tmp_path: Path) -> None:
    assert EXAMPLE.is_file(), f"{EXAMPLE} is missing"
    cfg = load(tmp_path, EXAMPLE)
    assert cfg.path == EXAMPLE and 1 <= cfg.slaves <= 64


def test_the_example_config_mentions_every_top_level_key() -> None:
    assert EXAMPLE.is_file(), f"{EXAMPLE} is missing"
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [key for key in SCHEMA if f"{key}:" not in text]
    assert missing == []


def test_a_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "clanker.yaml"
    path.write_text("slaves: 2\nagent:\n  kind: fake\nslaves: 4\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, path)
    assert str(err.value) == f"{path}:4: slaves: duplicate key (first on line 1)"


def test_a_flocks_prompt_template_works_and_an_unknown_field_is_an_error_at_its_line(tmp_path: Path) -> None:
    from clanker.jobs.prompts import worker_prompt
    from clanker.state.model import Task

    (tmp_path / "flocks.md").write_text("Work on this:\n{{prompt}}\nBranch: {{ task.branch }}\n")
    cfg = load(tmp_path, write(tmp_path, "prompts:\n  worker: flocks.md\n"))
    task = Task(id="T1", title="t", prompt="make the tests pass", branch="clanker/T1")
    text = worker_prompt(task, template=cfg.prompt_templates["worker"])
    assert text.splitlines() == ["CLANKER-ROLE: worker", "Work on this:", "make the tests pass", "Branch: clanker/T1"]
    (tmp_path / "typo.md").write_text("Task:\n{{task.prompt}}\nFix {{tsk.title}} today\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, write(tmp_path, "prompts:\n  worker: typo.md\n"))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'typo.md'}:3: prompts.worker: unknown field {{{{tsk.title}}}} (known: ")
    assert "{{prompt}}" in msg and "\n" not in msg
    (tmp_path / "judge.md").write_text("{{diff}} {{conflicts}}\n")  # a worker's field, not a judge's
    with pytest.raises(ConfigError, match=r"judge.md:1: prompts.judge: unknown field \{\{conflicts\}\}"):
        load(tmp_path, write(tmp_path, "prompts:\n  judge: judge.md\n"))
    with pytest.raises(ConfigError, match="prompts.planner: can't read"):
        load(tmp_path, write(tmp_path, "prompts:\n  planner: missing.md\n"))


def test_flocks_names_work_with_a_note_and_never_disagree_with_clanker_s(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "max_agents: 5\nland_target: trunk\nworkspace:\n  branch_prefix: flocks/\n"
                              "stagger_delay_secs: 2\n")  # fmt: skip
    assert (cfg.slaves, cfg.mainline_branch, cfg.branch_prefix, cfg.agent.stagger_secs) == (5, "trunk", "flocks/", 2.0)
    assert len(cfg.notes) == 4 and any("`max_agents` is clanker's `slaves`" in n for n in cfg.notes)
    assert load_text(tmp_path, "slaves: 4\nmax_agents: 4\n").slaves == 4  # the same value twice is fine
    with pytest.raises(ConfigError, match="max_agents: says 5 but slaves says 4: keep one"):
        load_text(tmp_path, "slaves: 4\nmax_agents: 5\n")
    assert load_text(tmp_path, "slaves: 2\n").notes == ()


def test_run_max_attempts_is_read_from_the_environment_the_run_gives_its_slaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLANKER_MAX_ATTEMPTS", "7")
    assert load_text(tmp_path, "max_attempts: 2\n").max_attempts == 7
    from clanker.fleet.panes import pane_env

    assert pane_env(load_text(tmp_path, ""))["CLANKER_MAX_ATTEMPTS"] == "7"
    monkeypatch.setenv("CLANKER_MAX_ATTEMPTS", "zero")
    with pytest.raises(ConfigError, match="must be a whole number"):
        load_text(tmp_path, "")


FLOCKS = """# how many at once
max_agents = 5
stagger_delay_secs = 2
agent_timeout_secs = 0
max_retries = 4
poll_interval = 7  # flocks-only

[[containers]]
name = "dev"
max_worktrees = 3
kap_project = "/src/proj"
workspace_mount = "/workspace"
credential = "default"

[workspace]
branch_prefix = "flocks/"
land_target = "trunk"

[validate]
# after landing
commands = ["make test"]
"""


def test_a_flocks_toml_converts_to_clanker_yaml_with_its_comments(tmp_path: Path) -> None:
    from clanker.commands.flocks import convert, import_flocks

    text, left = convert(FLOCKS)
    assert "# how many at once\nslaves: 5" in text and "# after landing\ngate:\n- make test" in text
    assert "# flocks' `poll_interval` has no clanker setting: left out" in text and left == ["poll_interval"]
    (tmp_path / "flocks.toml").write_text(FLOCKS)
    done = import_flocks(tmp_path, tmp_path / "flocks.toml", None)
    assert done.code == 0 and "left out: poll_interval" in done.message
    cfg = load(tmp_path, tmp_path / CONFIG_NAME)
    assert (cfg.slaves, cfg.max_attempts, cfg.agent.kind, cfg.agent.stagger_secs) == (5, 4, "claude", 2.0)
    assert (cfg.branch_prefix, cfg.mainline_branch, cfg.gate) == ("flocks/", "trunk", ("make test",))
    (dev,) = cfg.executors
    assert (dev.kind, dev.exec, dev.slots, dev.workspace_mount, dev.credential) == (
        "container", ("devcontainer", "exec", "--workspace-folder", "/src/proj"), 3, "/workspace", None
    )  # fmt: skip
    with pytest.raises(UsageError, match="exists: move it away"):
        import_flocks(tmp_path, tmp_path / "flocks.toml", None)
    (tmp_path / "bad.toml").write_text("max_agents = = 3\n")
    with pytest.raises(UsageError, match="bad.toml: not TOML"):
        import_flocks(tmp_path, tmp_path / "bad.toml", tmp_path / "other.yaml")


@pytest.mark.parametrize(("slaves", "judges"), [(1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (32, 8)])
def test_judges_at_once_are_a_quarter_of_the_slaves_unless_set(tmp_path: Path, slaves: int, judges: int) -> None:
    assert Config(repo=tmp_path, slaves=slaves).judges == judges
    assert Config(repo=tmp_path, slaves=slaves, judge_max_parallel=1).judges == 1


# --- the parse cache -----------------------------------------------------------------------------


def test_a_parse_is_kept_and_an_edit_is_parsed_again(tmp_path: Path) -> None:
    (tmp_path / ".clanker").mkdir()
    path = write(tmp_path, "slaves: 5\nagent:\n  kind: fake\n")
    first = load(tmp_path, path)
    kept = tmp_path / ".clanker" / "cache" / "config.json"
    assert kept.is_file() and load(tmp_path, path) == first
    # A process that finds the entry current never imports YAML at all.
    probe = (
        "import sys; from pathlib import Path; from clanker.config import load; "
        f"c = load(Path({str(tmp_path)!r}), Path({str(path)!r})); print(c.slaves, 'yaml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["5", "False"]
    path.write_text("slaves: 6\nagent:\n  kind: fake\n")  # same size, new contents
    assert load(tmp_path, path).slaves == 6
    path.write_text("slaves: 6\nslaves: 7\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        load(tmp_path, path)  # an edit's errors are found, whatever was kept before


def test_the_first_command_in_a_project_keeps_its_parse_once_it_made_the_state_directory(tmp_path: Path) -> None:
    import shutil

    from clanker.config import cache
    from clanker.state.paths import prepare

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    path = write(tmp_path, "slaves: 3\n")
    kept = tmp_path / ".clanker" / "cache" / "config.json"
    cfg = load(tmp_path, path)  # no .clanker/ yet: nothing is written, the parse is held
    assert not kept.exists()
    prepare(cfg)  # what every command does next: the next process reads the parse
    assert cache.read(kept, cache.key(path)) == ({"slaves": 3}, {("slaves",): 1})
    # A held parse of a file edited since is never written.
    shutil.rmtree(tmp_path / ".clanker")
    load(tmp_path, path)
    path.write_text("slaves: 4\n")
    (tmp_path / ".clanker").mkdir()
    cache.flush()
    assert not kept.exists()
    assert load(tmp_path, path).slaves == 4


def test_the_parse_cache_is_only_a_cache(tmp_path: Path) -> None:
    path = write(tmp_path, "slaves: 2\n")
    kept = tmp_path / ".clanker" / "cache" / "config.json"
    assert load(tmp_path, path).slaves == 2 and not (tmp_path / ".clanker").exists(), "reading creates nothing"
    (tmp_path / ".clanker").mkdir()
    load(tmp_path, path)
    kept.write_text('{"key": [1], "data"')  # torn, or from another version
    assert load(tmp_path, path).slaves == 2
    # A value JSON would not give back as YAML gave it (a date) is parsed from the file every time.
    path.write_text("slaves: 2\nagent:\n  args: [2024-01-02]\n")
    kept.unlink()
    for _ in range(2):
        with pytest.raises(ConfigError, match="agent.args"):
            load(tmp_path, path)
        assert not kept.exists()
