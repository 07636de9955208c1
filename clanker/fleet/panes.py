"""The fleet in tmux: which panes belong to this repo, spawning slaves, and stopping everything.

Only panes carrying `@clanker_repo == <this repo>` are ours to look at; only panes that also carry
`@clanker_created` (clanker spawned them) are ours to kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import signal
import sys
import time
from pathlib import Path

import msgspec

from ..config import Config
from ..errors import TmuxError
from ..state import heartbeat, secrets
from ..state.paths import Paths
from ..system import proc as procs
from ..system.tmux import Pane, Tmux, pass_env
from . import envpass

SLAVES_WINDOW = "slaves"


def is_slave_id(clanker_id: str) -> bool:
    return clanker_id[:1] == "c" and clanker_id[1:].isdigit()


def session_name(cfg: Config) -> str:
    if cfg.tmux_session:
        return cfg.tmux_session
    digest = hashlib.sha1(str(cfg.repo).encode()).hexdigest()[:4]
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in cfg.repo.name)
    return f"clanker-{name}-{digest}"


def slave_command(cfg: Config, number: int) -> list[str]:
    return [sys.executable, "-m", "clanker", "--repo", str(cfg.repo), "slave", str(number)]


def hidden(cfg: Config) -> frozenset[str]:
    """Variables a tmux server clanker starts must not get: keys, tokens, the handed-over ones."""
    return frozenset(n for n in os.environ if secrets.looks_secret(n)) | frozenset(envpass.wanted(cfg))


def pane_env(cfg: Config) -> dict[str, str]:
    """The environment given on a new pane's command line: nothing secret (see envpass)."""
    env = pass_env()
    if cfg.tmux_socket:
        env["CLANKER_TMUX_SOCKET"] = cfg.tmux_socket
    if os.environ.get("CLANKER_MAX_ATTEMPTS"):
        env["CLANKER_MAX_ATTEMPTS"] = os.environ["CLANKER_MAX_ATTEMPTS"]  # `run --max-attempts N`
    env.update(envpass.handoff(cfg))
    return env


def slave_env(cfg: Config) -> dict[str, str]:
    """A slave's pane environment: a controller made the pane, and marks it."""
    return {**pane_env(cfg), envpass.SPAWNED: "1"}


class FleetView(msgspec.Struct, frozen=True):
    panes: dict[str, Pane]  # clanker id → pane, for this repo only
    all_panes: list[Pane]


def view(tm: Tmux, repo: Path) -> FleetView:
    """One `list-panes -a` call; keep this repo's panes (another repo's are never touched)."""
    panes = tm.panes()
    mine: dict[str, Pane] = {}
    for p in panes:
        # A live pane wins over a dead one carrying the same id.
        if (
            p.repo == str(repo)
            and p.clanker_id
            and (p.clanker_id not in mine or (mine[p.clanker_id].dead and not p.dead))
        ):
            mine[p.clanker_id] = p
    return FleetView(mine, panes)


def spawn_slaves(tm: Tmux, cfg: Config, numbers: list[int], fv: FleetView, session: str) -> list[tuple[str, str]]:
    """Start `clanker slave N` for each of `numbers` in new panes next to the other slaves;
    returns (slave id, pane id) pairs. A window is filled in one tmux call and all are marked in
    one more: eight slaves start in two or three calls, not forty (each call a process the
    starting slaves wait on)."""
    cwd = str(cfg.repo)
    sibling = next((p.id for p in fv.panes.values() if p.created and is_slave_id(p.clanker_id)), None)
    made: list[tuple[int, str]] = []
    todo = list(numbers)
    try:
        while todo:
            if sibling is not None:
                wanted = [(slave_command(cfg, n), slave_env(cfg)) for n in todo]
                ids = tm.split_many(sibling, cwd, wanted)
                for _, env in wanted[len(ids) :]:
                    envpass.discard(env)  # a split that did not happen hands nothing over
                made += zip(todo, ids, strict=False)
                todo = todo[len(ids) :]
                if not todo:
                    break
            n = todo.pop(0)  # no window yet, or this one is full: open another one
            cmd, env = slave_command(cfg, n), slave_env(cfg)
            # No pane anywhere on the server (none runs yet, most often): no session either.
            if fv.all_panes and tm.has_session(session):
                sibling = tm.new_window(session, SLAVES_WINDOW, cwd, cmd, env)
            else:
                sibling = tm.new_session(session, SLAVES_WINDOW, cwd, cmd, env, hidden(cfg))
            made.append((n, sibling))
    finally:
        if made:  # what was started is ours to stop, even when tmux failed on the next one
            tm.mark_many([(pane, f"c{n}") for n, pane in made], cwd, created=True)
    return [(f"c{n}", pane) for n, pane in made]


