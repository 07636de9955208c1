"""`clanker.yaml`: find it, read it, validate it against the schema, apply defaults.

Pipeline: find (walk up from cwd) → parse (YAML nodes keep line numbers) → validate each key
against SCHEMA → build a frozen Config. Every problem is one ConfigError naming file:line and key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_NAME = "clanker.yaml"
AGENT_KINDS = ("fake", "command", "claude", "codex", "aider", "gemini")


@dataclass(frozen=True)
class AgentConfig:
    kind: str = "fake"
    command: tuple[str, ...] = ()
    model: str | None = None
    max_turns: int | None = None
    timeout_secs: float = 1800.0
    stall_secs: float = 600.0
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    binary: str | None = None  # the agent's executable (default: its usual name on PATH)
    permission_mode: str = "bypassPermissions"  # claude: slaves run unattended
    append_system_prompt: str | None = None
    stagger_secs: float = 0.0  # hold the launch lock this long after a start


@dataclass(frozen=True)
class Credential:
    """A secret held in the environment variable `env`, given to the agent as `inject`."""

    name: str
    env: str
    inject: str | None = None  # default: the variable the agent kind expects


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


# Files whose change means a worktree's environment must be set up again (`worktree.setup_inputs`).
DEFAULT_SETUP_INPUTS = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "uv.lock",
    "poetry.lock",
    "requirements*.txt",
    "package.json",
    "package-lock.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "Cargo.lock",
    "go.sum",
)


@dataclass(frozen=True)
class WorktreeConfig:
    """How each worktree becomes an environment the gate can trust (DESIGN §6a)."""

    copy: tuple[str, ...] = ()  # globs of ignored files copied from the user's checkout
    link: tuple[str, ...] = ()  # ignored directories shared by symlink
    setup: tuple[str, ...] = ()  # shell commands run in the worktree before its first job
    setup_inputs: tuple[str, ...] = DEFAULT_SETUP_INPUTS  # a change of these re-runs setup
    setup_timeout_secs: float = 1800.0
    port_base: int = 20000  # cN gets CLANKER_PORT_BASE = port_base + N·port_span
    port_span: int = 100


@dataclass(frozen=True)
class Config:
    repo: Path
    path: Path | None = None
    slaves: int = 3
    heartbeat_secs: float = 5.0
    max_attempts: int = 3
    agent: AgentConfig = AgentConfig()
    judge_agent: AgentConfig | None = AgentConfig()  # None: the gate alone decides
    judge_max_parallel: int = 1
    gate: tuple[str, ...] = ()
    gate_timeout_secs: float = 600.0
    mainline_branch: str = "main"
    conflict_budget: int = 3
    tmux_socket: str | None = None
    tmux_session: str | None = None
    worktrees: Path | None = None
    owner_files: tuple[str, ...] = ()
    git_ignore: str = "exclude"
    retry_base_secs: float = 1.0
    retry_cap_secs: float = 30.0
    credentials: tuple[Credential, ...] = ()
    prices: dict[str, Price] = field(default_factory=dict)
    prompt_templates: dict[str, Path] = field(default_factory=dict)  # role → template file
    land_validate: tuple[str, ...] = ()  # commands `clanker land` runs on main after landing
    batch_max: int = 4  # accepted tasks stacked on main and gated once
    batch_wait_secs: float = 0.0  # how long the first accepted task may wait for others to join
    health_every_minutes: float = 30.0  # 0 = off
    health_commands: tuple[str, ...] = ()  # run on main's head with the gate by the health check
    health_fix_prompt: str = ""  # standing instructions added to every regression task
    planner_agent: AgentConfig | None = AgentConfig()  # None: no planner (blocked tasks wait for you)
    planner_docs: tuple[str, ...] = ()  # plan documents the planner turns into tasks
    planner_max_chars: int = 40000  # the bounded context pack given to one planner run
    worktree: WorktreeConfig = WorktreeConfig()
    env_pass: tuple[str, ...] = ()  # variables panes get from the shell that started the controller
    gate_preflight: bool = True  # run the gate on main in a fresh worktree before trusting it


# --- validators: each returns the clean value or raises ValueError with the problem -----------


def _int(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def v(x: Any) -> int:
        if isinstance(x, bool) or not isinstance(x, int):
            raise ValueError(f"must be a whole number, got {x!r}")
        if x < lo or (hi is not None and x > hi):
            raise ValueError(f"must be between {lo} and {hi}" if hi is not None else f"must be ≥ {lo}")
        return x

    return v


def _num(lo: float, positive: bool = False) -> Callable[[Any], float]:
    def v(x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ValueError(f"must be a number, got {x!r}")
        if x < lo or (positive and x <= 0):
            raise ValueError(f"must be {'> 0' if positive else f'≥ {lo}'}, got {x}")
        return float(x)

    return v


def _str(x: Any) -> str:
    if not isinstance(x, str) or not x.strip():
        raise ValueError(f"must be a non-empty string, got {x!r}")
    return x


def _opt(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: None if x is None else inner(x)


def _strlist(x: Any) -> tuple[str, ...]:
    if x is None:
        return ()
    if not isinstance(x, list) or not all(isinstance(i, str) and i for i in x):
        raise ValueError("must be a list of non-empty strings")
    return tuple(x)


def _bool(x: Any) -> bool:
    if not isinstance(x, bool):
        raise ValueError(f"must be true or false, got {x!r}")
    return x


def _relglobs(x: Any) -> tuple[str, ...]:
    """Paths or globs inside the repository (no absolute paths, no `..`)."""
    items = _strlist(x)
    for item in items:
        if item.startswith("/") or ".." in item.split("/"):
            raise ValueError(f"{item!r} must be a path inside the repository, like `.env` or `config/*.local.yml`")
    return items


def _names(x: Any) -> tuple[str, ...]:
    return tuple(_ident(name) for name in _strlist(x))


def _choice(*options: str) -> Callable[[Any], str]:
    def v(x: Any) -> str:
        if x not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {x!r}")
        return str(x)

    return v


def _env(x: Any) -> dict[str, str]:
    if x is None:
        return {}
    if not isinstance(x, dict) or not all(isinstance(k, str) for k in x):
        raise ValueError("must be a mapping of NAME: value")
    return {k: str(v) for k, v in x.items()}


AGENT_SCHEMA: dict[str, Callable[[Any], Any]] = {
    "kind": _choice(*AGENT_KINDS),
    "command": _strlist,
    "model": _opt(_str),
    "max_turns": _opt(_int(1)),
    "timeout_secs": _num(0),
    "stall_secs": _num(0),
    "args": _strlist,
    "env": _env,
    "binary": _opt(_str),
    "permission_mode": _choice("bypassPermissions", "acceptEdits", "default", "plan"),
    "append_system_prompt": _opt(_str),
    "stagger_secs": _num(0),
}


def _ident(x: Any) -> str:
    if not isinstance(x, str) or not x.replace("_", "").isalnum() or x[0].isdigit():
        raise ValueError(f"must be an environment variable name, got {x!r}")
    return x


CREDENTIAL_SCHEMA: dict[str, Callable[[Any], Any]] = {"name": _str, "env": _ident, "inject": _opt(_ident)}


def _prices(x: Any) -> dict[str, Price]:
    if x is None:
        return {}
    if not isinstance(x, dict):
        raise ValueError("must be a mapping of model: {input, output, cache_read, cache_write} ($ per million tokens)")
    out = {}
    for model, p in x.items():
        if not isinstance(p, dict) or not {"input", "output"} <= set(p) or not set(p) <= set(Price.__annotations__):
            raise ValueError(f"{model}: needs input and output (and may have cache_read, cache_write), $ per Mtok")
        try:
            out[str(model)] = Price(**{k: _num(0)(v) for k, v in p.items()})
        except ValueError as e:
            raise ValueError(f"{model}: {e}") from None
    return out


SCHEMA: dict[str, Any] = {
    "slaves": _int(1, 64),
    "heartbeat_secs": _num(0.2),
    "max_attempts": _int(1),
    "agent": AGENT_SCHEMA,
    "judge": {"agent": "judge-agent", "max_parallel": _int(1, 64)},
    "gate": _strlist,
    "gate_timeout_secs": _num(1),
    "mainline": {
        "branch": _str,
        "conflict_budget": _int(0),
        "batch_max": _int(1, 64),
        "batch_wait_secs": _num(0),
    },
    "health": {"every_minutes": _num(0), "commands": _strlist, "fix_prompt": _opt(_str)},
    "tmux": {"socket": _opt(_str), "session": _opt(_str)},
    "worktrees": _opt(_str),
    "worktree": {
        "root": _opt(_str),
        "copy": _relglobs,
        "link": _relglobs,
        "setup": _strlist,
        "setup_inputs": _relglobs,
        "setup_timeout_secs": _num(1),
        "port_base": _int(1024, 65000),
        "port_span": _int(1, 10000),
    },
    "env": {"pass": _names},
    "gate_preflight": _bool,
    "owner_files": _strlist,
    "git_ignore": _choice("exclude", "gitignore"),
    "retry": {"base_secs": _num(0, positive=True), "cap_secs": _num(0, positive=True)},
    "credentials": "credentials",
    "prices": _prices,
    "prompts": {"worker": _opt(_str), "judge": _opt(_str), "planner": _opt(_str)},
    "land": {"validate": _strlist},
    "planner": {"agent": "judge-agent", "docs": _strlist, "max_chars": _int(2000)},
}


def find_config(start: Path) -> Path | None:
    """The nearest clanker.yaml at or above `start`, stopping at the git top level's parent."""
    for d in (start, *start.parents):
        candidate = d / CONFIG_NAME
        if candidate.is_file():
            return candidate
        if (d / ".git").exists():
            return None
    return None


