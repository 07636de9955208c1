"""The settings clanker runs with, and their defaults — written here once (DESIGN §10).

Frozen msgspec structs, like the events: every clanker process builds these classes at start,
and a dataclass costs ~0.9 ms to build where a struct costs a few microseconds."""

from __future__ import annotations

from pathlib import Path

import msgspec

CONFIG_NAME = "clanker.yaml"
DEFAULT_MAIN = "main"
DEFAULT_BRANCH_PREFIX = "clanker/"  # task T3 works on clanker/T3 unless its import names a branch
AGENT_KINDS = ("fake", "command", "claude", "codex", "aider", "gemini")
EXECUTOR_KINDS = ("local", "ssh", "container")
# What a prompt template (`prompts.ROLE`) may say, as {{name}}; `prompt` is flocks' name for the
# task's prompt. Anything else is refused when clanker.yaml is read, never rendered as "".
TASK_FIELDS = ("task.id", "task.title", "task.prompt", "task.description", "task.branch", "task.summary", "prompt")
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "worker": (*TASK_FIELDS, "prior_attempts", "judge_notes", "conflicts", "history"),
    "judge": (*TASK_FIELDS, "diff", "gate"),
    "planner": (*TASK_FIELDS, "split", "docs", "tasks", "history", "slaves"),
}


class AgentConfig(msgspec.Struct, frozen=True):
    kind: str = "fake"
    command: tuple[str, ...] = ()
    model: str | None = None
    max_turns: int | None = None
    timeout_secs: float = 1800.0
    stall_secs: float = 600.0
    args: tuple[str, ...] = ()
    env: dict[str, str] = msgspec.field(default_factory=dict)
    binary: str | None = None  # the agent's executable (default: its usual name on PATH)
    permission_mode: str = "bypassPermissions"  # claude: slaves run unattended
    append_system_prompt: str | None = None
    stagger_secs: float = 0.0  # hold the launch lock this long after a start


class Credential(msgspec.Struct, frozen=True):
    """A secret held in the environment variable `env`, given to the agent as `inject`."""

    name: str
    env: str
    inject: str | None = None  # default: the variable the agent kind expects


class Price(msgspec.Struct, frozen=True):
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


class WorktreeConfig(msgspec.Struct, frozen=True):
    """How each worktree becomes an environment the gate can trust (DESIGN §6a)."""

    copy: tuple[str, ...] = ()  # globs of ignored files copied from the user's checkout
    link: tuple[str, ...] = ()  # ignored directories shared by symlink
    setup: tuple[str, ...] = ()  # shell commands run in the worktree before its first job
    setup_inputs: tuple[str, ...] = DEFAULT_SETUP_INPUTS  # a change of these re-runs setup
    setup_timeout_secs: float = 1800.0
    port_base: int = 20000  # cN gets CLANKER_PORT_BASE = port_base + N·port_span
    port_span: int = 100


class BudgetConfig(msgspec.Struct, frozen=True):
    """Hard limits on what agent runs may spend (`budget:`); None is no limit."""

    daily_usd: float | None = None
    total_usd: float | None = None
    task_usd: float | None = None
    daily_tokens: int | None = None
    task_tokens: int | None = None
    day_starts: str = "00:00"  # local time when a day's budget starts again
    on_exceed: str = "finish"  # finish: running agents finish; stop: they are stopped, work checkpointed

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.daily_usd, self.total_usd, self.task_usd, self.daily_tokens,
                                           self.task_tokens))  # fmt: skip


class CapacityConfig(msgspec.Struct, frozen=True):
    """When the machine is too short to start another agent (`capacity:`)."""

    min_free_mb: int | None = None  # default: a tenth of the machine's memory, at least 512 MB
    max_load: float | None = None  # default: four times the number of cores (agents mostly wait)


class ExecutorConfig(msgspec.Struct, frozen=True):
    """Where agents run (`executors:`): this machine, an OpenSSH host, or a container. Events,
    locks, heartbeats, panes, the judge's gate and `main` stay on the controller's machine."""

    name: str
    kind: str = "local"  # local | ssh | container
    slots: int | None = None  # slaves it takes; None: as many as `slaves` (local only)
    host: str = ""  # ssh: an OpenSSH destination (user@host, an alias of ~/.ssh/config, …)
    workdir: str = ""  # ssh: where clanker keeps its clone on the host (relative: to the login dir)
    ssh_options: tuple[str, ...] = ()  # ssh: more arguments (-F FILE, -i KEY, -o Option=value)
    exec: tuple[str, ...] = ()  # container: the argv prefix (docker exec -i NAME, devcontainer exec …)
    workspace_mount: str = "/workspace"  # container: where the repository is mounted inside it
    credential: str | None = None  # a name in `credentials:`: the only one its agents get
    env: dict[str, str] = msgspec.field(default_factory=dict)  # added to its agents' environment

    @property
    def remote(self) -> bool:
        return self.kind == "ssh"


LOCAL = ExecutorConfig("local")

# What a notification can be about (`notify: [{events: [...]}]`); all of them when not given.
NOTIFY_KINDS = (
    "task.blocked", "main.red", "main.green", "budget.warned", "budget.exceeded", "usage.paused", "usage.resumed",
    "run.finished", "agent.waiting",
)  # fmt: skip


