"""The gate preflight: is the gate evidence about the worktree it runs in? (DESIGN §6a)

Before the first dispatch of a run, the gate runs on `main` in a *fresh* worktree with the worktree
environment applied (copy, link, setup). Three outcomes stop the fleet before any task is touched:

- setup fails: `worktree.setup` itself is broken;
- the gate fails: while `main` is what the user has, that is the environment's fault (a missing
  ignored file, a missing `.venv`), never a regression — the screen names what is missing and the
  config lines that fix it;
- the gate passes but does not test the worktree: it read tracked files from the user's checkout.

The last one is found by watching the checkout (see `openwatch.py`) during the gate run, with
`PYTHONPYCACHEPREFIX` pointed at an empty directory so Python reads sources rather than the
checkout's cached bytecode. Any tracked file opened there is a suspect; the suspects are then
broken on purpose *in the worktree* and the gate is run once more. If it still passes, and opens
the same files in the checkout again, the gate demonstrably ignores the worktree's copy of them —
a coincidental open by an editor does not repeat, and a gate that reads the worktree fails. So the
check costs one extra gate run only when there is something to confirm.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config
from ..state.events import PreflightRan
from ..state.paths import Paths
from ..state.secrets import redact
from ..system import git
from ..system.openwatch import OpenWatch
from . import recipes, traps
from .gate import GateResult, Tick, run_gate
from .workspace import SetupFailed, Workspace

# Read by every git command (and so by an editor's git panel polling the checkout): no evidence.
VCS_FILES = frozenset({".gitignore", ".gitattributes", ".gitmodules", ".mailmap", ".git-blame-ignore-revs"})
PROBE = "clanker preflight probe: this file was broken on purpose to see whether the gate reads it )]}\n"
MAX_PROBED = 200
QUIET_SECS = 5.0  # the longest look at what the checkout's other readers open
# Ignored directories that hold an environment (made by setup), not files to copy.
ENV_DIRS = frozenset({".venv", "venv", "env", "node_modules", "target", ".tox", ".nox"})
# Ignored directories that are neither an environment nor files a gate needs.
NOISE_DIRS = frozenset(
    {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "dist", "build", ".git", ".clanker", ".idea",
     ".vscode"}
)  # fmt: skip


class Finding(msgspec.Struct, frozen=True):
    """What a preflight found; its fields are the data of the `preflight.ran` event."""

    passed: bool
    kind: str  # ok | setup | gate | trap
    sha: str
    seconds: float
    failed: str = ""  # the command that failed
    tail: str = ""  # the end of its output
    opened: tuple[str, ...] = ()  # tracked files the gate read from the user's checkout
    causes: tuple[str, ...] = ()  # likely reasons, one sentence each
    fix: str = ""  # the clanker.yaml lines that would fix it
    log: str = ""  # the setup log
    partial: bool = False  # the checkout could not be watched completely
    environment: bool = False  # the diagnosis found an environment cause (a missing ignored file, a venv)

    def event(self, slave: str, key: str) -> PreflightRan:
        """What the preflight found, as the event that records it (by `slave`, for settings `key`)."""
        return PreflightRan(
            actor=slave,
            slave=slave,
            key=key,
            passed=self.passed,
            kind=self.kind,
            sha=self.sha,
            seconds=self.seconds,
            failed=self.failed,
            tail=self.tail,
            opened=self.opened,
            causes=self.causes,
            fix=self.fix,
            log=self.log,
            partial=self.partial,
            trusted=self.passed,
        )


# The environment a gate resolves its tools and code through: a shell with another venv active
# (or another PATH) is another environment, whose gate has to earn trust of its own.
ENV_KEYS = ("PATH", "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "CONDA_PREFIX")


def key(cfg: Config) -> str:
    """What a preflight result is about: the gate, the worktree settings and the environment."""
    w = cfg.worktree
    env = [os.environ.get(name, "") for name in ENV_KEYS]
    text = json.dumps([list(cfg.gate), list(w.copy), list(w.link), list(w.setup), list(w.setup_inputs), env])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def needed(cfg: Config) -> bool:
    return bool(cfg.gate) and cfg.gate_preflight


def run(
    cfg: Config, paths: Paths, name: str, slot: int, say: Callable[[str], None], tick: Tick | None = None
) -> Finding:
    """Run the preflight in a fresh scratch worktree `name` at main's head; the worktree is
    removed afterwards (it holds only main's files and what setup and the gate generated).
    `tick`: called while setup and the gate run (a slave's loop is alive meanwhile)."""
    sha = git.branch_head(cfg.repo, cfg.mainline_branch)
    if sha is None:
        return Finding(False, "gate", "", 0.0, tail=f"branch {cfg.mainline_branch} has no commit")
    path = paths.scratch(name)
    if path.exists() and not git.discard_scratch_worktree(cfg.repo, path, git.rev(path, "HEAD") or ""):
        raise SetupFailed(name, "(preflight worktree)", f"{path} has changes: inspect it, then remove it", "", path)
    paths.setup_state(name).unlink(missing_ok=True)
    git.add_worktree(cfg.repo, path, sha)
    ws = Workspace(cfg, paths, name, path, slot, say)
    if tick is not None:
        ws.tick_secs, ws.tick = tick
    started = time.monotonic()
    try:
        return _check(cfg, ws, sha, started, say)
    finally:
        # Only the gate and setup wrote here (a formatter may have rewritten tracked files): main's
        # files are on main, so the scratch worktree goes.
        git.restore(path, git.modified_tracked(path))
        if not git.discard_scratch_worktree(cfg.repo, path, sha):
            say(f"  kept {path}: it is not at {sha[:10]} any more")


def _check(cfg: Config, ws: Workspace, sha: str, started: float, say: Callable[[str], None]) -> Finding:
    log = str(ws.paths.setup_log(ws.name))
    try:
        ws.ensure()
    except SetupFailed as e:
        fix = "fix the failing worktree.setup command (or the input it reads), then run `clanker doctor --gate`"
        return Finding(False, "setup", sha, time.monotonic() - started, e.command, e.tail[-2000:], fix=fix, log=log)
    checkout = cfg.repo
    tracked = set(git.tracked_files(checkout)) - {"clanker.yaml"}
    say(f"  gate on {sha[:10]} in a fresh worktree, watching {checkout} for reads")
    first, seen = _watched_gate(cfg, ws, tracked)
    partial = seen.partial
    # What the gate read from the checkout and NOT from the worktree: it used the checkout's copy
    # instead. A file read from both (a config file found by searching parent directories, like
    # pytest's pyproject.toml or npm's package.json) is no sign of it, nor are VCS files that any
    # git command reads (an editor's git panel polls them).
    suspects = sorted(f for f in seen.checkout - seen.worktree if Path(f).name not in VCS_FILES)
    causes = tuple(traps.findings(cfg, ws.paths.worktrees))
    if not first.passed:
        found = diagnose(cfg, first.output)
        hint = (
            (f"the gate also read {len(suspects)} tracked file(s) from your checkout (e.g. {suspects[0]})",)
            if suspects
            else ()
        )
        return Finding(
            False,
            "gate",
            sha,
            time.monotonic() - started,
            first.failed or "",
            first.output[-2000:],
            tuple(suspects[:20]),
            found.causes + hint + causes,
            found.fix,
            log,
            partial,
            found.environment,
        )
    if suspects:
        # Something else may read the checkout all the while (an editor's git panel re-reads
        # recently changed files): what is read with no gate running is no evidence either.
        noise = _background(cfg.repo, tracked, min(max(first.seconds, 1.0), QUIET_SECS))
        suspects = [f for f in suspects if f not in noise]
    if not suspects:
        return Finding(True, "ok", sha, time.monotonic() - started, log=log, partial=partial)
    suspects = [f for f in suspects if (ws.path / f).is_file()][:MAX_PROBED]
    names = ", ".join(suspects[:3]) + (" …" if len(suspects) > 3 else "")
    say(
        f"  the gate read {len(suspects)} tracked file(s) from your checkout only ({names}): does it test the worktree?"
    )
    for f in suspects:
        (ws.path / f).write_text(PROBE, encoding="utf-8")
    try:
        second, seen2 = _watched_gate(cfg, ws, tracked)
    finally:
        git.restore(ws.path, suspects)
    partial2 = seen2.partial
    again = seen2.checkout
    repeated = sorted(set(suspects) & again)
    if second.passed and repeated:
        recipe = recipes.detect(checkout)
        causes = causes or (
            "something the gate runs reaches into your checkout: an editable install, an absolute path, "
            "a PYTHONPATH or a node_modules link back to it",
        )
        return Finding(
            False,
            "trap",
            sha,
            time.monotonic() - started,
            "",
            "",
            tuple(repeated[:20]),
            causes,
            _yaml({"setup": list(cfg.worktree.setup) or list(recipe.setup)}),
            log,
            partial or partial2,
        )
    return Finding(True, "ok", sha, time.monotonic() - started, log=log, partial=partial or partial2)


def _background(checkout: Path, tracked: set[str], seconds: float) -> frozenset[str]:
    """The tracked files of the checkout that something opens while no gate runs."""
    with OpenWatch(checkout, tracked) as watch:
        time.sleep(seconds)
    return frozenset(watch.opened)


class Seen(msgspec.Struct, frozen=True):
    """The tracked files a gate run opened, in the user's checkout and in the worktree."""

    checkout: frozenset[str]
    worktree: frozenset[str]
    partial: bool  # some directories could not be watched


def _watched_gate(cfg: Config, ws: Workspace, tracked: set[str]) -> tuple[GateResult, Seen]:
    with (
        tempfile.TemporaryDirectory(prefix="clanker-pyc-") as pyc,
        OpenWatch(cfg.repo, tracked) as outside,
        OpenWatch(ws.path, tracked) as inside,
    ):
        env = {**ws.env(), "PYTHONPYCACHEPREFIX": pyc}
        result = run_gate(cfg.gate, ws.path, cfg.gate_timeout_secs, env=env, tick=(ws.tick_secs, ws.tick))
    seen = Seen(frozenset(outside.opened), frozenset(inside.opened), outside.partial or inside.partial)
    return result, seen


class Diagnosis(msgspec.Struct, frozen=True):
    causes: tuple[str, ...] = ()
    fix: str = ""
    copy: tuple[str, ...] = msgspec.field(default_factory=tuple)
    environment: bool = False  # found a cause in the environment (not a guess)


def diagnose(cfg: Config, output: str) -> Diagnosis:
    """Why a gate that passes in the user's checkout fails in a fresh worktree, from its output and
    what the checkout has that a worktree lacks: ignored files (→ worktree.copy) and ignored
    environment directories (→ worktree.setup)."""
    checkout = cfg.repo
    entries = git.ignored_entries(checkout)
    envs = [e.rstrip("/") for e in entries if e.endswith("/") and e.rstrip("/") in ENV_DIRS]
    files = [e for e in entries if not e.endswith("/") and not (set(Path(e).parts) & (ENV_DIRS | NOISE_DIRS))]
    lowered = output.lower()
    named = [f for f in files if _named(f, output)]
    causes: list[str] = []
    copy = list(cfg.worktree.copy)
    for f in named:
        if f not in copy:
            copy.append(f)
    if named:
        causes.append(
            f"the gate's output names {', '.join(named[:5])}, which your checkout has but git ignores, "
            "so a fresh worktree lacks it"
        )
    setup = list(cfg.worktree.setup)
    missing_env = re.search(
        r"no module named|modulenotfounderror|cannot find module|module_not_found|command not found|not found", lowered
    )
    if envs and (missing_env or not named) and not setup:
        recipe = recipes.detect(checkout)
        setup = list(recipe.setup)
        have = ", ".join(e + "/" for e in envs[:3])
        causes.append(
            f"your checkout has {have} (ignored, so not in the worktree): "
            "give each worktree its own with worktree.setup"
        )
    if not causes:
        others = [f for f in files if f not in copy][:5]
        if others:
            causes.append(
                "your checkout has ignored files a worktree lacks; if the gate needs one, copy it: " + ", ".join(others)
            )
        causes.append("run the gate by hand in a fresh worktree to see: git worktree add /tmp/try main")
    parts: dict[str, list[str]] = {}
    if copy != list(cfg.worktree.copy):
        parts["copy"] = copy
    if setup != list(cfg.worktree.setup):
        parts["setup"] = setup
    environment = bool(named) or bool(parts) or bool(envs and missing_env)
    return Diagnosis(tuple(causes), _yaml(parts) if parts else "", tuple(copy), environment)


def _named(rel: str, output: str) -> bool:
    """Does the output name this file: its path, its name, or (Python) its module?"""
    p = Path(rel)
    if rel in output or p.name in output:
        return True
    if p.suffix == ".py":
        parts = list(p.with_suffix("").parts)
        for i in range(len(parts)):
            dotted = ".".join(parts[i:])
            if dotted and (f"'{dotted}'" in output or f'"{dotted}"' in output or f" {dotted}" in output):
                return len(parts[i:]) > 1 or len(dotted) > 3
    return False


def _yaml(parts: dict[str, list[str]]) -> str:
    if not any(parts.values()):
        return ""
    lines = ["worktree:"]
    for k, items in parts.items():
        if not items:
            continue
        lines.append(f"  {k}:")
        lines += [f"    - {json.dumps(i) if _needs_quotes(i) else i}" for i in items]
    return "\n".join(lines)


def _needs_quotes(item: str) -> bool:
    return bool(re.search(r"[:#{}\[\],&*!|>'\"%@`]", item)) or item.startswith(("-", "?"))


def render(data: dict[str, Any], repo: Path) -> str:
    """The one screen that says what the preflight found and what to do."""
    kind = data.get("kind")
    sha = str(data.get("sha") or "")[:10]
    lines: list[str] = []
    if kind == "setup":
        lines.append(f"clanker: worktree.setup fails in a fresh worktree of main ({sha}): nothing was dispatched.")
        lines += ["  " + ln for ln in _tail(str(data.get("tail") or ""), 12)]
    elif kind == "trap":
        opened = list(data.get("opened") or [])
        lines.append("clanker: the gate does not test the worktree it runs in: nothing was dispatched.")
        lines.append(
            f"It read {len(opened)} tracked file(s) from your checkout {repo} instead of the worktree's copy, "
            "and still passed with those files broken in the worktree:"
        )
        lines += [f"  {repo / f}" for f in opened[:5]] + (
            [f"  … and {len(opened) - 5} more"] if len(opened) > 5 else []
        )
        lines.append("So a change that breaks them would pass the gate and land on main.")
    elif kind == "regression":
        lines.append(f"clanker: main's gate fails at {sha} with a gate that was trusted: a regression task was filed.")
        lines += ["  " + ln for ln in _tail(str(data.get("tail") or ""), 8)]
    else:
        lines.append(f"clanker: the gate fails on main ({sha}) in a fresh worktree.")
        lines.append("That is an environment problem, not a regression: nothing was dispatched.")
        lines += ["  " + ln for ln in _tail(str(data.get("tail") or ""), 12)]
    causes = list(data.get("causes") or [])
    if causes:
        lines.append("Likely cause:" if len(causes) == 1 else "Likely causes:")
        lines += [f"  - {c}" for c in causes]
    fix = str(data.get("fix") or "")
    if fix and kind != "regression":
        lines.append("Add to clanker.yaml:" if fix.startswith("worktree:") else "Fix:")
        lines += ["  " + ln for ln in fix.splitlines()]
    if kind == "trap":
        lines.append("(worktree.link is not a fix here: a linked .venv or node_modules still points at your checkout.)")
    if data.get("partial"):
        lines.append(
            "(Part of your checkout could not be watched — inotify limits, see fs.inotify.max_user_watches —"
            " so reads from there may have gone unseen.)"
        )
    if data.get("log") and Path(str(data["log"])).is_file():
        lines.append(f"Setup log: {data['log']}")
    if kind == "gate":
        lines.append(
            "If the gate fails in your own checkout too, main itself is broken: fix it first — a gate that fails "
            "on main can't tell a good change from a bad one."
        )
    if kind != "regression":
        lines.append("Then `clanker doctor --gate` runs this check again; the fleet starts when it passes.")
    return redact("\n".join(wrapped for line in lines for wrapped in _wrap(line)))


WIDTH = 100  # the screen fits an 80-column terminal's overlay give or take, and reads well in a pane


def _wrap(line: str) -> list[str]:
    if len(line) <= WIDTH:
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    hang = lead + ("  " if line.lstrip().startswith("- ") else "")
    return textwrap.wrap(line, WIDTH, initial_indent="", subsequent_indent=hang, break_on_hyphens=False) or [line]


ERRORISH = re.compile(r"error|cannot|can't|not found|no such|missing|denied|refused|failed", re.I)


def _tail(text: str, n: int) -> list[str]:
    """The last `n` lines, and before them the error lines a long stack trace pushed out."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-n:]
    earlier = [ln for ln in lines[:-n] if ERRORISH.search(ln) and not ln.startswith(("$ ", "(exit "))][-3:]
    return [*earlier, "…", *last] if earlier else last
