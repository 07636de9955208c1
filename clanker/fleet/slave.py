"""`clanker slave N`: the slave loop — heartbeat, claim a job, run it, record the outcome.

Waiting is event-driven (the log's inotify events), with the heartbeat interval as a safety net.
SIGTERM/SIGINT/SIGHUP checkpoint the current job (commit WIP to the task branch, release the claim)
and exit cleanly with status 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TextIO

from ..config import LOCAL, Config, load
from ..errors import ClankerError, UsageError
from ..jobs.base import Job
from ..jobs.common import is_task_branch
from ..jobs.context import JobContext
from ..jobs.kinds import KINDS
from ..project import preflight
from ..project.workspace import SetupFailed
from ..state import budget, credentials, heartbeat, secrets
from ..state import events as ev
from ..state.events import Event
from ..state.heartbeat import Heart, SleepDetector
from ..state.locks import LockTimeout, slave_lock
from ..state.model import HELD, State
from ..state.paths import Paths
from ..state.reconcile import alive_slaves, dead_slaves, leftovers, release_events
from ..state.secrets import redact
from ..state.store import Store
from ..system import git, machine, tmux
from ..system import proc as procs
from ..system.clock import SYSTEM, Clock
from ..system.fswatch import LogWaiter
from ..system.signals import SignalRelay
from . import capacity, envpass, placement, scheduler
from .scheduler import choose_job, gate_status, why_idle


class PaneWriter:
    """The slave's pane. When it is gone — the tmux server died, the pane was closed: writes fail
    with EIO or EPIPE — the lines go on into `fallback`, and so do fds 1 and 2 (a late warning must
    not hit the dead terminal either): a dead terminal is not a crash."""

    def __init__(self, fallback: Path) -> None:
        self.fallback = fallback
        self._file: TextIO | None = None

    def line(self, text: str) -> None:
        if self._file is None:
            try:
                print(text, flush=True)
                return
            except OSError:
                self._detach()
        assert self._file is not None
        self._file.write(text + "\n")
        self._file.flush()

    def _detach(self) -> None:
        self.fallback.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.fallback, "a", encoding="utf-8")  # noqa: SIM115 - for the process's life
        with contextlib.suppress(OSError):
            os.dup2(self._file.fileno(), 1)
            os.dup2(self._file.fileno(), 2)
        self._file.write(f"{time.strftime('%H:%M:%S')} the pane is gone: the slave's lines go on here\n")

    @property
    def detached(self) -> bool:
        return self._file is not None


_PANE: PaneWriter | None = None


def say(sid: str, text: str) -> None:
    """A line in the slave's pane (gate output and agent text in it may hold a key: redacted)."""
    line = redact(f"{time.strftime('%H:%M:%S')} {sid} {text}")
    if _PANE is None:
        print(line, flush=True)
    else:
        _PANE.line(line)


