"""What a job needs from the slave running it."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import msgspec.structs

from ..agents import adapter_for
from ..agents.base import AgentRequest, AgentResult, Outcome
from ..agents.launch import Process
from ..agents.runner import AgentRun, RunResult
from ..config import LOCAL, AgentConfig, Config, ExecutorConfig
from ..errors import ClankerError
from ..executors.container import Container
from ..executors.ssh import SshHost
from ..project import preflight
from ..project.gate import GateResult
from ..project.workspace import Workspace
from ..state import budget, credentials
from ..state import events as ev
from ..state.heartbeat import Heart
from ..state.locks import launch_lock
from ..state.model import TaskState
from ..state.paths import Paths
from ..state.secrets import redact
from ..state.store import Store
from ..state.usage import Usage
from ..system import git
from ..system import proc as procs
from ..system.clock import SYSTEM, Clock
from ..system.remote import SSH_FAILED, RemoteError


@dataclass
class JobContext:
    cfg: Config
    paths: Paths
    store: Store
    sid: str
    worktree: Path
    heart: Heart
    say: Callable[[str], None]
    stopping: threading.Event = field(default_factory=threading.Event)
    current: AgentRun | None = None
    on_files: Callable[[list[str]], None] | None = None  # files the agent's stream says it wrote
    _ws: Workspace | None = field(default=None, repr=False)
    setup_retrying: bool = False  # setup failed here before: say so when it works again
    prepared: bool = True  # the worktree was made ready for this job (a lander does it only to gate)
    landings: int = 0  # batches this slave landed (git maintenance runs every so many)
    held: str | None = None  # why the last agent run was not started (a budget is spent)
    clock: Clock = SYSTEM
    executor: ExecutorConfig = LOCAL  # where this slave's work agents run (its placement)
    away: SshHost | Container | None = None  # set while a work agent runs on `executor`

    @property
    def workspace(self) -> Workspace:
        """This slave's worktree as an environment (rebuilt when clanker.yaml is reloaded)."""
        if self._ws is None or self._ws.cfg is not self.cfg:
            self._ws = Workspace(self.cfg, self.paths, self.sid, self.worktree, self.index + 1, self.say)
            self._ws.tick = self.heart.touch
            self._ws.tick_secs = tick_secs(self.cfg)
        return self._ws

    def ensure_env(self) -> None:
        """Copy, link and set up the worktree as it is checked out now (raises SetupFailed)."""
        ws = self.workspace
        if not ws.is_set_up():
            self.heart.update(phase="setup")
        ran = ws.ensure()
        if ran and (self.setup_retrying or self.sid in self.store.state().setup_failed):
            self.setup_retrying = False
            self.store.append(ev.SetupOk(actor=self.sid, slave=self.sid))

    def gate(self, commands: tuple[str, ...] | None = None, sha: str | None = None) -> GateResult:
        """The gate (or `commands`) in this slave's worktree, at `sha` if given, environment ready.

        A setup that fails on setup inputs this tree changed (relative to main) is the change's
        failure, so it comes back as a failed gate; on main's own inputs it is the environment's,
        and SetupFailed is raised for the slave to handle.
        """
        from ..project.workspace import SetupFailed

        cmds = self.cfg.gate if commands is None else commands
        if sha is not None:
            git.checkout_detached(self.worktree, sha)
        try:
            self.ensure_env()
        except SetupFailed as e:
            if self.workspace.inputs_match(self.main):
                raise
            output = f"$ {e.command}\n{e.tail}"
            return GateResult(False, output[-4000:], 0.0, f"worktree.setup: {e.command}")
        self.heart.update(phase="gate")
        return self.workspace.run(cmds)

    @property
    def repo(self) -> Path:
        return self.paths.repo

    @property
    def main(self) -> str:
        return self.cfg.mainline_branch

    @property
    def index(self) -> int:
        """0 for c1, 1 for c2, …: spreads slaves over credentials."""
        return max(0, int(self.sid[1:]) - 1) if self.sid[1:].isdigit() else 0

    def credential(self, agent: AgentConfig) -> credentials.Choice:
        creds = self.cfg.credentials
        if self.away is not None and self.executor.credential is not None:
            creds = tuple(c for c in creds if c.name == self.executor.credential)  # the executor's own
        return credentials.choose(creds, agent, self.index, self.store.state(), self.clock.time())

    def taken_over(self) -> bool:
        """A person asked to take over this slave's agent session (`clanker takeover cN`)."""
        return self.sid in self.store.state().takeovers

    def _workspace_env(self) -> dict[str, str]:
        """The worktree's environment for an agent: paths here mean nothing on an ssh host, so an
        agent there gets only its ports (its own environment is the host's)."""
        env = self.workspace.env()
        if isinstance(self.away, SshHost):
            return {k: env[k] for k in ("CLANKER_PORT_BASE", "CLANKER_PORT_SPAN")}
        return env

    def _wrap(self, prompt: str) -> Callable[[Process], Process] | None:
        away = self.away
        return None if away is None else (lambda proc: away.wrap(proc, prompt))

    def run_agent(
        self,
        agent: AgentConfig,
        role: str,
        task_id: str,
        attempt: int,
        prompt: str,
        resume: str | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Run an agent once, showing its progress in the pane and logging its raw stream."""
        # Gate output and earlier errors quoted in a prompt may hold a key: it goes neither into
        # .clanker/ nor to the model's provider.
        prompt = redact(prompt)
        prompt_file = self.paths.prompts / f"{task_id}-{role}-{attempt}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(prompt, encoding="utf-8")
        req = AgentRequest(
            role,
            prompt,
            task_id,
            self.sid,
            self.worktree,
            attempt,
            prompt_file,
            agent,
            resume,
            env={**self._workspace_env(), **(env or {})},
            prices=self.cfg.prices,
        )
        log = self.paths.attempt_log(task_id, attempt, "work" if role == "worker" else role)
        run = AgentRun(
            adapter_for(agent),
            req,
            log,
            lambda line: self.say(f"  │ {line}"),
            # Simultaneous agent starts can corrupt an agent's settings file: start one at a time,
            # and keep the next one waiting `stagger_secs` after a start.
            launch_guard=lambda: self._launch_guard(agent.stagger_secs),
            on_start=lambda pgid: self.heart.update(agent_pgid=pgid),
            on_files=self.on_files,
            clock=self.clock,
            on_tick=lambda: self._tick(run),
            tick_secs=tick_secs(self.cfg),
            on_usage=(lambda used: self._overspends(None if role == "planner" else task_id, used))
            if self.cfg.budget.any
            else None,
            wrap=self._wrap(prompt),
        )
        self.current = run
        self.heart.update(phase=f"{role} agent")
        try:
            result = run.run()
        finally:
            self.current = None
            # The heartbeat keeps the agent's group until none of it is left: a slave that dies
            # now, or its next incarnation, still knows what to stop before the next job.
            if run.pgid is None or procs.stop_group(run.pgid, clock=self.clock, inside=self.worktree.resolve()):
                self.heart.update(agent_pgid=None)
        return result

    @contextmanager
    def holding(self, task_ids: list[str], state: TaskState) -> Iterator[bool]:
        """Under the queue lock (no reclaim can happen meanwhile): does this slave still hold
        every one of `task_ids` in `state`?"""
        with self.store.locked() as st:
            yield all((t := st.tasks.get(i)) is not None and t.slave == self.sid and t.state == state for i in task_ids)

    def commit_held(
        self, task_id: str, message: str, changes: bool | None = None, stat: list[str] | None = None
    ) -> str | None:
        """Commit the worktree to the task's branch, only while this slave still holds the task as
        its worker — checked under the queue lock, where any reclaim is decided, so a slave that
        lost the task while it was hung or cut off can never move its branch. Then its changes are
        stashed (kept) and LostClaim is raised. `changes`: whether a look at the worktree just now
        found anything to commit, if one was taken."""
        with self.store.locked() as st:
            t = st.tasks.get(task_id)
            on = git.current_branch(self.worktree)
            if t is not None and t.slave == self.sid and t.state == TaskState.CLAIMED and on == t.branch:
                return git.commit_all(self.worktree, message, changes, stat)
        if git.porcelain(self.worktree):
            git.stash(self.worktree, f"clanker {self.sid}: {task_id} was taken from this slave ({message})")
        holder = f"{t.state} by {t.slave}" if t is not None and t.slave else (t.state if t else "gone")
        raise LostClaim(f"{task_id} is no longer this slave's ({holder}): its changes are stashed, not committed")

    @contextmanager
    def _launch_guard(self, stagger: float) -> Iterator[None]:
        with launch_lock(self.paths):
            yield
            if stagger:
                self.clock.wait(self.stopping, stagger)

    def run_agent_settled(
        self, agent: AgentConfig, role: str, task_id: str, attempt: int, prompt: str, resume: str | None = None
    ) -> RunResult | None:
        """Run the agent until its outcome is not transient: transient failures (offline, 429, 5xx,
        stalls) are retried forever with exponential backoff and full jitter, each wait an event.
        Returns None when the slave was asked to stop meanwhile."""
        waits = 0
        kind = "work" if role == "worker" else role
        planner = role == "planner"
        on_task = None if planner else task_id  # a planner run is about no task (yet)
        self.held = None
        while True:
            if self.taken_over():
                return None  # a person takes the session: no agent starts now
            self.held = self.budget_held(on_task)
            if self.held is not None:
                # The breaker, checked before every launch: nothing more is spent once a budget is.
                self.say(f"  ⏸ {self.held}: the {kind} agent is not started")
                return None
            choice = self.credential(agent)
            if choice.wait_until is not None:
                # Every credential went out of budget since this job was claimed: don't start an
                # agent without one (it would fail as "not logged in"); hand the task back instead.
                until = time.strftime("%H:%M", time.localtime(choice.wait_until))
                spent = AgentResult(
                    is_error=True,
                    error=f"credential {choice.name} is out of budget until {until}",
                    reset_at=choice.wait_until,
                )
                return RunResult(spent, Outcome.OUT_OF_BUDGET, None, 0.0, credential=choice.name)
            res = self.run_agent(agent, role, task_id, attempt, prompt, resume, choice.env)
            run = ev.AgentRun(
                actor=self.sid,
                role=kind,
                slave=self.sid,
                attempt=attempt,
                outcome=str(res.outcome),
                usage=res.result.usage,
                session_id=res.result.session_id,
                seconds=round(res.seconds, 2),
                credential=choice.name,
                error=res.result.error[:500] or None,
                peak_rss_mb=res.peak_rss_mb,
            )
            fields = msgspec.structs.asdict(run)
            # The planner's cost is the fleet's, not the cost of a task it happens to split.
            self.store.append(ev.PlanRan(**fields) if planner else ev.AttemptFinished(task=task_id, **fields))
            if isinstance(self.away, SshHost) and res.exit_code == SSH_FAILED and not res.cancelled:
                # ssh lost the host (not the agent failing): the task goes elsewhere rather than
                # wait for this one.
                raise RemoteError(self.executor.host, "transient", (res.result.error or "connection lost")[:300])
            if res.cancelled or self.stopping.is_set():
                return None
            if res.stalled:
                stalled = f"agent printed nothing for {agent.stall_secs:.0f}s: stopped, retrying"
                self.store.append(ev.Risk(actor=self.sid, task=on_task, slave=self.sid, kind="stall", message=stalled))
            if res.outcome != Outcome.TRANSIENT:
                res.credential = choice.name
                return res
            waits += 1
            delay = self.backoff(waits, self.cfg.retry_base_secs, self.cfg.retry_cap_secs, announce=False)
            self.store.append(
                ev.RetryWait(
                    actor=self.sid,
                    task=on_task,
                    slave=self.sid,
                    role=kind,
                    attempt=attempt,
                    wait=waits,
                    reason=(res.result.error or "transient failure")[:200],
                    delay=round(delay, 2),
                )
            )
            self.say(f"  … transient failure ({(res.result.error or '?')[:100]}); retry {waits} in {delay:.1f}s")
            if self.clock.wait(self.stopping, delay):
                return None

    def _tick(self, run: AgentRun) -> None:
        """While an agent runs: the slave is alive; and with `budget.on_exceed: stop`, a fleet
        budget spent meanwhile (by this run's or other slaves' recorded spend) stops the agent
        (the caller checkpoints its work and gives the task back)."""
        self.heart.touch()
        if self.sid in self.store.state().takeovers and not run.cancel_asked:
            self.say("  ⏸ a person is taking this session over: stopping the agent (its work kept)")
            run.cancel()
            return
        spend = self.cfg.budget
        if spend.on_exceed != "stop" or not spend.any or self.held is not None:
            return
        held = budget.standing(self.store.state(), spend, self.clock.time()).held
        if held is not None:
            self.held = held
            self.say(f"  ⏹ {held}: stopping the agent (budget.on_exceed: stop)")
            run.cancel()

    def _overspends(self, task_id: str | None, used: Usage) -> bool:
        """Would the run under way, having used `used`, spend past its task's budget, or (with
        `on_exceed: stop`) a fleet budget? Then it is stopped now (its work is checkpointed)."""
        spend = self.cfg.budget
        if self.held is not None:
            return False
        st = self.store.state()
        t = st.tasks.get(task_id) if task_id else None
        why = budget.task_over(msgspec.structs.replace(t, work=t.work + used), spend) if t is not None else None
        if why is None and spend.on_exceed == "stop":
            why = budget.standing(st, spend, self.clock.time(), running=used).held
        if why is None:
            return False
        self.held = why
        self.say(f"  ⏹ {why}: stopping the agent")
        return True

    def budget_held(self, task_id: str | None) -> str | None:
        """Why no agent may start now: a fleet budget spent, or this task's own."""
        spend = self.cfg.budget
        if not spend.any:
            return None
        st = self.store.state()
        held = budget.standing(st, spend, self.clock.time()).held
        t = st.tasks.get(task_id) if task_id else None
        return held or (budget.task_over(t, spend) if t is not None else None)

    def record_gate(self, task_id: str, role: str, result: GateResult, tree: str = "", key: str = "") -> None:
        self.store.append(
            ev.GateRan(
                actor=self.sid,
                task=task_id,
                slave=self.sid,
                role=role,
                passed=result.passed,
                seconds=round(result.seconds, 2),
                failed=result.failed,
                tail=result.output[-600:],
                tree=tree,
                key=key,
            )
        )

    def gate_key(self) -> str:
        """What a gate result is about besides its tree: the gate commands, worktree settings and
        environment (the preflight's key) and the files it reads from the user's checkout."""
        text = preflight.key(self.cfg) + self.workspace.outside_fingerprint()
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def gate_tree(
        self, task_id: str, role: str, sha: str, tree: str | None = None, ready: Callable[[], None] | None = None
    ) -> GateResult:
        """The gate of commit `sha`'s tree, recorded. Not run again when this task's last judge or
        mainline gate passed on the very same tree with the same key: that pass is recorded as
        reused (`main` still only moves to a tree a gate passed, with these settings)."""
        tree = tree or git.tree_of(self.repo, sha)
        key = self.gate_key()
        t = self.store.state().tasks.get(task_id)
        if self.cfg.gate_reuse and t is not None and t.passed_tree == tree and t.passed_key == key:
            self.store.append(
                ev.GateRan(
                    actor=self.sid, task=task_id, slave=self.sid, role=role, passed=True,
                    tail=f"reused: the gate passed on tree {tree[:10]} already", tree=tree, key=key, reused=True,
                )
            )  # fmt: skip
            self.say(f"  gate: reused (tree {tree[:10]} passed already, same settings)")
            return GateResult(True, f"(reused: the gate passed on tree {tree[:10]} already)\n", 0.0)
        if ready is not None:
            ready()  # the worktree is made ready only for a gate that really runs
        result = self.gate(sha=sha)
        self.record_gate(task_id, role, result, tree, key)
        return result

    def backoff(self, n: int, base: float = 1.0, cap: float = 30.0, announce: bool = True) -> float:
        """Exponential backoff with full jitter: a delay in [0, min(cap, base·2ⁿ)]. Waits it (a stop
        interrupts) unless `announce` is False, in which case the caller waits after telling why."""
        delay = random.uniform(0, min(cap, base * 2**n))
        if announce:
            self.clock.wait(self.stopping, delay)
        return delay


def tick_secs(cfg: Config) -> float:
    """How often a long wait says the slave's loop is alive: well inside `hung_secs`."""
    return min(5.0, cfg.hung_secs / 4)


class LostClaim(ClankerError):
    """The task was reclaimed from this slave (it was presumed hung or dead): it must not touch it."""