SOURCE_TYPES = ("jsonl", "script", "markdown", "github")


class SourceConfig(msgspec.Struct, frozen=True):
    """Where tasks come from besides `clanker task add` (`source:`), pulled by the controller on
    start and every `poll_secs`; each task once, by the source's own id (a cancelled one too)."""

    type: str
    path: str = ""  # jsonl, markdown: a file in the repository (or an absolute path)
    command: tuple[str, ...] = ()  # script: prints JSONL tasks
    repo: str = ""  # github: owner/name
    label: str = "clanker"  # github: issues with this label
    token_env: str = "GITHUB_TOKEN"  # github: the variable holding the token
    base_url: str = "https://api.github.com"  # github: or your GitHub Enterprise's API
    close_on_land: bool = False  # github: close the issue when its task lands
    poll_secs: float = 60.0


class NotifyConfig(msgspec.Struct, frozen=True):
    """Where to tell a person: a command (the event's JSON on its stdin) or a webhook (POSTed
    JSON with a Slack-compatible `text`)."""

    command: tuple[str, ...] = ()
    url: str = ""
    events: tuple[str, ...] = NOTIFY_KINDS  # (not `on`: YAML reads that key as true)

    @property
    def target(self) -> str:
        return self.url or " ".join(self.command)


class Config(msgspec.Struct, frozen=True):
    repo: Path
    path: Path | None = None
    notes: tuple[str, ...] = ()  # things worth saying about the file (a flocks name used, …)
    slaves: int = 3
    heartbeat_secs: float = 5.0
    hung_secs: float = 300.0  # a live slave whose loop or heartbeat stood still this long is killed
    tmux_give_up_secs: float = 30.0  # a tmux that fails this long is not coming back by itself
    max_attempts: int = 3
    agent: AgentConfig = AgentConfig()
    judge_agent: AgentConfig | None = AgentConfig()  # None: the gate alone decides
    judge_max_parallel: int | None = None  # None: a quarter of the slaves, at least one (see `judges`)
    judge_max_reworks: int = 5  # the judge's rework verdicts before the task is blocked (and re-planned)
    gate: tuple[str, ...] = ()
    gate_timeout_secs: float = 600.0
    mainline_branch: str = DEFAULT_MAIN
    branch_prefix: str = DEFAULT_BRANCH_PREFIX  # task branches live under it (flocks: workspace.branch_prefix)
    conflict_budget: int = 3
    tmux_socket: str | None = None
    tmux_session: str | None = None
    worktrees: Path | None = None
    owner_files: tuple[str, ...] = ()
    git_ignore: str = "exclude"
    retry_base_secs: float = 1.0
    retry_cap_secs: float = 30.0
    credentials: tuple[Credential, ...] = ()
    prices: dict[str, Price] = msgspec.field(default_factory=dict)
    prompt_templates: dict[str, Path] = msgspec.field(default_factory=dict)  # role → template file
    land_validate: tuple[str, ...] = ()  # commands `clanker land` runs on main after landing
    batch_max: int = 4  # accepted tasks stacked on main and gated once
    batch_wait_secs: float = 0.0  # how long the first accepted task may wait for others to join
    batch_commits: str = "one"  # one: a batch lands as one commit (gated once); each: every prefix gated
    health_every_minutes: float = 30.0  # 0 = off
    health_commands: tuple[str, ...] = ()  # run on main's head with the gate by the health check
    health_fix_prompt: str = ""  # standing instructions added to every regression task
    planner_agent: AgentConfig | None = AgentConfig()  # None: no planner (blocked tasks wait for you)
    planner_docs: tuple[str, ...] = ()  # plan documents the planner turns into tasks
    planner_max_chars: int = 40000  # the bounded context pack given to one planner run
    planner_review_every: int = 10  # landings after which the planner compares the plan with main (0: never)
    worktree: WorktreeConfig = WorktreeConfig()
    env_pass: tuple[str, ...] = ()  # variables panes get from the shell that started the controller
    gate_preflight: bool = True  # run the gate on main in a fresh worktree before trusting it
    gate_reuse: bool = True  # a tree a judge's or mainline gate passed is not gated again (same settings)
    budget: BudgetConfig = BudgetConfig()
    capacity: CapacityConfig = CapacityConfig()
    executors: tuple[ExecutorConfig, ...] = ()  # none: one implicit `local` with `slaves` slots
    notify: tuple[NotifyConfig, ...] = ()
    source: SourceConfig | None = None

    @property
    def judges(self) -> int:
        """Judge and integration jobs at once ("integrate at low N"): `judge.max_parallel`, or a
        quarter of the slaves. One for a large fleet made judging the queue everyone waited in:
        32 slaves finished their last work 18 s before the last of 40 tasks was judged."""
        return self.judge_max_parallel or max(1, -(-self.slaves // 4))

    @property
    def placements(self) -> tuple[ExecutorConfig, ...]:
        """The executors slaves are placed on: the configured ones, or this machine alone."""
        return self.executors or (LOCAL,)

    def executor(self, name: str) -> ExecutorConfig | None:
        return next((x for x in self.placements if x.name == name), None)

    def slots_of(self, x: ExecutorConfig) -> int:
        return x.slots if x.slots is not None else self.slaves
