"""`clanker import-flocks flocks.toml`: the equivalent clanker.yaml, its comments kept.

flocks' keys map to clanker's: `max_agents` → `slaves`, `stagger_delay_secs`, `agent_timeout_secs`
and `max_turns` → `agent.*`, `max_retries` → `max_attempts`, `[[credentials]]` as they are,
`[[containers]]` → container `executors` (`devcontainer exec` into `kap_project`, `max_worktrees`
slots, `workspace_mount`, `credential`), `[source]`, `[workspace]` → `branch_prefix` and
`mainline.branch`, `[validate] commands` → `gate`, `[prompt] template` → `prompts.worker`. A key
clanker has no use for is kept as a comment saying so. The result is checked by reading it back.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from ..config import CONFIG_NAME, load
from ..errors import ClankerError, UsageError
from ..state import atomic
from . import Done

KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
TABLE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")


def comments(text: str) -> dict[tuple[str, str], list[str]]:
    """The comment lines above each `key =` (and on its line), by (table, key); a table's own
    comments under (table, "")."""
    out: dict[tuple[str, str], list[str]] = {}
    pending: list[str] = []
    table = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        inline = line.split("#", 1)[1].strip() if "#" in line and not stripped.startswith("#") else ""
        if m := TABLE.match(line):
            table = m.group(1)
            out.setdefault((table, ""), []).extend(pending + ([inline] if inline else []))
        elif m := KEY.match(line):
            out.setdefault((table, m.group(1)), []).extend(pending + ([inline] if inline else []))
        elif stripped:
            continue
        pending = []
    return out


def convert(text: str, where: str = "flocks.toml") -> tuple[str, list[str]]:
    """clanker.yaml's text for a flocks.toml's, and the keys it could not carry over."""
    try:
        f = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{where}: not TOML ({e})") from None
    said = comments(text)
    left: list[str] = []
    out: list[str] = ["# Written by `clanker import-flocks` from " + where + "; see clanker.yaml.example for more."]

    def note(table: str, key: str, indent: str = "") -> None:
        for c in said.get((table, key), []):
            out.append(f"{indent}# {c}" if c else f"{indent}#")

    def put(key: str, value: Any, table: str, old: str, indent: str = "") -> None:
        note(table, old, indent)
        out.append(indent + yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False).strip())

    top = {k: v for k, v in f.items() if not isinstance(v, dict | list)}
    if "max_agents" in top:
        put("slaves", top.pop("max_agents"), "", "max_agents")
    if "max_retries" in top:
        put("max_attempts", top.pop("max_retries"), "", "max_retries")
    agent: dict[str, Any] = {"kind": "claude"}
    agent_from = {"stagger_delay_secs": "stagger_secs", "agent_timeout_secs": "timeout_secs", "max_turns": "max_turns"}
    for old, new in agent_from.items():
        if old in top:
            value = top.pop(old)
            if not (old == "agent_timeout_secs" and value == 0):  # flocks' 0 = no limit: clanker's default
                agent[new] = value
            note("", old)
    out.append(yaml.safe_dump({"agent": agent}, sort_keys=False).strip())
    ws = f.get("workspace") or {}
    if "branch_prefix" in ws:
        put("branch_prefix", ws["branch_prefix"], "workspace", "branch_prefix")
    if "land_target" in ws:
        put("mainline", {"branch": ws["land_target"]}, "workspace", "land_target")
    left += [f"workspace.{k}" for k in ws if k not in ("branch_prefix", "land_target")]
    validate = (f.get("validate") or {}).get("commands")
    if validate:
        put("gate", list(validate), "validate", "commands")
    template = (f.get("prompt") or {}).get("template")
    if template:
        put("prompts", {"worker": template}, "prompt", "template")
    creds = f.get("credentials") or []
    if creds:
        note("credentials", "")
        out.append(yaml.safe_dump({"credentials": [{"name": c["name"], "env": c["env"]} for c in creds]},
                                  sort_keys=False).strip())  # fmt: skip
    execs: list[dict[str, Any]] = []
    for c in f.get("containers") or []:
        x: dict[str, Any] = {"name": c.get("name", f"container{len(execs) + 1}"), "kind": "container"}
        project = c.get("kap_project") or "."
        x["exec"] = ["devcontainer", "exec", "--workspace-folder", project]
        x["slots"] = int(c.get("max_worktrees", 1))
        if c.get("workspace_mount"):
            x["workspace_mount"] = c["workspace_mount"]
        if c.get("credential") and c["credential"] != "default":
            x["credential"] = c["credential"]
        execs.append(x)
        left += [f"containers.{k}" for k in c if k not in ("name", "kap_project", "max_worktrees", "workspace_mount",
                                                           "credential")]  # fmt: skip
    if execs:
        note("containers", "")
        out.append(yaml.safe_dump({"executors": execs}, sort_keys=False).strip())
    src = f.get("source")
    if src:
        note("source", "")
        out.append(yaml.safe_dump({"source": {k: v for k, v in src.items() if k in ("type", "path")}},
                                  sort_keys=False).strip())  # fmt: skip
        left += [f"source.{k}" for k in src if k not in ("type", "path")]
    left += list(top)
    left += [k for k, v in f.items() if isinstance(v, dict | list) and k not in (
        "workspace", "validate", "prompt", "credentials", "containers", "source")]  # fmt: skip
    for key in left:
        out.append(f"# flocks' `{key}` has no clanker setting: left out")
    return "\n".join(out) + "\n", left


def import_flocks(repo: Path, source: Path, output: Path | None) -> Done:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{source}: can't read it ({e.strerror})") from None
    body, left = convert(text, source.name)
    target = output or repo / CONFIG_NAME
    if str(target) == "-":
        return Done(0, body.rstrip("\n"))
    if target.exists():
        raise UsageError(f"{target} exists: move it away, or give --output PATH (or - for stdout)")
    atomic.write_text(target, body)
    try:
        load(repo, target)  # what was written reads back as a clanker.yaml
    except ClankerError as e:
        target.unlink()
        raise UsageError(f"the converted settings don't read back ({e}); nothing was written") from None
    extra = f"; left out: {', '.join(left)}" if left else ""
    return Done(0, f"wrote {target} from {source}{extra}")
