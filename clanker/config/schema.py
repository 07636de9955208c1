"""What clanker.yaml may say: one validator per key (each returns the clean value or raises
ValueError saying what is wrong), and the walk that applies them with file:line in every error."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .model import (
    AGENT_KINDS,
    EXECUTOR_KINDS,
    NOTIFY_KINDS,
    SOURCE_TYPES,
    Credential,
    ExecutorConfig,
    NotifyConfig,
    Price,
)


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


def _prefix(x: Any) -> str:
    """A branch prefix like `clanker/` or `flocks/`: task branches are named under it."""
    text = _str(x)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/", text) or text.endswith("./") or ".." in text:
        raise ValueError(f"must be one word and a slash, like `clanker/` or `agents/`, got {x!r}")
    return text


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


def _abs(x: Any) -> str:
    text = _str(x)
    if not text.startswith("/"):
        raise ValueError(f"must be an absolute path inside the container, like /workspace, got {x!r}")
    return text.rstrip("/") or "/"


EXECUTOR_SCHEMA: dict[str, Callable[[Any], Any]] = {
    "name": _str,
    "kind": _choice(*EXECUTOR_KINDS),
    "slots": _opt(_int(1, 64)),
    "host": _str,
    "workdir": _str,
    "ssh_options": _strlist,
    "exec": _strlist,
    "workspace_mount": _abs,
    "credential": _opt(_str),
    "env": _env,
}
NEEDS = {"ssh": ("host", "workdir", "slots"), "container": ("exec", "slots"), "local": ()}
ONLY = {"ssh": {"host", "workdir", "ssh_options"}, "container": {"exec", "workspace_mount"}, "local": set()}


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


def _notify(x: Any) -> tuple[NotifyConfig, ...]:
    if x is None:
        return ()
    if not isinstance(x, list):
        raise ValueError("must be a list of {command: [argv…]} or {url: https://…}, each with optional `events`")
    out = []
    for n, item in enumerate(x):
        if (
            not isinstance(item, dict)
            or set(item) - {"command", "url", "events"}
            or ("command" in item) == ("url" in item)
        ):
            raise ValueError(f"item {n}: give `command` (a list) or `url`, and optionally `events` (a list of kinds)")
        on = _strlist(item.get("events")) or NOTIFY_KINDS
        wrong = [k for k in on if k not in NOTIFY_KINDS]
        if wrong:
            raise ValueError(f"item {n}: events: {', '.join(wrong)}: not a kind (one of {', '.join(NOTIFY_KINDS)})")
        url = item.get("url", "")
        if url and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise ValueError(f"item {n}: url must start with http:// or https://, got {url!r}")
        out.append(NotifyConfig(command=_strlist(item.get("command")), url=url, events=tuple(on)))
        if "command" in item and not out[-1].command:
            raise ValueError(f"item {n}: command must be a non-empty list")
    return tuple(out)


def _clock(x: Any) -> str:
    if not isinstance(x, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", x):
        raise ValueError(f"must be a time of day like 00:00 or 07:30, got {x!r}")
    return x


SCHEMA: dict[str, Any] = {
    "slaves": _int(1, 64),
    "heartbeat_secs": _num(0.2),
    "hung_secs": _num(1),
    "tmux_give_up_secs": _num(1),
    "max_attempts": _int(1),
    "agent": AGENT_SCHEMA,
    "judge": {"agent": "judge-agent", "max_parallel": _int(1, 64), "max_reworks": _int(1)},
    "gate": _strlist,
    "gate_timeout_secs": _num(1),
    "mainline": {
        "branch": _str,
        "conflict_budget": _int(0),
        "batch_max": _int(1, 64),
        "batch_wait_secs": _num(0),
        "batch_commits": _choice("one", "each"),
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
    "gate_reuse": _bool,
    "branch_prefix": _prefix,
    # flocks' names, accepted beside clanker's (load.ALIASES says which is which)
    "workspace": {"branch_prefix": _prefix},
    "land_target": _str,
    "max_agents": _int(1, 64),
    "stagger_delay_secs": _num(0),
    "owner_files": _strlist,
    "git_ignore": _choice("exclude", "gitignore"),
    "retry": {"base_secs": _num(0, positive=True), "cap_secs": _num(0, positive=True)},
    "credentials": "credentials",
    "executors": "executors",
    "notify": _notify,
    "source": {
        "type": _choice(*SOURCE_TYPES),
        "path": _str,
        "command": _strlist,
        "repo": _str,
        "label": _str,
        "token_env": _ident,
        "base_url": _str,
        "close_on_land": _bool,
        "poll_secs": _num(1),
    },
    "prices": _prices,
    "prompts": {"worker": _opt(_str), "judge": _opt(_str), "planner": _opt(_str)},
    "land": {"validate": _strlist},
    "planner": {"agent": "judge-agent", "docs": _strlist, "max_chars": _int(2000), "review_every": _int(0)},
    "capacity": {"min_free_mb": _opt(_int(0)), "max_load": _opt(_num(0, positive=True))},
    "budget": {
        "daily_usd": _opt(_num(0, positive=True)),
        "total_usd": _opt(_num(0, positive=True)),
        "task_usd": _opt(_num(0, positive=True)),
        "daily_tokens": _opt(_int(1)),
        "task_tokens": _opt(_int(1)),
        "day_starts": _clock,
        "on_exceed": _choice("finish", "stop"),
    },
}


def validate(
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
            out[key] = validate(rule, value, path, shown, lines)
        elif rule == "judge-agent":
            out[key] = _judge_agent(value, path, shown, lines)
        elif rule == "credentials":
            out[key] = _credentials(value, path, shown, lines)
        elif rule == "executors":
            out[key] = _executors(value, path, shown, lines)
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
        return validate(AGENT_SCHEMA, value, path, shown, lines)
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
        clean = validate(CREDENTIAL_SCHEMA, item, where, shown, lines)
        creds.append(Credential(clean["name"], clean["env"], clean.get("inject")))
    names = [c.name for c in creds]
    if len(set(names)) != len(names):
        raise ConfigError(shown, lines.get(path), ".".join(path), "credential names must be unique")
    return tuple(creds)


def _executors(value: Any, path: tuple[str, ...], shown: str, lines: dict[tuple[str, ...], int]) -> Any:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(shown, lines.get(path), ".".join(path), "must be a list of {name, kind, …}")
    out = []
    for i, item in enumerate(value):
        where = (*path, str(i))
        at = lines.get(where) or lines.get(path)
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(shown, at, ".".join(where), "needs a `name` (and a `kind`: local, ssh or container)")
        clean = validate(EXECUTOR_SCHEMA, item, where, shown, lines)
        kind = clean.get("kind", "local")
        missing = [k for k in NEEDS[kind] if k not in clean]
        if missing:
            raise ConfigError(shown, at, ".".join(where), f"{_a(kind)} executor needs {', '.join(missing)}")
        stray = sorted(set(clean) & (set().union(*ONLY.values()) - ONLY[kind]))
        if stray:
            raise ConfigError(shown, at, ".".join(where), f"{', '.join(stray)}: not for {_a(kind)} executor")
        out.append(ExecutorConfig(**{**clean, "kind": kind}))
    names = [x.name for x in out]
    if len(set(names)) != len(names):
        raise ConfigError(shown, lines.get(path), ".".join(path), "executor names must be unique")
    return tuple(out)


def _a(kind: str) -> str:
    return f"an {kind}" if kind == "ssh" else f"a {kind}"
