"""A worktree as an environment the gate can trust (DESIGN §6a).

A fresh `git worktree add` has the tracked files and nothing else: no `.env`, no generated modules,
no `.venv` or `node_modules`. `worktree.copy` brings ignored files over from the user's checkout,
`worktree.link` shares ignored directories by symlink, and `worktree.setup` builds the worktree's
own environment, again whenever `worktree.setup_inputs` change. Gates, setup and agents then run
with the worktree's own variables: `CLANKER_PORT_BASE` (a port range of its own), and `PATH`,
`VIRTUAL_ENV`, `PYTHONPATH`, `NODE_PATH` entries that point into the user's checkout moved to the
worktree's copy of the same directory when it has one — so a gate typed as `python -m pytest` in a
shell with the checkout's `.venv` active uses the worktree's `.venv` once setup made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from ..config import Config
from ..errors import ClankerError
from ..state import atomic
from ..state.paths import Paths
from ..system import git
from .gate import GateResult, run_gate

REMAPPED = ("PATH", "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH")
EXCLUDE_NOTE = "# clanker: this worktree's own ignore file (core.excludesFile for git commands run here)"


class SetupFailed(ClankerError):
    """`worktree.setup` failed in a worktree: the environment's fault, unless the task changed
    the setup inputs (then it is the change's)."""

    def __init__(self, name: str, command: str, tail: str, fingerprint: str, log: Path) -> None:
        last = next((ln for ln in reversed(tail.strip().splitlines()) if ln.strip() and ln[:1] not in "$("), "")
        super().__init__(f"worktree.setup failed in {name}: `{command}`: {last[:200]} (log: {log})")
        self.name = name
        self.command = command
        self.tail = tail
        self.fingerprint = fingerprint
        self.log = log


@cache
def _real(entry: str) -> Path:
    """Where a PATH-like entry really is: the same all the slave's life (every gate and agent
    start remaps a dozen entries, and each resolve is a stat per component)."""
    return Path(os.path.realpath(entry))


def remap(env: Mapping[str, str], checkout: Path, worktree: Path, own: tuple[Path, ...]) -> dict[str, str]:
    """The path variables of `env` that point into the user's checkout, pointed at the worktree's
    copy of the same place where the worktree has one (pure but for `exists`). Entries under
    `own` (clanker's worktree root, inside the checkout by default) are left alone."""

    def move(entry: str) -> str:
        if not entry or not os.path.isabs(entry):
            return entry
        real = _real(entry)
        if not real.is_relative_to(checkout) or any(real.is_relative_to(r) for r in own):
            return entry
        mirror = worktree / real.relative_to(checkout)
        return str(mirror) if mirror.exists() else entry

    out: dict[str, str] = {}
    for var in REMAPPED:
        value = env.get(var)
        if not value:
            continue
        parts = value.split(os.pathsep)
        moved = [move(p) for p in parts]
        if moved != parts:
            out[var] = os.pathsep.join(moved)
    return out


def port_base(cfg: Config, slot: int) -> int:
    return cfg.worktree.port_base + slot * cfg.worktree.port_span


class Workspace:
    """One worktree (`name`: c1, c2, … or a scratch one) and its environment."""

    def __init__(
        self, cfg: Config, paths: Paths, name: str, path: Path, slot: int, say: Callable[[str], None] = lambda _s: None
    ) -> None:
        self.cfg = cfg
        self.paths = paths
        self.name = name
        self.path = path
        self.slot = slot
        self.say = say
        self.tick: Callable[[], None] = lambda: None  # called while its commands run (the slave's loop lives)
        self.tick_secs = 5.0
        self._told: set[str] = set()

    # --- the environment ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What gates, setup and agents in this worktree get on top of the slave's environment."""
        moved = remap(os.environ, self.paths.repo, self.path, (self.paths.worktrees, self.paths.state_dir))
        return {
            **moved,
            **self.git_env(),
            "CLANKER_WORKTREE": str(self.path),
            "CLANKER_CHECKOUT": str(self.paths.repo),
            "CLANKER_PORT_BASE": str(port_base(self.cfg, self.slot)),
            "CLANKER_PORT_SPAN": str(self.cfg.worktree.port_span),
        }

    def run(self, commands: tuple[str, ...], extra: dict[str, str] | None = None) -> GateResult:
        """Run gate-like `commands` in this worktree with its environment (set up beforehand)."""
        env = {**self.env(), **(extra or {})}
        return run_gate(commands, self.path, self.cfg.gate_timeout_secs, env=env, tick=(self.tick_secs, self.tick))

    def gate(self, commands: tuple[str, ...], sha: str | None = None) -> GateResult:
        """Check out `sha` (if given), make sure the environment is set up, run `commands`."""
        if sha is not None:
            git.checkout_detached(self.path, sha)
        self.ensure()
        return self.run(commands)

    # --- copy and link -----------------------------------------------------------------------------

    def _tell_once(self, text: str) -> None:
        if text not in self._told:
            self._told.add(text)
            self.say(text)

    def sync(self) -> list[str]:
        """Bring `worktree.copy` files (new or changed since) and `worktree.link` links in place.
        Returns the paths it copied or linked now."""
        done = self._copy()
        done += self._link()
        return done

    def _own_state(self) -> tuple[str, ...]:
        """clanker's own directories inside the checkout, never copied from it."""
        out = [".clanker"]
        if self.paths.worktrees.is_relative_to(self.paths.repo):
            out.append(str(self.paths.worktrees.relative_to(self.paths.repo)))
        return tuple(out)

    def _copy(self) -> list[str]:
        globs = self.cfg.worktree.copy
        if not globs:
            return []
        checkout = self.paths.repo
        for rel in git.untracked_files(checkout, globs):
            self._tell_once(
                f"worktree.copy: {rel} is not ignored by git, so it is not copied (it would be committed): "
                "add it to .gitignore or commit it"
            )
        copied = []
        for rel in git.ignored_files(checkout, globs, self._own_state()):
            src, dest = checkout / rel, self.path / rel
            try:
                st = src.stat()
            except OSError:
                continue
            if dest.is_symlink() or dest.is_dir():
                continue  # something else put it there (setup, a link): theirs
            try:
                cur = dest.stat()
                if cur.st_size == st.st_size and cur.st_mtime_ns == st.st_mtime_ns:
                    continue
            except FileNotFoundError:
                pass
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)  # keeps the mtime: the next sync sees it is current
            copied.append(rel)
        return copied

    def _link(self) -> list[str]:
        linked = []
        checkout = self.paths.repo
        for pattern in self.cfg.worktree.link:
            for src in sorted(checkout.glob(pattern)):
                rel = str(src.relative_to(checkout))
                if not git.is_ignored(checkout, rel):
                    self._tell_once(f"worktree.link: {rel} is not ignored by git in your checkout: not linked")
                    continue
                dest = self.path / rel
                if dest.is_symlink():
                    continue
                if dest.exists():
                    self._tell_once(f"worktree.link: {rel} exists in {self.name} already (made by setup?): kept")
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, dest, target_is_directory=src.is_dir())
                # `node_modules/` in .gitignore matches a directory, not a symlink of that name.
                if not git.is_ignored(self.path, rel):
                    self._exclude([rel])
                linked.append(rel)
        return linked

    def _exclude(self, entries: list[str]) -> None:
        """Keep what setup or a link made in this worktree out of its commits, in this worktree
        only: its own ignore file (with the user's global ignores in it, which it replaces)."""
        gd = git.worktree_git_dir(self.path)
        if gd is None:
            return
        path = gd / git.EXCLUDES
        have = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        new = [f"/{e}" for e in entries if f"/{e}" not in have]
        if not new:
            return
        if not have:
            user = git.global_excludes()
            text = user.read_text(encoding="utf-8", errors="replace") if user and user.is_file() else ""
            have = [EXCLUDE_NOTE, *text.splitlines(), "# made here by worktree.setup or worktree.link:"]
        atomic.write_text(path, "\n".join([*have, *new]) + "\n")
        self.say(f"  git did not ignore {', '.join(entries)}: kept out of {self.name}'s commits (only there)")

    def git_env(self) -> dict[str, str]:
        """Makes agents' and gates' own git commands here honour this worktree's ignore file."""
        own = git.excludes_file(self.path)
        if own is None:
            return {}
        n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        return {
            "GIT_CONFIG_COUNT": str(n + 1),
            f"GIT_CONFIG_KEY_{n}": "core.excludesFile",
            f"GIT_CONFIG_VALUE_{n}": str(own),
        }

    # --- setup -------------------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """The setup commands and the contents of the setup inputs at the checked-out commit."""
        w = self.cfg.worktree
        if not w.setup:
            return ""
        text = json.dumps(list(w.setup)) + "\n" + git.index_entries(self.path, w.setup_inputs)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def outside_fingerprint(self) -> str:
        """What a gate here reads from outside git: the `worktree.copy` files and `worktree.link`
        targets in the user's checkout (size and mtime). Two gates of one tree agree only if it matches."""
        w = self.cfg.worktree
        if not w.copy and not w.link:
            return ""
        checkout = self.paths.repo
        seen = []
        rels = git.ignored_files(checkout, w.copy, self._own_state()) if w.copy else []
        rels += [str(p.relative_to(checkout)) for pattern in w.link for p in sorted(checkout.glob(pattern))]
        for rel in rels:
            try:
                st = (checkout / rel).stat()
            except OSError:
                continue
            seen.append([rel, st.st_size, st.st_mtime_ns])
        return hashlib.sha1(json.dumps(seen).encode()).hexdigest()[:16]

    def _identity(self) -> list[int]:
        """Which worktree this is: a worktree removed and made again is set up again."""
        st = (self.path / ".git").stat()
        return [st.st_ino, st.st_mtime_ns]

    def is_set_up(self) -> bool:
        if not self.cfg.worktree.setup:
            return True
        raw = atomic.read_json(self.paths.setup_state(self.name))
        return (
            isinstance(raw, dict)
            and raw.get("ok") is True
            and raw.get("fingerprint") == self.fingerprint()
            and raw.get("worktree") == self._identity()
        )

    def ensure(self) -> bool:
        """Copy, link, and run setup if this worktree has not been set up for its current inputs.
        Returns whether setup ran (and passed); raises SetupFailed."""
        self.sync()
        if self.is_set_up():
            return False
        self.setup()
        return True

    def setup(self) -> None:
        w = self.cfg.worktree
        fp = self.fingerprint()
        log = self.paths.setup_log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} setup of {self.name} ({self.path}), inputs {fp}\n")
        self.say(f"  setup: {len(w.setup)} command(s) in {self.name} (log: {log})")
        tick = (self.tick_secs, self.tick)
        result = run_gate(w.setup, self.path, w.setup_timeout_secs, env=self.env(), log=log, tick=tick)
        state = {"ok": result.passed, "fingerprint": fp, "worktree": self._identity(), "at": time.time()}
        atomic.write_json(self.paths.setup_state(self.name), state)
        if not result.passed:
            raise SetupFailed(self.name, result.failed or "?", result.output, fp, log)
        made = git.untracked_entries(self.path)
        if made:
            self._exclude(made)
        self.say(f"  ✓ setup done in {result.seconds:.1f}s")

    def inputs_match(self, ref: str) -> bool:
        """Are the setup inputs here what `ref` (main) has? Then a setup failure is not the task's."""
        return not git.differs(self.path, ref, self.cfg.worktree.setup_inputs)