class Respawner:
    """Crash-loop backoff: a slave that keeps dying is restarted less and less often."""

    def __init__(self) -> None:
        self.crashes: dict[str, int] = {}
        self.next_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}

    def due(self, sid: str, now: float) -> bool:
        return now >= self.next_at.get(sid, 0.0)

    def record(self, sid: str, now: float) -> float:
        """A respawn happens now; returns the delay before the next one would be allowed."""
        ran = now - self.started_at.get(sid, 0.0)
        count = 1 if ran > 60 else self.crashes.get(sid, 0) + 1
        self.crashes[sid] = count
        delay = min(60.0, 2.0 ** (count - 1)) if count > 1 else 0.0
        self.next_at[sid] = now + delay
        self.started_at[sid] = now
        return delay


def wait_pids(pids: list[int], timeout: float) -> list[int]:
    """Wait (without polling) until these processes exit; returns the ones still alive at timeout."""
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except (ProcessLookupError, OSError):
            continue
    deadline = time.monotonic() + timeout
    try:
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                os.close(fd)
                fds.pop(fd)
        return [pid for pid in fds.values() if heartbeat.pid_alive(pid)]
    finally:
        for fd in fds:
            os.close(fd)


def stop(cfg: Config, tm: Tmux | None, grace: float = 30.0, only: set[str] | None = None) -> list[str]:
    """SIGTERM the controller and every slave of this repo (they checkpoint), then remove the panes
    clanker created. Returns what was stopped."""
    paths = Paths(cfg.repo, cfg.worktrees)
    beats = heartbeat.read_all(paths)
    targets: list[tuple[str, int]] = []
    for sid, beat in sorted(beats.items(), key=lambda kv: kv[0] != "ctl"):
        if only is not None and sid not in only:
            continue
        if not beat.stopped and heartbeat.pid_alive(beat.pid) and beat.pid != os.getpid():
            targets.append((sid, beat.pid))
    for _sid, pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = wait_pids([pid for _, pid in targets], grace)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if tm is not None:
        try:
            fv = view(tm, cfg.repo)
        except TmuxError:
            return [sid for sid, _ in targets]  # the server is gone, and its panes with it
        # Every pane of ours, a dead twin of a live one too (view() shows one pane per id).
        dead_or_ours = [
            p
            for p in fv.all_panes
            if p.repo == str(cfg.repo) and p.created and p.clanker_id and (only is None or p.clanker_id in only)
        ]
        # A pane whose process is gone is closed at once: tmux marks it dead a moment later, and
        # waiting for that (in 50 ms steps) was most of a run's end.
        running = {p.id for p in dead_or_ours if not p.dead and heartbeat.pid_alive(p.pid)}
        if running:
            wait_until_dead(tm, cfg.repo, running, 5.0)
        tm.kill_panes([p.id for p in dead_or_ours])
    return [sid for sid, _ in targets]


def kill_hung(paths: Paths, beat: heartbeat.Beat) -> None:
    """A hung slave can't checkpoint: SIGKILL it (a stopped process dies too), then its agent's
    group if one still works in its worktree (a group id reused by a stranger is left alone)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(beat.pid, signal.SIGKILL)
    wait_pids([beat.pid], 2.0)
    if beat.agent_pgid and procs.group_alive(int(beat.agent_pgid), inside=paths.worktree(beat.id).resolve()):
        procs.signal_group(int(beat.agent_pgid), signal.SIGKILL)


def wait_until_dead(tm: Tmux, repo: Path, pane_ids: set[str], timeout: float) -> None:
    """After their processes exited, tmux marks the panes dead a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in view(tm, repo).panes.values() if p.id in pane_ids and not p.dead]
        if not alive:
            return
        time.sleep(0.05)
