"""The controller: attach existing slave panes, spawn the missing ones, respawn crashed ones with
backoff, reconcile dead slaves' claims, and show the fleet (DESIGN §1–2).

One `list-panes -a` per tick. Between ticks it waits on changes to events.log (inotify) with the
heartbeat interval as the safety net, so an idle fleet costs almost nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from ..config import Config
from ..errors import ClankerError, TmuxError
from ..jobs import rollup
from ..jobs.prompts import history_notes
from ..jobs.review import REVIEW, docs_fingerprint, review_due
from ..project import preflight
from ..state import budget, heartbeat, log
from ..state import events as ev
from ..state.events import Event
from ..state.heartbeat import Heart, SleepDetector
from ..state.intake import Branches
from ..state.locks import LockTimeout, controller_lock
from ..state.model import LIVE, State, TaskState
from ..state.paths import Paths
from ..state.reconcile import dead_slaves, release_events
from ..state.store import Store
from ..system import git
from ..system.clock import SYSTEM, Clock
from ..system.fswatch import LogWaiter
from ..system.signals import SignalRelay
from ..system.tmux import Tmux
from . import panes as fleet
from .notify import Note, Notifier
from .scheduler import gate_status
from .sources import Puller, add_events

SETTLE_SECS = 0.25  # a busy log is looked at in batches: at most this often
NEAR_END = 2  # with at most this many tasks left per slave, the end of a run is watched for at each event
START_GRACE_SECS = 5.0  # a spawned slave not beating by then holds no other back


class Outcome(msgspec.Struct, frozen=True):
    finished: bool
    blocked: list[str]
    left: int = 0  # tasks (and the planner) that can still move


STOPPED = 7  # `run --until-done` ended by a signal before the tasks did


def progress(state: State) -> Outcome:
    """Finished when nothing is left that could still move: every task is done, cancelled, split,
    blocked, or waits on a task that is blocked or cancelled."""
    stuck = {t.id for t in state.tasks.values() if t.state in (TaskState.BLOCKED, TaskState.CANCELLED)}
    changed = True
    while changed:  # dependents of stuck tasks are stuck too
        changed = False
        for t in state.tasks.values():
            if t.id not in stuck and t.state == TaskState.READY and any(d in stuck for d in t.depends_on):
                stuck.add(t.id)
                changed = True
    movable: list[object] = [t for t in state.tasks.values() if t.state in LIVE and t.id not in stuck]
    if state.plan_requests or state.plan_slave:
        movable.append("planner")  # the planner may still add tasks
    blocked = [t.id for t in state.tasks.values() if t.state == TaskState.BLOCKED]
    return Outcome(not movable, blocked, len(movable))


def agents_running(state: State) -> bool:
    """Whether any agent job is under way (work, judging, planning): what runs finishes first."""
    busy = (TaskState.CLAIMED, TaskState.JUDGING)
    return state.plan_slave is not None or any(t.state in busy for t in state.tasks.values())


class Controller:
    """Keeps the fleet: one `tick` attaches, spawns and respawns slave panes and reconciles. A view
    drives it — the headless loop here (`run_until_done`) or the TUI — and tells it only `tick`,
    `reconfigure` and `stopping`; the controller knows nothing of screens. `screen_pane` is the
    tmux pane a screen runs in (slaves then go to its session), None when headless."""

    def __init__(
        self,
        cfg: Config,
        *,
        screen_pane: str | None = None,
        out: Callable[[str], None] | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.screen_pane = screen_pane
        self.paths = Paths(cfg.repo, cfg.worktrees)
        self.store = Store(self.paths, "ctl")
        self.tm = Tmux(cfg.tmux_socket)
        self.out = out or (lambda s: print(s, flush=True))
        self.respawner = fleet.Respawner()
        self._starting: dict[str, tuple[float, float]] = {}  # spawned slave -> when (monotonic, wall), until it beats
        self.held_back = 0  # slaves left to spawn when the starting ones are up
        self.stopping = threading.Event()
        self.waiter: LogWaiter | None = None
        self.wake: Callable[[], None] | None = None  # a screen's own way to wake up (the TUI's)
        self.heart = Heart(self.paths, "ctl", cfg.heartbeat_secs, pane=screen_pane or "", clock=clock)
        self._last_screen = ""
        self._gate_for: Config | None = None
        self._gate_key: tuple[str, bool] = ("", False)
        self._spawned: set[str] = set()
        self._view: fleet.FleetView | None = None  # the last tick's look at the panes
        self._tmux_failed_at: float | None = None
        self._watching_since = clock.time()
        self._stuck_said: set[str] = set()
        self._killed: set[int] = set()  # pids of hung slaves this controller killed
        self.tmux_error = ""  # the last tmux failure, for the summary
        self._sleep = SleepDetector(clock=clock)
        self._session: str | None = None
        self.notifier: Notifier | None = None  # while it runs, with `notify:` set
        self.puller: Puller | None = None  # while it runs, with `source:` set
        self._tail = 0  # how far both have seen events.log: one read of new events serves them
        self._docs_seen: list[tuple[str, int, int]] = []
        self._docs_fp = ""
        self._week = ""  # the ISO week whose closed predecessors were last rolled up

    def session(self) -> str:
        """Where spawned slaves go: this pane's session, or clanker's own when headless."""
        if self._session is None:
            if self.screen_pane:
                self._session = self.tm.display(self.screen_pane, "#{session_name}")
            else:
                self._session = fleet.session_name(self.cfg)
        return self._session

    def reconfigure(self, cfg: Config) -> None:
        """New settings (`/slaves N` rewrote clanker.yaml): the next tick spawns or spares to match."""
        self.cfg = cfg

    # --- one tick --------------------------------------------------------------------------------

    def tick(self) -> fleet.FleetView:
        """Keep every slave c1..cN running — whoever started it and however it ended (only
        `clanker stop`, which stops this controller too, or a lower `slaves:` keeps one stopped)
        — kill the hung ones, and give back what dead ones held."""
        fv = fleet.view(self.tm, self.cfg.repo)
        now = self.clock.time()
        slept = self._sleep.slept()
        if slept:
            self._watching_since = now
        session = self.session()
        beats = heartbeat.read_all(self.paths)  # once per tick, for every decision below
        missing: list[int] = []
        for n in range(1, self.cfg.slaves + 1):
            if self.stopping.is_set():
                break  # `clanker stop` is stopping the slaves: don't start them again
            sid = f"c{n}"
            pane = fv.panes.get(sid)
            beat = beats.get(sid)
            if pane is None:
                if beat and not beat.stopped and heartbeat.pid_alive(beat.pid):
                    continue  # a slave running outside tmux (or on another server): leave it be
                missing.append(n)
            elif pane.dead and pane.created and self.respawner.due(sid, now):
                delay = self.respawner.record(sid, now)
                self.tm.respawn(
                    pane.id, str(self.cfg.repo), fleet.slave_command(self.cfg, n), fleet.slave_env(self.cfg)
                )
                self._spawned.add(sid)
                if beat is not None and beat.stopped:
                    said = f"slave {sid} had stopped (a signal, its pane closed); started again"
                    self.store.append(ev.Risk(actor="ctl", slave=sid, kind="stopped", message=said))
                else:
                    died = f"slave {sid} died; respawned (next backoff {delay:.0f}s)"
                    self.store.append(ev.Risk(actor="ctl", slave=sid, kind="crash", message=died))
        room = self._room_to_start(fv, beats)
        missing, self.held_back = missing[:room], max(0, len(missing) - room)
        if missing and not self.stopping.is_set():
            spawned = fleet.spawn_slaves(self.tm, self.cfg, missing, fv, session)
            for sid, _pane in spawned:
                self._spawned.add(sid)
                self._starting[sid] = (self.clock.monotonic(), now)
                self.respawner.record(sid, now)
            self.store.append(*(ev.SlaveSpawned(actor="ctl", slave=sid) for sid, _ in spawned))
            fv = fleet.view(self.tm, self.cfg.repo)
        self._close_dead_twins(fv)
        if not slept:
            self._kill_hung(now, beats)
            self._reconcile(fv, now, beats)
        self._say_stuck()
        self._tell()
        self._review_plan()
        self._roll_up()
        self._view = fv
        return fv

    def _room_to_start(self, fv: fleet.FleetView, beats: dict[str, heartbeat.Beat]) -> int:
        """How many slaves may be spawned now. Slaves starting together share the cores: on two,
        eight took a second each to be ready where one takes a quarter. So no more start at once
        than there are cores, and the next follow as those beat (their `slave.started` wakes the
        loop). A slave is up when its pane's process is the one beating (or, where a shell stands
        between tmux and it, when it beat since it was spawned); one not up within
        START_GRACE_SECS, or whose pane died, holds nothing back."""
        now = self.clock.monotonic()
        for sid, (at, wall) in list(self._starting.items()):
            pane, beat = fv.panes.get(sid), beats.get(sid)
            up = (
                pane is not None
                and beat is not None
                and not beat.stopped
                and (beat.pid == pane.pid or (beat.wall >= wall and heartbeat.pid_alive(beat.pid)))
            )
            if up or pane is None or pane.dead or now - at > START_GRACE_SECS:
                del self._starting[sid]
        return max(0, len(os.sched_getaffinity(0)) - len(self._starting))

    def _docs_fingerprint(self) -> str:
        """The plan documents' fingerprint, read again only when one of them changed on disk (a
        tick looks at their sizes and times, not their contents)."""
        seen = []
        for name in self.cfg.planner_docs:
            try:
                st = (self.cfg.repo / name).stat()
                seen.append((name, st.st_mtime_ns, st.st_size))
            except OSError:
                seen.append((name, 0, -1))
        if seen != self._docs_seen:
            self._docs_seen, self._docs_fp = seen, docs_fingerprint(self.cfg)
        return self._docs_fp

    def _review_plan(self) -> None:
        """The planner compares the plan with main after enough landings or a change of the plan
        documents (review.review_due): event-driven, never a patrol that spends while nothing moved."""
        if self.cfg.planner_agent is None or not self.cfg.planner_docs:
            return
        why = review_due(self.store.state(), self.cfg.planner_review_every, self._docs_fingerprint())
        if why is not None:
            self.store.append(ev.PlanRequested(actor="ctl", request=REVIEW, reason=why))
            self.out(f"asking the planner to compare the plan with main: {why}")

    def _roll_up(self) -> None:
        """Closed weeks get their rollup (jobs/rollup.py): the newest one asked of the planner, the
        rest — or all, without a planner — written by the summariser now. Looked at when the
        week changes (and once at start), not every tick: it reads every note."""
        now = self.clock.time()
        week = rollup.week_of(now)
        if week == self._week:
            return
        self._week = week
        planner = self.cfg.planner_agent is not None
        ask, written = rollup.write_closed(self.paths, history_notes(self.paths), self.store.state(), now, planner)
        why = "older than the week the planner rolls up" if planner else "no planner agent is configured"
        for w, n in written:
            self.store.append(ev.RolledUp(actor="ctl", week=w, by="summariser", notes=n, why=why))
        if ask is not None:
            self.store.append(ev.PlanRequested(actor="ctl", request=rollup.ASK + ask, reason=f"the week {ask} closed"))
            self.out(f"asking the planner to roll up the week {ask}")

    def _tell(self) -> None:
        """The events appended since the last look — read once — to the notifier and the
        source; and the tasks the source gave meanwhile, added once each (by their origin)."""
        if self.notifier is None and self.puller is None:
            return
        got = list(log.read_from(self.paths.events, self._tail))
        if got:
            self._tail = got[-1][1]
        new = [e for e, _ in got]
        state = self.store.state()
        if self.notifier is not None:
            self.notifier.poll(state, new)
        if self.puller is None:
            return
        specs = self.puller.poll(state, new)
        if specs:
            branches = Branches.of(self.cfg)
            added = self.store.transact(lambda st: add_events(st, specs, branches))
            if added:
                self.out(f"{len(added)} task(s) from the {self.cfg.source.type if self.cfg.source else ''} source")

    def _close_dead_twins(self, fv: fleet.FleetView) -> None:
        """A dead pane clanker made whose id a live pane now carries (a spawn raced a dying tmux
        server, and the second slave found the first holding its lock) is closed: it is ours, and
        nothing would ever respawn or stop it."""
        live = {sid: p.id for sid, p in fv.panes.items() if not p.dead}
        twins = [
            p.id
            for p in fv.all_panes
            if p.dead and p.created and p.repo == str(self.cfg.repo) and live.get(p.clanker_id, p.id) != p.id
        ]
        if twins:
            self.tm.kill_panes(twins)

    def _say_stuck(self) -> None:
        """Work no slave of this fleet can move (only its author could judge it): said once, as a
        risk in the log (the tail shows it) and on the headless screen, with what to change."""
        for line in no_judge(self.store.state(), self.cfg.slaves):
            task = line.split(" ", 1)[0]
            if task in self._stuck_said:
                continue
            self._stuck_said.add(task)
            self.out(f"! {line}")
            self.store.append(ev.Risk(actor="ctl", task=task, kind="stuck", message=line))

    def _kill_hung(self, now: float, beats: dict[str, heartbeat.Beat]) -> None:
        """A slave alive but not moving (stopped, frozen, deadlocked) holds its task forever: kill
        it and its agent; its pane is respawned and its work given back like any dead slave's.
        Judged only after this controller itself watched for `hung_secs` (a restart, a sleep)."""
        hung = self.cfg.hung_secs
        if now - self._watching_since < hung:
            return
        for sid, beat in beats.items():
            if sid == "ctl" or beat.pid in self._killed or not heartbeat.is_hung(beat, hung, now):
                continue
            what = "heartbeat" if beat.age(now) > hung else "main loop"
            fleet.kill_hung(self.paths, beat)
            self._killed.add(beat.pid)  # SIGKILL takes a moment: the next tick must not count it twice
            said = f"slave {sid} was alive but its {what} stood still over {hung:.0f}s: killed it and its agent"
            self.store.append(ev.Risk(actor="ctl", slave=sid, kind="hung", message=said))

    def _reconcile(self, fv: fleet.FleetView, now: float, beats: dict[str, heartbeat.Beat]) -> None:
        dead_panes = frozenset(sid for sid, p in fv.panes.items() if p.dead)
        # Looked at without the lock first: most ticks nobody is dead, and the queue lock is the
        # slaves' to take. Decided again under the lock when someone may be.
        if not dead_slaves(self.store.state(), beats, self.cfg.heartbeat_secs, now, dead_panes):
            return

        def decide(st: State) -> list[Event]:
            # Read again under the lock: a beat from before another slave's claim would make that
            # fresh claim look ownerless.
            fresh = heartbeat.read_all(self.paths)
            dead = dead_slaves(st, fresh, self.cfg.heartbeat_secs, now, dead_panes)
            return release_events(st, dead, "ctl", "slave is dead (stale heartbeat, no process)")

        self.store.transact(decide)

    def request_preflight(self) -> None:
        """A new run: the gate is preflighted again before the first dispatch, unless the last
        preflight passed on this very main with these settings (that evidence still holds)."""
        if not preflight.needed(self.cfg):
            return
        key = preflight.key(self.cfg)
        head = git.branch_head(self.cfg.repo, self.cfg.mainline_branch)

        def decide(st: State) -> list[Event]:
            p = st.preflights.get(key)
            if st.preflight_slave or st.preflight_wanted or p is None:
                return []  # running, asked for, or due anyway
            if p.passed and p.sha == head:
                return []
            return [ev.PreflightRequested(actor="ctl", reason="a new run")]

        self.store.transact(decide)

    def gate(self) -> str:
        """trusted | pending | running | failed (see scheduler.gate_status)."""
        if self._gate_for is not self.cfg:  # the key hashes the whole gate setup: once per config
            self._gate_for, self._gate_key = self.cfg, (preflight.key(self.cfg), preflight.needed(self.cfg))
        return gate_status(self.store.state(), *self._gate_key)

    def budget_held(self) -> str | None:
        """Why no agent run may start now (a budget is spent), or None."""
        if not self.cfg.budget.any:
            return None
        return budget.standing(self.store.state(), self.cfg.budget, self.clock.time()).held

    def draw(self, fv: fleet.FleetView) -> None:
        """Headless: one line of task counts whenever they change (the TUI draws everything else)."""
        counts = self.store.state().counts()  # archived tasks too
        line = "  ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
        if line != self._last_screen:
            self._last_screen = line
            self.out(time.strftime("%H:%M:%S ") + line)

    # --- loop --------------------------------------------------------------------------------------

    @contextmanager
    def running(self, wait_on_log: bool = True) -> Iterator[None]:
        """For as long as this controller runs: hold the controller lock, mark its pane, beat, and
        stop on SIGTERM/SIGINT/SIGHUP. With `wait_on_log`, `self.waiter` wakes on events.log writes
        (the TUI has its own waking instead)."""
        lock = controller_lock(self.paths)
        try:
            lock.acquire(timeout=0)
        except LockTimeout:
            raise ClankerError(
                "a controller is already running for this repo: attach to it, or `clanker stop`"
            ) from None
        try:
            with SignalRelay((signal.SIGTERM, signal.SIGINT, signal.SIGHUP), self._on_signal):
                if self.screen_pane:
                    self.tm.mark(self.screen_pane, "ctl", str(self.cfg.repo), created=False)
                self.heart.start()
                self.waiter = LogWaiter(self.paths.state_dir, clock=self.clock) if wait_on_log else None
                self._tail = self.paths.events.stat().st_size if self.paths.events.exists() else 0
                if self.cfg.notify:
                    self.notifier = Notifier(self.cfg, self.store.append, self.clock)
                if self.cfg.source is not None:
                    self.puller = Puller(self.cfg, self.store.append)
                self._tell()
                try:
                    self.request_preflight()
                    yield
                finally:
                    self._tell()  # what happened at the end is told too
                    if self.puller is not None:
                        self.puller.close()
                        self.puller = None
                    if self.notifier is not None:
                        self.notifier.close()
                        self.notifier = None
                    if self.waiter is not None:
                        self.waiter.close()
                    self.heart.stop()
                    self.store.save_snapshot_if_behind(now=True)
        finally:
            lock.release()

    def run_until_done(self, timeout: float | None = None) -> int:
        """The headless view: tick until every task is done (0) or stuck (1), time runs out (3), or
        the gate preflight failed (4), tmux kept failing (5), a budget is spent (6), a signal stopped
        it (7), printing the task counts when they change."""
        started = self.clock.monotonic()
        code = 0
        fv: fleet.FleetView | None = None
        ticked = looked = float("-inf")
        left = 0  # tasks that can still move, at the last look
        with self.running():
            assert self.waiter is not None
            while not self.stopping.is_set():
                left = self._settle(looked, left)
                if self.stopping.is_set():
                    code = STOPPED
                    break
                looked = self.clock.monotonic()
                st = self.store.state()
                if not st.total and not (st.plan_requests or st.plan_slave):
                    self.out("no tasks: add some with `clanker task add TITLE`")
                    break
                # Woken by the log, only the counts and the end are looked at; the fleet itself
                # (one tmux query, the heartbeats, spawning) is kept every heartbeat_secs: a busy
                # fleet appends many events a second, and each used to cost a whole tick.
                # While slaves are held back, the next event may be a starting one's first.
                if fv is None or self.held_back or self.clock.monotonic() - ticked >= self.cfg.heartbeat_secs:
                    try:
                        fv = self.tick()
                    except TmuxError as e:
                        if self._tmux_failing(e):
                            code = 5  # clanker's own failure: not "blocked", not "out of time"
                            break
                        self.waiter.wait(self.cfg.heartbeat_secs)
                        continue
                    ticked = self.clock.monotonic()
                    self._tmux_failed_at = None
                self.draw(fv)
                self.store.save_snapshot_if_behind()
                if self.gate() == "failed":
                    code = 4  # the environment, not the tasks: nothing was dispatched
                    break
                result = progress(self.store.state())
                left = result.left
                if result.finished and self._still_finished(result):
                    code = 1 if result.blocked else 0
                    break
                held = self.budget_held()
                if held and not agents_running(self.store.state()):
                    # Spent: nothing more will move until the period ends or the limit is raised.
                    self.out(f"stopped: {held}")
                    self.out(budget.summary(budget.standing(self.store.state(), self.cfg.budget, self.clock.time())))
                    code = 6
                    break
                if timeout is not None and self.clock.monotonic() - started > timeout:
                    code = 3
                    break
                self.waiter.wait(self.cfg.heartbeat_secs)
            else:  # a signal (`clanker stop`, Ctrl-C, the terminal closed) ended it first: not "done"
                code = STOPPED
            if self.notifier is not None:
                self._tell()
                self.notifier.send(finished_note(self.store.state(), code))
        return code

    def _settle(self, looked: float, left: int) -> int:
        """Eight busy slaves append dozens of events a second: one look per batch of them, at most
        every SETTLE_SECS (a person reads the counts line no faster). Once no more tasks are left
        than slaves, any event may be the last one, and the run ends the moment it comes. Near
        that point the batch is waited out on the log, counting at each wake (a blind wait held
        the end of a run up to SETTLE_SECS, 0.1 s on average); before it, blind (a count at each
        of those events cost a controller more than the looks). Returns the tasks left."""
        assert self.waiter is not None
        slaves = self.cfg.slaves
        while left > slaves and not self.held_back and not self.stopping.is_set():
            remaining = looked + SETTLE_SECS - self.clock.monotonic()
            if remaining <= 0:
                break
            left = progress(self.store.state()).left
            if left <= slaves:
                break
            if left > NEAR_END * slaves:
                self.clock.wait(self.stopping, remaining)
                break
            self.waiter.wait(remaining)
        return left

    def _still_finished(self, result: Outcome) -> bool:
        """Is the run really over? With every task done, yes (unless a review of the plan is now
        due): the job that lands the last task writes its follow-ups in the same append, and a
        plan job its tasks with its end. With tasks blocked, a job that blocks one appends the
        planner request with it too, but a reader can land between two writes of a job that makes
        several: that end is worth one short look again. (Every run paid that look, 0.3 s.)"""
        assert self.waiter is not None
        if result.blocked:
            self.waiter.wait(min(0.3, self.cfg.heartbeat_secs))
        self._review_plan()  # the last landings may make a review of the plan due: it runs first
        return progress(self.store.state()).finished

    def _tmux_failing(self, e: TmuxError) -> bool:
        """A tmux command failed (its server died, or is restarting): said once, tried again each
        tick — spawning starts a new server — and given up on after `tmux_give_up_secs`."""
        now = self.clock.monotonic()
        self.tmux_error = str(e)
        if self._tmux_failed_at is None:
            self._tmux_failed_at = now
            self.out(f"tmux failed ({e}): trying again")
            self.store.append(ev.Risk(actor="ctl", kind="tmux", message=f"tmux failed: {e}"))
        return now - self._tmux_failed_at > max(self.cfg.tmux_give_up_secs, 10 * self.cfg.heartbeat_secs)

    def _on_signal(self, _signum: int) -> None:
        """SIGTERM, SIGINT, SIGHUP: stop (in the signal relay's thread, system/signals.py)."""
        self.stopping.set()
        if self.waiter is not None:
            self.waiter.poke()
        if self.wake is not None:
            self.wake()

    def stop_spawned(self) -> None:
        """Stop this repo's fleet: the slaves this controller started and every other one in a
        pane clanker created (an earlier controller's); a slave a person started keeps running.
        A dead tmux server is no reason to leave processes behind: they are found by heartbeat."""
        ours = set(self._spawned)
        with contextlib.suppress(ClankerError):
            # The last tick's look is enough: since then only this controller made panes.
            fv = self._view if self._view is not None else fleet.view(self.tm, self.cfg.repo)
            ours |= {sid for sid, p in fv.panes.items() if p.created and sid != "ctl"}
        if ours:
            fleet.stop(self.cfg, self.tm, only=ours)


def finished_note(state: State, code: int) -> Note:
    counts = state.counts()
    done, total = counts.get("done", 0), state.total
    why = {0: "every task is done", 1: "some tasks are blocked", 3: "out of time", 4: "the gate preflight failed",
           5: "tmux kept failing", 6: "a budget is spent", STOPPED: "stopped by a signal"}  # fmt: skip
    return Note("run.finished", f"run finished: {done}/{total} tasks done — {why.get(code, f'exit {code}')}", None,
                {"exit": code})  # fmt: skip


def no_judge(state: State, slaves: int) -> list[str]:
    """Submitted tasks no slave can judge: their author is the only slave, or the others' setup failed."""
    if slaves <= 0:
        return []
    out = []
    for t in state.tasks.values():
        if t.state != TaskState.NEEDS_JUDGE:
            continue
        others = [f"c{n}" for n in range(1, slaves + 1) if f"c{n}" != t.author]
        able = [s for s in others if s not in state.setup_failed]
        if able:
            continue
        if not others:
            out.append(
                f"{t.id} waits for a judge, and its author {t.author} is the only slave: set `slaves: 2` or more"
            )
        else:
            out.append(f"{t.id} waits for a judge: {', '.join(others)} can't work (worktree.setup failed)")
    return out


def summary(
    state: State,
    code: int,
    timeout: float | None,
    repo: Path | None = None,
    key: str = "",
    slaves: int = 0,
    tmux_error: str = "",
) -> str:
    """The one-screen summary `clanker run --until-done` ends with (`key`: the gate settings the
    run used; `slaves`: how many it had, to say when a task can find no judge)."""
    lines = []
    pre = state.preflights.get(key) or state.preflight
    if code == 4 and pre is not None:
        return preflight.render(pre.detail, repo or Path.cwd())
    lines.append(f"{state.counts().get('done', 0)}/{state.total} tasks done")
    if code == 3:
        lines.append(f"time ran out after {timeout:.0f}s" if timeout else "time ran out")
    if code == 5:
        lines.append(f"stopped: {tmux_error or 'tmux kept failing'}; check tmux, then run again")
    if code == STOPPED:
        lines.append("stopped by a signal before the end; `clanker run --until-done` goes on from here")
    for t in state.tasks.values():
        if t.state != TaskState.DONE:
            reason = f" — {t.reason}" if t.reason else ""
            lines.append(f"  {t.id} {t.state}{reason}"[:200])
    for f in state.setup_failed.values():
        lines.append(f"  {f.slave}: worktree.setup fails (`{f.command}`), waiting for its inputs to change — {f.log}")
    lines += [f"  {line}" for line in no_judge(state, slaves)]
    return "\n".join(lines)