def load(repo: Path, path: Path | None = None) -> Config:
    """Load and validate the repo's clanker.yaml (defaults only when there is none)."""
    if path is None:
        path = find_config(Path.cwd()) if Path.cwd().is_relative_to(repo) else None
        if path is None and (repo / CONFIG_NAME).is_file():
            path = repo / CONFIG_NAME
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    if path is not None:
        raw, lines = _parse(path)
    return _build(repo, path, raw, lines)


def _parse(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(shown, None, "file", f"can't read it: {e.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(shown, mark.line + 1 if mark else None, "yaml", f"not valid YAML: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(shown, 1, "(top level)", "must be a mapping of settings, like `slaves: 3`")
    lines: dict[tuple[str, ...], int] = {}

    def walk(n: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*prefix, str(k.value))
                if key in lines:
                    # YAML would silently keep the last one; a typo'd copy is more likely a mistake.
                    raise ConfigError(
                        shown, k.start_mark.line + 1, ".".join(key), f"duplicate key (first on line {lines[key]})"
                    )
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*prefix, str(i))] = item.start_mark.line + 1
                walk(item, (*prefix, str(i)))

    if node is not None:
        walk(node, ())
    return data, lines


def _validate(
    schema: dict[str, Any],
    raw: dict[str, Any],
    prefix: tuple[str, ...],
    shown: str,
    lines: dict[tuple[str, ...], int],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = (*prefix, str(key))
        dotted = ".".join(path)
        line = lines.get(path) or lines.get(prefix)
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(shown, line, dotted, f"unknown key (known here: {known})")
        rule = schema[key]
        if isinstance(rule, dict):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(shown, line, dotted, "must be a mapping")
            out[key] = _validate(rule, value, path, shown, lines)
        elif rule == "judge-agent":
            out[key] = _judge_agent(value, path, shown, lines)
        elif rule == "credentials":
            out[key] = _credentials(value, path, shown, lines)
        else:
            try:
                out[key] = rule(value)
            except ValueError as e:
                raise ConfigError(shown, line, dotted, str(e)) from None
    return out


def _judge_agent(value: Any, path: tuple[str, ...], shown: str, lines: dict[tuple[str, ...], int]) -> Any:
    if value in ("none", "same", None):
        return value or "same"
    if isinstance(value, dict):
        return _validate(AGENT_SCHEMA, value, path, shown, lines)
    raise ConfigError(shown, lines.get(path), ".".join(path), "must be none, same, or a mapping like `agent`")


def _credentials(value: Any, path: tuple[str, ...], shown: str, lines: dict[tuple[str, ...], int]) -> Any:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(shown, lines.get(path), ".".join(path), "must be a list of {name, env[, inject]}")
    creds = []
    for i, item in enumerate(value):
        where = (*path, str(i))
        if not isinstance(item, dict) or "name" not in item or "env" not in item:
            raise ConfigError(shown, lines.get(where) or lines.get(path), ".".join(where), "needs `name` and `env`")
        clean = _validate(CREDENTIAL_SCHEMA, item, where, shown, lines)
        creds.append(Credential(clean["name"], clean["env"], clean.get("inject")))
    names = [c.name for c in creds]
    if len(set(names)) != len(names):
        raise ConfigError(shown, lines.get(path), ".".join(path), "credential names must be unique")
    return tuple(creds)


def _agent(raw: dict[str, Any], where: str, shown: str, line: int | None) -> AgentConfig:
    # AGENT_SCHEMA's keys are AgentConfig's fields: what is not set keeps the dataclass default.
    agent = AgentConfig(**raw)
    if agent.kind == "command" and not agent.command:
        raise ConfigError(shown, line, f"{where}.command", "kind `command` needs `command: [program, args…]`")
    return agent


def _pick_agent(
    raw: Any, worker: AgentConfig, where: str, shown: str, lines: dict[tuple[str, ...], int]
) -> AgentConfig | None:
    """`none`, `same` (the worker's agent) or a mapping like `agent` (judge.agent, planner.agent)."""
    if raw == "none":
        return None
    if raw in ("same", None):
        return worker
    return _agent(raw, where, shown, lines.get(tuple(where.split("."))))


# Where each plain setting sits in clanker.yaml → the Config field it fills. A setting not in the
# file keeps Config's default: the defaults are written once, in the dataclasses above.
PLACES: dict[tuple[str, ...], str] = {
    ("slaves",): "slaves",
    ("heartbeat_secs",): "heartbeat_secs",
    ("max_attempts",): "max_attempts",
    ("judge", "max_parallel"): "judge_max_parallel",
    ("gate",): "gate",
    ("gate_timeout_secs",): "gate_timeout_secs",
    ("gate_preflight",): "gate_preflight",
    ("mainline", "branch"): "mainline_branch",
    ("mainline", "conflict_budget"): "conflict_budget",
    ("mainline", "batch_max"): "batch_max",
    ("mainline", "batch_wait_secs"): "batch_wait_secs",
    ("health", "every_minutes"): "health_every_minutes",
    ("health", "commands"): "health_commands",
    ("tmux", "session"): "tmux_session",
    ("owner_files",): "owner_files",
    ("git_ignore",): "git_ignore",
    ("retry", "base_secs"): "retry_base_secs",
    ("retry", "cap_secs"): "retry_cap_secs",
    ("credentials",): "credentials",
    ("prices",): "prices",
    ("land", "validate"): "land_validate",
    ("planner", "docs"): "planner_docs",
    ("planner", "max_chars"): "planner_max_chars",
    ("env", "pass"): "env_pass",
}
# Settings that need more than a copy; they are built in _build.
SPECIAL = {
    ("agent",),
    ("judge", "agent"),
    ("planner", "agent"),
    ("tmux", "socket"),
    ("worktrees",),
    ("worktree",),
    ("health", "fix_prompt"),
    ("prompts",),
}


def _at(v: dict[str, Any], place: tuple[str, ...]) -> tuple[bool, Any]:
    for key in place:
        if not isinstance(v, dict) or key not in v:
            return False, None
        v = v[key]
    return True, v


def _build(repo: Path, path: Path | None, raw: dict[str, Any], lines: dict[tuple[str, ...], int]) -> Config:
    shown = str(path) if path else CONFIG_NAME
    v = _validate(SCHEMA, raw, (), shown, lines)
    kw: dict[str, Any] = {}
    for place, name in PLACES.items():
        found, value = _at(v, place)
        if found:
            kw[name] = value
    agent = _agent(v.get("agent", {}), "agent", shown, lines.get(("agent",)))
    wt = dict(v.get("worktree", {}))
    root = wt.pop("root", None)
    if root and v.get("worktrees"):
        line = lines.get(("worktree", "root"))
        raise ConfigError(shown, line, "worktree.root", "give `worktree.root` or the older `worktrees`, not both")
    worktrees = root or v.get("worktrees")
    return Config(
        repo=repo,
        path=path,
        agent=agent,
        judge_agent=_pick_agent(_at(v, ("judge", "agent"))[1], agent, "judge.agent", shown, lines),
        planner_agent=_pick_agent(_at(v, ("planner", "agent"))[1], agent, "planner.agent", shown, lines),
        tmux_socket=os.environ.get("CLANKER_TMUX_SOCKET") or _at(v, ("tmux", "socket"))[1],
        worktrees=Path(os.path.normpath(repo / worktrees)) if worktrees else None,
        health_fix_prompt=_at(v, ("health", "fix_prompt"))[1] or "",
        prompt_templates={role: repo / p for role, p in v.get("prompts", {}).items() if p},
        worktree=WorktreeConfig(**wt),
        **kw,
    )