class Slave:
    def __init__(self, cfg: Config, number: int, clock: Clock = SYSTEM, executor: str | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wanted_executor = executor  # typed by hand (`--executor NAME`): kept
        self.sid = f"c{number}"
        self.paths = Paths(cfg.repo, cfg.worktrees)
        self.store = Store(self.paths, self.sid)
        self.pane = os.environ.get("TMUX_PANE", "")
        self.heart = Heart(self.paths, self.sid, cfg.heartbeat_secs, pane=self.pane, clock=clock)
        self.heart.info["env"] = envpass.seen(cfg)  # which of the variables it needs it has (doctor)
        self.heart.info["gate_key"] = preflight.key(cfg)  # which preflight result it trusts (doctor)
        self.ctx = JobContext(
            cfg,
            self.paths,
            self.store,
            self.sid,
            self.paths.worktree(self.sid),
            self.heart,
            lambda text: say(self.sid, text),
            clock=clock,
        )
        self.waiter: LogWaiter | None = None
        self._paused_until: float | None = None
        self._config_mtime: float | None = None
        self._short = False  # the machine was short of memory or CPU at the last claim

    # --- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        lock = slave_lock(self.paths, self.sid)
        try:
            lock.acquire(timeout=0)
        except LockTimeout:
            beat = heartbeat.read(self.paths, self.sid)
            pid = f" (pid {beat.pid})" if beat else ""
            raise ClankerError(
                f"slave {self.sid} is already running{pid}: use another number, or `clanker stop`"
            ) from None
        try:
            with SignalRelay((signal.SIGTERM, signal.SIGINT, signal.SIGHUP), self._on_signal):
                return self._run()
        finally:
            lock.release()

    def _run(self) -> int:
        global _PANE
        _PANE = PaneWriter(self.paths.logs / f"{self.sid}.pane.log")
        secrets.register_env()  # keys already in the environment are secrets too
        self._mark_pane()
        self._kill_orphan_agent()
        self.heart.start()
        self.store.append(ev.SlaveStarted(actor=self.sid, slave=self.sid, pid=os.getpid(), pane=self.pane))
        self._release_own_claims()
        self.waiter = LogWaiter(self.paths.state_dir, clock=self.clock)
        say(self.sid, f"slave {self.sid} ready in {self.paths.repo} (worktree {self.ctx.worktree})")
        sleep_watch = SleepDetector(clock=self.clock)
        try:
            while not self.ctx.stopping.is_set():
                self.heart.touch()
                if sleep_watch.slept():
                    # The machine slept: heartbeats are all old. Give everyone a round to beat again.
                    self.heart.beat()
                    self.waiter.wait(self.cfg.heartbeat_secs)
                    continue
                self._reload_config()
                if self._agent_left():
                    self.heart.update(job=None, task=None, phase="an earlier agent will not stop")
                    self.waiter.wait(self.cfg.heartbeat_secs * 3)
                    continue
                if self._budget_pause() or self._setup_blocked():
                    continue
                job = self._claim()
                if job is None:  # the heartbeat already says why
                    self.waiter.wait(self.cfg.heartbeat_secs * 3)
                    continue
                self._run_job(job)
        finally:
            self.waiter.close()
            self.store.append(ev.SlaveStopped(actor=self.sid, slave=self.sid))
            self.heart.stop()
            self._unmark_own_pane()
            say(self.sid, f"slave {self.sid} stopped")
        return 0

    def _reload_config(self) -> None:
        """Pick up clanker.yaml edits (`/slaves N` in the TUI, a person's edit) without a restart."""
        path = self.cfg.path
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if self._config_mtime is None:
            self._config_mtime = mtime
            return
        if mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            cfg = load(self.cfg.repo, path)
        except ClankerError as e:
            say(self.sid, f"clanker.yaml changed but is invalid, keeping the old settings: {e}")
            return
        self.cfg = cfg
        self.ctx.cfg = cfg
        self.heart.update(gate_key=preflight.key(cfg))
        say(self.sid, "clanker.yaml changed: settings reloaded")

    def _budget_pause(self) -> bool:
        """Every credential this slave could use is out of budget: wait for the earliest reset."""
        choice = self.ctx.credential(self.cfg.agent)
        if choice.wait_until is None:
            self._paused_until = None
            return False
        assert self.waiter is not None
        until = time.strftime("%H:%M:%S", time.localtime(choice.wait_until))
        if self._paused_until != choice.wait_until:
            self._paused_until = choice.wait_until
            self.store.append(
                ev.SlavePaused(actor=self.sid, slave=self.sid, credential=choice.name, until=choice.wait_until)
            )
            say(self.sid, f"⏸ credential {choice.name} is out of budget: paused until {until}")
        self.heart.update(job=None, task=None, phase=f"paused until {until} ({choice.name})")
        self.waiter.wait(max(0.05, min(choice.wait_until - self.clock.time() + 0.05, self.cfg.heartbeat_secs * 3)))
        return True

    def _setup_blocked(self) -> bool:
        """This worktree's setup failed on main's inputs: claim nothing until they (or the setup
        commands) change, or someone asks for a retry (`clanker doctor --gate`)."""
        failure = self.store.state().setup_failed.get(self.sid)
        if failure is None:
            return False
        why = self._setup_retry_reason(failure.commands, failure.main_sha)
        if why:
            self.store.append(ev.SetupRetry(actor=self.sid, slave=self.sid, reason=why))
            self.ctx.setup_retrying = True
            say(self.sid, f"↻ {why}: trying worktree.setup again")
            return False
        assert self.waiter is not None
        self.heart.update(job=None, task=None, phase="setup failed: waiting for its inputs to change")
        self.waiter.wait(self.cfg.heartbeat_secs * 3)
        return True

    def _setup_retry_reason(self, commands: str, main_sha: str) -> str | None:
        if setup_commands_hash(self.cfg) != commands:
            return "worktree.setup changed in clanker.yaml"
        head = git.branch_head(self.paths.repo, self.cfg.mainline_branch)
        if head and main_sha and head != main_sha:
            try:
                changed = git.changed_between(self.paths.repo, main_sha, head, self.cfg.worktree.setup_inputs)
            except ClankerError:
                changed = ["?"]
            if changed:
                return f"the setup inputs changed on {self.cfg.mainline_branch} ({', '.join(changed[:3])})"
        return None

    def _setup_failed(self, job: Job, e: SetupFailed) -> None:
        """The worktree's environment could not be set up from main's inputs: not the task's fault.
        Say so, give the job back without counting an attempt, and wait for the inputs to change."""
        say(self.sid, f"✗ {e}")
        say(self.sid, "  that is the environment, not the task: no attempt counted, the job goes back to the queue;")
        say(self.sid, "  this slave waits until the setup inputs or worktree.setup change (or `clanker doctor --gate`)")
        main_sha = git.branch_head(self.paths.repo, self.cfg.mainline_branch) or ""
        failed = ev.SetupFailed(
            actor=self.sid,
            slave=self.sid,
            fingerprint=e.fingerprint,
            commands=setup_commands_hash(self.cfg),
            command=e.command,
            main_sha=main_sha,
            log=str(e.log),
            tail=e.tail[-600:],
            job=job.kind,
            task=job.task or None,
        )
        reason = f"worktree.setup failed in {self.sid} (the environment, not the task)"
        self.store.transact(
            lambda st: [failed, *release_events(st, frozenset({self.sid}), self.sid, reason, refund=True)]
        )
        with contextlib.suppress(ClankerError):
            git.detach(self.ctx.worktree)

    def _on_signal(self, _signum: int) -> None:
        """SIGTERM, SIGINT, SIGHUP (the pane closed): checkpoint the job and stop. Runs in the
        signal relay's thread (system/signals.py), never inside the handler."""
        self.ctx.stopping.set()
        if self.ctx.current is not None:
            self.ctx.current.cancel()
        if self.waiter is not None:
            self.waiter.poke()

    def _mark_pane(self) -> None:
        if not self.pane or envpass.spawned():  # the controller that made the pane marked it
            return
        try:
            tmux.Tmux(self.cfg.tmux_socket if not tmux.inside() else None).mark(
                self.pane, self.sid, str(self.paths.repo), created=False
            )
        except ClankerError as e:
            say(self.sid, f"warning: can't mark this pane ({e})")

    def _unmark_own_pane(self) -> None:
        """A pane a person started this slave in is theirs again: without the label, the
        controller sees c{n} missing and starts its own (a pane clanker made keeps its label and
        is started again in place)."""
        if not self.pane or envpass.spawned():  # a pane clanker made keeps its label
            return
        with contextlib.suppress(ClankerError):
            tm = tmux.Tmux(self.cfg.tmux_socket if not tmux.inside() else None)
            # Pane ids are per server: after the server died, "%0" on the socket may be a new
            # server's pane — one the controller just made. Only the pane this process runs in
            # (as its command, or under the person's shell) is ours to unlabel.
            shown = tm.display(self.pane, "#{pane_pid} #{@clanker_created}").split()
            here = shown[0] in (str(os.getpid()), str(os.getppid())) if shown else False
            if here and shown[1:] != ["1"]:
                tm.unmark(self.pane)

    def _kill_orphan_agent(self) -> None:
        """An earlier incarnation of this slave was killed: stop the agent it left running, and
        keep its group in the heartbeat until it is gone (no job starts while it may still write)."""
        beat = heartbeat.read(self.paths, self.sid)
        if beat and beat.agent_pgid and not heartbeat.pid_alive(beat.pid):
            self.heart.info["agent_pgid"] = int(beat.agent_pgid)
            self._agent_left()

    def _agent_left(self) -> bool:
        """Is an agent of an earlier job (of this slave, or of its previous incarnation) still
        running in the worktree? It is stopped first; True while it could not be."""
        pgid = self.heart.info.get("agent_pgid")
        if not pgid:
            return False
        wt = self.ctx.worktree.resolve()
        if not procs.group_alive(int(pgid), inside=wt):
            self.heart.update(agent_pgid=None)
            return False
        say(self.sid, f"stopping the agent an earlier job left running (pgid {pgid})")
        if procs.stop_group(int(pgid), clock=self.clock, inside=wt):
            say(self.sid, f"stopped it (pgid {pgid})")
            self.heart.update(agent_pgid=None)
            return False
        say(self.sid, f"✗ the agent of an earlier job (pgid {pgid}) will not stop: no new job in this worktree")
        return True

    def _release_own_claims(self) -> None:
        """Claims held under this id belong to an earlier incarnation: save its work, then release."""
        st = self.store.state()
        stale = [t for t in st.tasks.values() if t.slave == self.sid and t.state in HELD]
        if not stale and self.sid not in (st.health_slave, st.plan_slave, st.preflight_slave):
            return
        wt = self.ctx.worktree
        if (wt / ".git").exists():
            branch = git.current_branch(wt)
            if branch and is_task_branch(st, branch) and git.porcelain(wt):
                git.commit_all(wt, f"wip: checkpoint of work interrupted when {self.sid} died")
                say(self.sid, f"saved the interrupted work on {branch}")
            if branch:
                git.detach(wt)
        self.store.transact(lambda s: release_events(s, frozenset({self.sid}), self.sid, f"{self.sid} restarted"))

    # --- claiming --------------------------------------------------------------------------------

    def _claim(self) -> Job | None:
        chosen: list[Job] = []
        idle: list[str] = []  # why nothing was chosen (the heartbeat says it)
        room = capacity.short(machine.room(), self.cfg.capacity)
        if room is not None and not self._short:
            # Said once each time the machine runs short; the slave claims again when it recovers.
            self.store.append(
                ev.Risk(actor=self.sid, slave=self.sid, kind="capacity", message=f"{room}: no agent starts")
            )
        elif room is None and self._short:
            say(self.sid, "the machine has room again: claiming work")
        self._short = room is not None
        spend = self.cfg.budget
        if spend.any:
            # Said once per budget and period (80 %, then spent); tasks over their own budget are
            # blocked for the planner to split, before anything is claimed.
            now = self.clock.time()

            def said(st: State) -> list[Event]:
                planner = self.cfg.planner_agent is not None
                return budget.events(st, spend, now, self.sid) + budget.blocked_tasks(st, spend, self.sid, planner)

            if said(self.store.state()):  # looked at without the lock first: most claims say nothing
                self.store.transact(said)

        healed: list[int] = []

        def landed(task_id: str) -> str | None:
            return git.landed_sha(self.paths.repo, self.cfg.mainline_branch, task_id)

        def decide(st: State) -> list[Event]:
            mine = leftovers(st, self.sid, landed)
            if mine:
                healed.append(len(mine))
                return mine  # this slave is between jobs: whatever it still holds, it lost track of
            beats = heartbeat.read_all(self.paths)
            now = self.clock.time()
            alive = alive_slaves(beats, self.cfg.heartbeat_secs, now) | {self.sid}
            dead = dead_slaves(st, beats, self.cfg.heartbeat_secs, now) - {self.sid}
            evs = release_events(st, dead, self.sid, "slave is dead (stale heartbeat, no process)")
            if evs:
                return evs  # the freed tasks are claimable on the next round
            if credentials.choose(self.cfg.credentials, self.cfg.agent, self.ctx.index, st, now).wait_until:
                return []  # out of budget since the last look: claim nothing, the loop pauses
            gate = gate_status(st, preflight.key(self.cfg), preflight.needed(self.cfg))
            inp, tg = scheduler.fleet_targets(st, self.cfg.slaves, self.cfg.judges, spend, now, room)
            holds = inp.held
            where = placement.place(self.cfg, st, self.sid, alive, now, self.wanted_executor)
            self.ctx.executor = (self.cfg.executor(where) if where else None) or LOCAL
            noted = scheduler.targets_event(st, inp, tg, self.sid)  # a change of targets is said
            noted += placement.placed_events(st, self.sid, where)
            job = choose_job(
                st,
                self.sid,
                slaves=self.cfg.slaves,
                alive=alive,
                owner_files=self.cfg.owner_files,
                judge_cap=self.cfg.judges,
                can_judge=True,
                now=now,
                batch_max=self.cfg.batch_max,
                batch_wait_secs=self.cfg.batch_wait_secs,
                health_every_secs=self.cfg.health_every_minutes * 60,
                can_plan=self.cfg.planner_agent is not None,
                gate=gate,
                held=holds is not None,
                judge_agent=self.cfg.judge_agent is not None,
                tg=tg,
                can_work=where is not None,
            )
            if job is None:
                idle.append(
                    why_idle(
                        st,
                        self.sid,
                        slaves=self.cfg.slaves,
                        owner_files=self.cfg.owner_files,
                        judge_cap=self.cfg.judges,
                        gate=gate,
                        held=holds or (None if where else placement.no_room(self.cfg, st, alive, now)),
                        tg=tg,
                    )  # fmt: skip
                )
                return noted
            chosen.append(job)
            return [*noted, *claim_events(job, self.sid, preflight.key(self.cfg))]

        evs = self.store.transact(decide)
        if evs and not chosen and not idle:
            if healed:
                self.ctx.say(f"healed {len(evs)} claim(s) this slave still held between jobs (an event was lost)")
            else:
                self.ctx.say(f"released {len(evs)} task(s) held by dead slaves")
            return self._claim()
        if not chosen:
            why = idle[-1] if idle else "nothing to do"
            self.heart.update(job=None, task=None, phase="idle" if why == "nothing to do" else f"idle: {why}")
        return chosen[0] if chosen else None

    def _run_job(self, job: Job) -> None:
        try:
            KINDS[job.kind].run(self.ctx, job)
        except SetupFailed as e:
            self._setup_failed(job, e)
        except ClankerError as e:
            # A git or tmux failure inside a job must not kill the slave: give the job back,
            # and pause a moment so a persistent failure can't spin.
            say(self.sid, f"✗ {job.kind} {job.task} failed: {e}")
            error = str(e)
            self.store.transact(lambda st: KINDS[job.kind].on_error(st, job, self.sid, error))
            with contextlib.suppress(ClankerError):
                git.detach(self.ctx.worktree)
            self.ctx.backoff(2)
        self.heart.update(job=None, task=None, phase="idle", agent_pgid=None)


def setup_commands_hash(cfg: Config) -> str:
    return preflight.key(cfg)


def claim_events(job: Job, sid: str, key: str = "") -> list[Event]:
    """The events that give `sid` the job (appended under the queue lock with the decision)."""
    return KINDS[job.kind].claim(job, sid, key)


def run_slave(cfg: Config, number: int, executor: str | None = None) -> int:
    if number < 1:
        raise ClankerError("slave numbers start at 1: `clanker slave 1`")
    if executor is not None and cfg.executor(executor) is None:
        names = ", ".join(x.name for x in cfg.placements)
        raise UsageError(f"no executor named {executor!r} in clanker.yaml (there are: {names})")
    return Slave(cfg, number, executor=executor).run()
