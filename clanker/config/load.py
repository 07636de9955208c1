"""Find clanker.yaml (walk up from cwd), parse it (YAML nodes keep line numbers), validate it
against the schema and build a frozen Config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import ConfigError
from . import cache
from .model import (
    CONFIG_NAME,
    TEMPLATE_FIELDS,
    AgentConfig,
    BudgetConfig,
    CapacityConfig,
    Config,
    SourceConfig,
    WorktreeConfig,
)
from .schema import SCHEMA, validate

if TYPE_CHECKING:
    import yaml


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
        raw, lines = _parsed(path, repo / ".clanker" / "cache" / "config.json")
    return _build(repo, path, raw, lines)


def _parsed(path: Path, kept: Path) -> cache.Parsed:
    """The file's values and each key's line: from the cache while the file is unchanged."""
    key = cache.key(path)  # before reading: an edit after it is parsed again next time
    found = cache.read(kept, key)
    if found is None:
        found = _parse(path)
        cache.write(kept, key, found)
    return found


def _parse(path: Path) -> cache.Parsed:
    import yaml  # only when the file changed since it was last parsed (config/cache.py)

    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(shown, None, "file", f"can't read it: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(shown, line, "file", f"not UTF-8 text (byte {e.start}): save it as UTF-8") from None
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
    ("hung_secs",): "hung_secs",
    ("tmux_give_up_secs",): "tmux_give_up_secs",
    ("max_attempts",): "max_attempts",
    ("judge", "max_parallel"): "judge_max_parallel",
    ("judge", "max_reworks"): "judge_max_reworks",
    ("gate",): "gate",
    ("gate_timeout_secs",): "gate_timeout_secs",
    ("gate_preflight",): "gate_preflight",
    ("gate_reuse",): "gate_reuse",
    ("branch_prefix",): "branch_prefix",
    ("mainline", "branch"): "mainline_branch",
    ("mainline", "conflict_budget"): "conflict_budget",
    ("mainline", "batch_max"): "batch_max",
    ("mainline", "batch_wait_secs"): "batch_wait_secs",
    ("mainline", "batch_commits"): "batch_commits",
    ("health", "every_minutes"): "health_every_minutes",
    ("health", "commands"): "health_commands",
    ("tmux", "session"): "tmux_session",
    ("owner_files",): "owner_files",
    ("git_ignore",): "git_ignore",
    ("retry", "base_secs"): "retry_base_secs",
    ("retry", "cap_secs"): "retry_cap_secs",
    ("credentials",): "credentials",
    ("executors",): "executors",
    ("notify",): "notify",
    ("prices",): "prices",
    ("land", "validate"): "land_validate",
    ("planner", "docs"): "planner_docs",
    ("planner", "max_chars"): "planner_max_chars",
    ("planner", "review_every"): "planner_review_every",
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
    ("budget",),
    ("capacity",),
    ("source",),
}


FIELD = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def _check_template(path: Path, role: str, shown: str, line: int | None) -> None:
    """Every {{name}} in a prompt template is one clanker fills: an unknown one (a typo, another
    tool's name) is an error naming the template's file and line, not an empty string later."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problem = getattr(e, "strerror", None) or "not UTF-8 text"
        raise ConfigError(shown, line, f"prompts.{role}", f"can't read {path}: {problem}") from None
    fields = TEMPLATE_FIELDS[role]
    for n, row in enumerate(text.splitlines(), 1):
        for name in FIELD.findall(row):
            if name not in fields:
                known = ", ".join("{{" + f + "}}" for f in fields)
                raise ConfigError(str(path), n, f"prompts.{role}", f"unknown field {{{{{name}}}}} (known: {known})")


# flocks' names (and older ones) → clanker's: accepted, with a note saying the new name.
ALIASES: dict[tuple[str, ...], tuple[str, str]] = {
    ("workspace", "branch_prefix"): ("branch_prefix", "branch_prefix"),
    ("land_target",): ("mainline_branch", "mainline.branch"),
    ("max_agents",): ("slaves", "slaves"),
    ("stagger_delay_secs",): ("", "agent.stagger_secs"),
}


def _aliases(v: dict[str, Any], kw: dict[str, Any], shown: str, lines: dict[tuple[str, ...], int]) -> tuple[str, ...]:
    notes = []
    for place, (name, new) in ALIASES.items():
        found, value = _at(v, place)
        if not found:
            continue
        old = ".".join(place)
        if name and name in kw and kw[name] != value:
            raise ConfigError(shown, lines.get(place), old, f"says {value!r} but {new} says {kw[name]!r}: keep one")
        if name:
            kw[name] = value
        notes.append(f"{shown}: `{old}` is clanker's `{new}`: it works, and `{new}` is the name to use")
    return tuple(notes)


SOURCE_NEEDS = {"jsonl": ("path",), "markdown": ("path",), "script": ("command",), "github": ("repo",)}


def _source(raw: dict[str, Any] | None, shown: str, line: int | None) -> SourceConfig | None:
    if not raw:
        return None
    kind = raw.get("type")
    if kind is None:
        raise ConfigError(shown, line, "source", "needs a `type`: jsonl, script, markdown or github")
    missing = [k for k in SOURCE_NEEDS[kind] if not raw.get(k)]
    if missing:
        raise ConfigError(shown, line, "source", f"a {kind} source needs {', '.join(missing)}")
    return SourceConfig(**raw)


def _at(v: dict[str, Any], place: tuple[str, ...]) -> tuple[bool, Any]:
    for key in place:
        if not isinstance(v, dict) or key not in v:
            return False, None
        v = v[key]
    return True, v


def _build(repo: Path, path: Path | None, raw: dict[str, Any], lines: dict[tuple[str, ...], int]) -> Config:
    shown = str(path) if path else CONFIG_NAME
    v = validate(SCHEMA, raw, (), shown, lines)
    kw: dict[str, Any] = {}
    for place, name in PLACES.items():
        found, value = _at(v, place)
        if found:
            kw[name] = value
    notes = _aliases(v, kw, shown, lines)
    agent = _agent(v.get("agent", {}), "agent", shown, lines.get(("agent",)))
    if "stagger_delay_secs" in v:
        agent = msgspec.structs.replace(agent, stagger_secs=v["stagger_delay_secs"])
    override = os.environ.get("CLANKER_MAX_ATTEMPTS")  # `run --max-attempts N`, for that run's fleet
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ConfigError(
                "CLANKER_MAX_ATTEMPTS", None, "max_attempts", f"must be a whole number ≥ 1, got {override!r}"
            )
        kw["max_attempts"] = int(override)
    wt = dict(v.get("worktree", {}))
    root = wt.pop("root", None)
    if root and v.get("worktrees"):
        line = lines.get(("worktree", "root"))
        raise ConfigError(shown, line, "worktree.root", "give `worktree.root` or the older `worktrees`, not both")
    worktrees = root or v.get("worktrees")
    templates = {role: repo / p for role, p in v.get("prompts", {}).items() if p}
    for role, tpl in templates.items():
        _check_template(tpl, role, shown, lines.get(("prompts", role)))
    source = _source(v.get("source"), shown, lines.get(("source",)))
    known = {c.name for c in v.get("credentials", ())}
    for n, x in enumerate(v.get("executors", ())):
        if x.credential is not None and x.credential not in known:
            at = lines.get(("executors", str(n))) or lines.get(("executors",))
            raise ConfigError(
                shown, at, f"executors.{n}.credential", f"no credential named {x.credential!r} in credentials"
            )
    return Config(
        repo=repo,
        path=path,
        notes=notes,
        agent=agent,
        judge_agent=_pick_agent(_at(v, ("judge", "agent"))[1], agent, "judge.agent", shown, lines),
        planner_agent=_pick_agent(_at(v, ("planner", "agent"))[1], agent, "planner.agent", shown, lines),
        tmux_socket=os.environ.get("CLANKER_TMUX_SOCKET") or _at(v, ("tmux", "socket"))[1],
        worktrees=Path(os.path.normpath(repo / worktrees)) if worktrees else None,
        health_fix_prompt=_at(v, ("health", "fix_prompt"))[1] or "",
        prompt_templates=templates,
        worktree=WorktreeConfig(**wt),
        budget=BudgetConfig(**v.get("budget", {})),
        capacity=CapacityConfig(**v.get("capacity", {})),
        source=source,
        **kw,
    )
