"""Executors: agents on OpenSSH hosts and in containers, coordinated from this machine.

The launch script is run for real with bash (no ssh needed) to check what reaches the agent and
what does not; the whole loop runs against real `sshd` servers on 127.0.0.1 (tests/sshd.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from clanker.agents.launch import Process
from clanker.config import Config, ExecutorConfig, load
from clanker.errors import ConfigError
from clanker.executors import down_event
from clanker.executors.container import Container
from clanker.executors.launch import through
from clanker.executors.ssh import SshHost, repo_id
from clanker.fleet import placement
from clanker.state import events as ev
from clanker.state.fold import fold
from clanker.state.model import State
from clanker.system.remote import RemoteError

from .helpers import clanker, clanker_bg, events, git, make_repo, retry_until, status
from .sshd import start_hosts

# --- settings --------------------------------------------------------------------------------------


def write(tmp: Path, text: str) -> Config:
    (tmp / "clanker.yaml").write_text(text)
    return load(tmp, tmp / "clanker.yaml")


def test_executors_are_read_with_their_defaults(tmp_path: Path) -> None:
    cfg = write(tmp_path, """slaves: 4
executors:
  - {name: here, kind: local, slots: 1}
  - {name: box, kind: ssh, host: me@box, workdir: clanker-work, slots: 2, ssh_options: [-F, cfg]}
  - {name: dev, kind: container, exec: [docker, exec, -i, dev], slots: 1}
""")  # fmt: skip
    here, box, dev = cfg.executors
    assert (here.kind, cfg.slots_of(here)) == ("local", 1)
    assert (box.host, box.workdir, box.ssh_options, box.remote) == ("me@box", "clanker-work", ("-F", "cfg"), True)
    assert (dev.exec, dev.workspace_mount, dev.remote) == (("docker", "exec", "-i", "dev"), "/workspace", False)
    plain = write(tmp_path, "slaves: 3\n")
    (only,) = plain.placements
    assert (only.name, only.kind, plain.slots_of(only)) == ("local", "local", 3)  # none configured: this machine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("executors:\n  - {name: b, kind: ssh, host: x}\n", "an ssh executor needs workdir, slots"),
        ("executors:\n  - {name: c, kind: container, slots: 1}\n", "a container executor needs exec"),
        ("executors:\n  - {name: l, exec: [docker]}\n", "exec: not for a local executor"),
        ("executors:\n  - {kind: ssh}\n", "needs a `name`"),
        ("executors:\n  - {name: a}\n  - {name: a}\n", "executor names must be unique"),
        ("executors:\n  - {name: a, kind: vm}\n", "must be one of local, ssh, container"),
        ("executors:\n  - {name: c, kind: container, exec: [x], slots: 1, workspace_mount: rel}\n", "absolute path"),
        ("executors:\n  - {name: a, credential: nope}\n", "no credential named 'nope'"),
        ("executors: {name: a}\n", "must be a list"),
    ],
)
def test_bad_executor_settings_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        write(tmp_path, text)
    assert message in str(err.value) and "\n" not in str(err.value)


# --- placement -------------------------------------------------------------------------------------

THREE = Config(
    repo=Path("/r"),
    slaves=5,
    executors=(
        ExecutorConfig("here", slots=1),
        ExecutorConfig("a", kind="ssh", host="a", workdir="w", slots=2),
        ExecutorConfig("b", kind="ssh", host="b", workdir="w", slots=2),
    ),
)


def placed(*pairs: tuple[str, str], down: tuple[str, ...] = (), until: float = 100.0) -> State:
    evs: list[ev.Event] = [ev.SlavePlaced(actor=s, slave=s, executor=x) for s, x in pairs]
    evs += [ev.ExecutorDown(actor="c1", executor=x, reason="refused", until=until) for x in down]
    return fold(State(), [(e, n) for n, e in enumerate(evs, 1)])


ALL = frozenset(f"c{n}" for n in range(1, 6))


@pytest.mark.parametrize(
    ("state", "me", "alive", "now", "wanted", "where"),
    [
        (placed(), "c1", ALL, 0.0, None, "a"),  # the most free slots (2 of 2) first; a before b on a tie
        (placed(("c1", "a")), "c2", ALL, 0.0, None, "b"),
        (placed(("c1", "a"), ("c2", "b")), "c3", ALL, 0.0, None, "here"),  # here 1/1 free beats a, b at 1/2
        (placed(("c1", "a"), ("c2", "b"), ("c3", "here"), ("c4", "a")), "c5", ALL, 0.0, None, "b"),
        (placed(("c1", "a"), ("c2", "b"), ("c3", "here"), ("c4", "a"), ("c5", "b")), "c6", ALL | {"c6"}, 0.0, None,
         None),  # every slot taken
        (placed(("c1", "a")), "c1", ALL, 0.0, None, "a"),  # a slave keeps its executor
        (placed(("c1", "a"), down=("a",)), "c1", ALL, 50.0, None, "b"),  # …unless it is down
        (placed(("c1", "a"), down=("a",)), "c1", ALL, 150.0, None, "a"),  # down until 100: tried again
        (placed(("c1", "a"), ("c2", "a")), "c3", frozenset({"c3"}), 0.0, None, "a"),  # dead slaves free their slots
        (placed(("c1", "a")), "c2", ALL, 0.0, "a", "a"),  # typed by hand: kept, full or not
        (placed(), "c2", ALL, 0.0, "nowhere", None),
    ],
)  # fmt: skip
def test_a_slave_goes_to_the_least_loaded_executor_that_is_up(
    state: State, me: str, alive: frozenset[str], now: float, wanted: str | None, where: str | None
) -> None:
    assert placement.place(THREE, state, me, alive, now, wanted) == where


def test_doctor_says_when_the_executors_have_fewer_slots_than_slaves(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 3\nexecutors:\n  - {name: here, kind: local, slots: 2}\n")
    checks = {c["check"]: c for c in json.loads(clanker(repo, "doctor", "--json").stdout)}
    assert checks["executor slots"]["status"] == "warn"
    assert checks["executor slots"]["detail"] == "2 slot(s) for 3 slaves: 1 can only judge and land"
    assert checks["executor here"] == {"check": "executor here", "status": "ok", "detail": "this machine, 2 slots",
                                       "fix": ""}  # fmt: skip


def test_a_slave_typed_by_hand_names_an_executor_that_exists(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nexecutors:\n  - {name: here, kind: local, slots: 2}\n")
    proc = clanker(repo, "slave", "1", "--executor", "elsewhere")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "clanker: no executor named 'elsewhere' in clanker.yaml (there are: here)"


def test_a_host_that_stops_answering_is_retried_with_a_backoff_that_doubles() -> None:
    st = State()
    waits = []
    for n in range(1, 7):
        e = down_event(st, "a", "connection refused", 1000.0, "c1")
        waits.append(e.until - 1000.0)
        st = fold(st, [(e, n)])
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0]
    st = fold(st, [(ev.ExecutorUp(actor="c1", executor="a"), 9)])
    assert st.down == {} and down_event(st, "a", "x", 0.0, "c1").until == 30.0  # answering again: from the start
    msg = placement.no_room(THREE, placed(("c1", "here"), down=("a", "b")), frozenset({"c1", "c2"}), 0.0)
    assert msg == "no executor has a free slot: here 1/1, a down (refused), b down (refused)"


# --- the launch script, run for real -----------------------------------------------------------------

PRINTER = ["python3", "-c", (
    "import os,sys;print(os.getcwd());print(os.environ.get('CLANKER_WORKTREE'));"
    "print(open(os.environ['CLANKER_PROMPT_FILE']).read());print(os.environ.get('AGENT_KEY'));"
    "print(os.environ.get('FROM_EXECUTOR'));print(sys.stdin.read())"
)]  # fmt: skip


def launched(tmp: Path, argv: list[str], stdin: str | None = "what the agent reads") -> Process:
    proc = Process(argv, tmp, {}, stdin, extra={"AGENT_KEY": "sk-secret-0000", "CLANKER_WORKTREE": "/here/only"})
    return through([], proc, str(tmp), {"FROM_EXECUTOR": "yes"}, "the prompt\nin two lines", joined=False)


def test_the_agent_gets_its_environment_prompt_and_stdin_and_no_secret_is_on_its_command_line(tmp_path: Path) -> None:
    wrapped = launched(tmp_path, PRINTER)
    assert wrapped.hold_stdin and wrapped.stdin is not None
    assert "sk-secret-0000" not in " ".join(wrapped.argv)  # it travels on stdin, base64 encoded
    assert "sk-secret-0000" not in wrapped.stdin
    proc = subprocess.Popen(wrapped.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(wrapped.stdin)
    proc.stdin.flush()  # and held open for the run, as the runner does
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(30) == 0
    proc.stdin.close()
    lines = out.splitlines()
    assert lines[0] == lines[1] == str(tmp_path)  # run where it was sent, CLANKER_WORKTREE set anew there
    assert lines[2:4] == ["the prompt", "in two lines"]
    assert lines[4:] == ["sk-secret-0000", "yes", "what the agent reads"]
    assert err == ""  # the shell's own notices are not the agent's stderr


def test_when_clanker_lets_go_of_the_run_the_agent_is_stopped(tmp_path: Path) -> None:
    """The remote side holds the pipe clanker writes the preamble to: its end (clanker stopped
    the run, or the connection dropped) stops the agent's whole process group."""
    child = tmp_path / "child.pid"
    agent = ["bash", "-c", f"sleep 60 & echo $! > {child}; wait"]
    wrapped = launched(tmp_path, agent, stdin=None)
    proc = subprocess.Popen(wrapped.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and wrapped.stdin is not None
    proc.stdin.write(wrapped.stdin)
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not child.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(child.read_text())
    assert proc.poll() is None
    proc.stdin.close()  # what a killed ssh client or a dropped connection looks like from the host
    assert proc.wait(10) != 0

    def gone() -> bool:  # exited (a zombie nobody reaped yet has exited too)
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()  # the agent's own child went with it


def test_an_ssh_clone_is_named_per_repository_and_slave_and_reached_as_git_reaches_it() -> None:
    x = ExecutorConfig("a", kind="ssh", host="me@box", workdir="clanker-work/", slots=1, ssh_options=("-F", "c"))
    host = SshHost(x, Path("/home/me/my proj"), "c2")
    rid = repo_id(Path("/home/me/my proj"))
    assert rid.startswith("my-proj-") and len(rid) == len("my-proj-") + 8
    assert host.clone == f"clanker-work/{rid}/c2" and host.url == f"me@box:clanker-work/{rid}/c2"
    url = SshHost(ExecutorConfig("u", kind="ssh", host="ssh://me@box:2222", workdir="/srv/w", slots=1),
                  Path("/r"), "c1").url  # fmt: skip
    assert url == f"ssh://me@box:2222//srv/w/{repo_id(Path('/r'))}/c1"
    assert host.ssh[:2] == ["ssh", "-T"] and host.ssh[-2:] == ["-F", "c"]
    wrapped = host.wrap(Process(["claude", "-p", "hi"], Path("/r"), {}, None, extra={"K": "v"}), "hi")
    assert wrapped.argv[:2] == ["ssh", "-T"] and "me@box" in wrapped.argv
    assert wrapped.argv[-1].startswith("bash -lc ") and wrapped.argv[-1].endswith(
        "clanker-work/" + rid + "/c2 claude -p hi"
    )


def test_a_container_sees_a_worktree_at_its_place_under_the_mount(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    (repo / ".clanker" / "worktrees" / "c1").mkdir(parents=True)
    box = Container(ExecutorConfig("dev", kind="container", exec=("docker", "exec", "-i", "dev"), slots=1), repo)
    assert box.path(repo / ".clanker" / "worktrees" / "c1") == "/workspace/.clanker/worktrees/c1"
    assert box.path(repo) == "/workspace"
    wrapped = box.wrap(Process(["claude"], repo / ".clanker" / "worktrees" / "c1", {}, None), None)
    assert wrapped.argv[:6] == ["docker", "exec", "-i", "dev", "bash", "-lc"]
    assert wrapped.argv[7:] == ["clanker", "/workspace/.clanker/worktrees/c1", "claude"]
    with pytest.raises(ConfigError, match="outside the repository"):
        box.path(tmp_path / "elsewhere")


# --- the whole loop over real ssh ---------------------------------------------------------------------


def fleet(tmp: Path, hosts: Any, tasks: int, sleep: float = 0.3, **extra: Any) -> Path:
    execs = [{"name": "here", "kind": "local", "slots": 1}]
    for alias, h in hosts.hosts.items():
        execs.append({"name": alias, "kind": "ssh", "host": alias, "workdir": str(h.workdir), "slots": 2,
                      "ssh_options": hosts.options})  # fmt: skip
    cfg = {"slaves": 1 + 2 * len(hosts.hosts), "heartbeat_secs": 0.5, "agent": {"kind": "fake"},
           "gate": ["test ! -e GATE_FAIL"], "planner": {"agent": "none"}, "executors": execs, **extra}  # fmt: skip
    repo = make_repo(tmp / "r", yaml.safe_dump(cfg, sort_keys=False))
    for n in range(1, tasks + 1):
        prompt = f"fake: sleep {sleep}\nfake: write f{n}.txt {n}"
        clanker(repo, "task", "add", f"file {n}", "--prompt", prompt, "--path", f"f{n}.txt", check=True)
    return repo


SECRET = "sk-team-key-9f8e7d6c5b4a-never-on-disk"


@pytest.mark.e2e
def test_twelve_tasks_land_from_two_ssh_hosts_and_this_machine(
    tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = start_hosts(tmp_path / "ssh", ["hostA", "hostB"])
    monkeypatch.setenv("TEAM_KEY", SECRET)
    try:
        repo = fleet(tmp_path, hosts, 12, credentials=[{"name": "team", "env": "TEAM_KEY", "inject": "AGENT_KEY"}])
        clanker(repo, "task", "add", "digest", "--prompt", "fake: digest-env AGENT_KEY key.txt", "--path", "key.txt",
                check=True)  # fmt: skip
        proc = clanker(repo, "run", "--until-done", "--timeout", "240", timeout=300)
        checks = {c["check"]: c for c in json.loads(clanker(repo, "doctor", "--json").stdout)}
    finally:
        hosts.stop()
    for name in ("executor here", "executor hostA", "executor hostB"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "answers, 2 slots" in checks["executor hostA"]["detail"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(t["state"] == "done" for t in status(repo)["tasks"])
    for n in range(1, 13):
        assert git(repo, "show", f"main:f{n}.txt") == str(n)
    log = events(repo)
    where = {e["slave"]: e["executor"] for e in log if e["type"] == "slave.placed"}
    assert sorted(where.values()) == ["here", "hostA", "hostA", "hostB", "hostB"]
    assert all(e["credential"] == "team" for e in log if e["type"] == "attempt.finished")
    worked = {where[e["slave"]] for e in log if e["type"] == "attempt.finished" and e["role"] == "work"}
    assert worked == {"here", "hostA", "hostB"}  # work ran on each host and here
    judged_there = []
    for alias, h in hosts.hosts.items():
        clones = list(h.workdir.glob("*/c*"))
        assert len(clones) == 2, (alias, clones)  # one clone per slave there
        judged_there += [c for c in clones if git(c, "branch", "--list", "clanker-judging")]
    judges = {where[e["slave"]] for e in log if e["type"] == "attempt.finished" and e["role"] == "judge"}
    assert judged_there and judges - {"here"}  # judge agents ran on the hosts too, on the candidate pushed there
    shas = git(repo, "rev-list", "main").split()
    for sha in shas:  # main is green on every commit (the gate: no GATE_FAIL file)
        assert "GATE_FAIL" not in git(repo, "ls-tree", "--name-only", sha)
    landed = [e["task"] for e in log if e["type"] == "task.mainlined"]
    assert sorted(landed) == sorted(f"T{n}" for n in range(1, 14))  # each once
    # The credential reached the agent (wherever it ran) and was written nowhere on the way.
    assert git(repo, "show", "main:key.txt") == hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    for place in (*[h.workdir for h in hosts.hosts.values()], repo / ".clanker"):
        found = subprocess.run(["grep", "-rlF", SECRET, str(place)], capture_output=True, text=True, check=False)
        assert found.stdout == "", f"the key was written to {found.stdout}"


@pytest.mark.e2e
def test_a_host_that_dies_mid_run_loses_nothing_and_its_tasks_land_elsewhere(tmp_path: Path, socket_name: str) -> None:
    hosts = start_hosts(tmp_path / "ssh", ["hostA", "hostB"])
    try:
        repo = fleet(tmp_path, hosts, 12, sleep=1.5)
        run = clanker_bg(repo, "run", "--until-done", "--timeout", "240")

        def busy_on_b() -> bool:
            log = events(repo)
            on_b = {e["slave"] for e in log if e["type"] == "slave.placed" and e["executor"] == "hostB"}
            return any(e["type"] == "task.claimed" and e["slave"] in on_b for e in log)

        retry_until(busy_on_b, 60)
        hosts.hosts["hostB"].kill()
        out, _ = run.communicate(timeout=300)
    finally:
        hosts.stop()
    assert run.returncode == 0, out
    log = events(repo)
    assert all(t["state"] == "done" for t in status(repo)["tasks"])
    for n in range(1, 13):
        assert git(repo, "show", f"main:f{n}.txt") == str(n)  # nothing lost
    landed = [e["task"] for e in log if e["type"] == "task.mainlined"]
    assert sorted(landed) == sorted(f"T{n}" for n in range(1, 13))  # none twice
    (down, *_) = [e for e in log if e["type"] == "executor.down"]
    assert down["executor"] == "hostB" and down["until"] > down["ts"]
    given_back = [e for e in log if e["type"] == "task.released" and "hostB failed" in e["reason"]]
    assert given_back and all(e["refund"] for e in given_back)  # the attempt is not the task's
    for e in given_back:  # each landed from somewhere else
        workers = [w["slave"] for w in log if w["type"] == "task.submitted" and w["task"] == e["task"]]
        assert workers, e["task"]


@pytest.mark.e2e
def test_the_worktree_gate_and_setup_run_on_the_host_where_the_agent_worked(tmp_path: Path, socket_name: str) -> None:
    hosts = start_hosts(tmp_path / "ssh", ["hostA"])
    h = hosts.hosts["hostA"]
    try:
        cfg = {"slaves": 2, "heartbeat_secs": 0.5, "agent": {"kind": "fake"}, "planner": {"agent": "none"},
               "gate": ["test -f .venv/ready", "test ! -e GATE_FAIL"],
               "worktree": {"setup": ["mkdir -p .venv && touch .venv/ready && echo run >> .venv/setup-runs"]},
               "executors": [{"name": "hostA", "kind": "ssh", "host": "hostA", "workdir": str(h.workdir),
                              "slots": 2, "ssh_options": hosts.options}]}  # fmt: skip
        repo = make_repo(tmp_path / "r", yaml.safe_dump(cfg, sort_keys=False), {".gitignore": ".venv/\n"})
        clanker(repo, "task", "add", "flaky", "--prompt", "fake: fail-gate-once\nfake: write a.txt 1", check=True)
        for n in (2, 3, 4):
            clanker(repo, "task", "add", f"t{n}", "--prompt", f"fake: write f{n}.txt {n}", "--path", f"f{n}.txt",
                    check=True)  # fmt: skip
        proc = clanker(repo, "run", "--until-done", "--timeout", "180", timeout=240)
    finally:
        hosts.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = events(repo)
    work_gates = [e for e in log if e["type"] == "gate.ran" and e["role"] == "work" and e["task"] == "T1"]
    assert [g["passed"] for g in work_gates][:1] == [False] and work_gates[-1]["passed"]
    assert "GATE_FAIL" in work_gates[0]["failed"] and "(exit 1)" in work_gates[0]["tail"]
    clones = list(h.workdir.glob("*/c*"))
    assert clones
    for clone in clones:  # setup ran there, once per clone: its fingerprint did not change
        assert (clone / ".venv" / "setup-runs").read_text() == "run\n", clone


@pytest.mark.e2e
def test_what_a_cut_short_run_left_on_a_host_is_collected_when_it_answers_again(tmp_path: Path) -> None:
    hosts = start_hosts(tmp_path / "ssh", ["hostA"])
    try:
        repo = make_repo(tmp_path / "r")
        x = ExecutorConfig("a", kind="ssh", host="hostA", workdir=str(hosts.hosts["hostA"].workdir), slots=1,
                           ssh_options=tuple(hosts.options))  # fmt: skip
        host = SshHost(x, repo, "c1")
        main = git(repo, "rev-parse", "main")
        assert host.up("clanker/T1", main, "main", main) is None  # a fresh clone: nothing to collect
        clone = Path(host.clone)
        (clone / "half.txt").write_text("what the agent wrote before the connection dropped\n")
        sha = host.down("clanker/T1", "wip(T1)")  # a whole run: committed there and fetched here
        assert git(repo, "show", f"{sha}:half.txt").startswith("what the agent wrote")
        assert host.up("clanker/T2", main, "main", main) is None  # it came back: nothing left over
        (clone / "lost.txt").write_text("written, then the connection dropped\n")  # no down() this time
        collected = host.up("clanker/T3", main, "main", main)
        assert collected is not None and collected.startswith("refs/clanker/left/a/c1/")
        assert git(repo, "show", f"{collected}:lost.txt") == "written, then the connection dropped"
        assert not (clone / "lost.txt").exists()  # the clone is on T3 now; the work is kept here
    finally:
        hosts.stop()


@pytest.mark.e2e
def test_a_host_that_refuses_the_key_is_an_auth_failure_with_the_fix(tmp_path: Path) -> None:
    hosts = start_hosts(tmp_path / "ssh", ["hostA"])
    try:
        repo = make_repo(tmp_path / "r")
        stranger = tmp_path / "stranger"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
        key = str(hosts.root / "id_ed25519")
        config = tmp_path / "stranger_config"
        config.write_text(hosts.client_config.read_text().replace(key, str(stranger)))
        opts = ("-F", str(config))  # the same host, with a key it does not know
        bad = SshHost(ExecutorConfig("a", kind="ssh", host="hostA", workdir=str(tmp_path / "w"), slots=1,
                                     ssh_options=opts), repo, "c1")  # fmt: skip
        main = git(repo, "rev-parse", "main")
        with pytest.raises(RemoteError) as err:
            bad.up("clanker/T1", main, "main", main)
        assert err.value.kind == "auth" and "Permission denied" in err.value.message
        assert "ssh -o BatchMode=yes hostA true" in err.value.message  # the fix
        hosts.hosts["hostA"].stop()
        with pytest.raises(RemoteError) as gone:
            x = ExecutorConfig("a", kind="ssh", host="hostA", workdir="w", slots=1, ssh_options=tuple(hosts.options))
            SshHost(x, repo, "c1").up("clanker/T1", main, "main", main)
        assert gone.value.kind == "transient" and "refused" in gone.value.message
    finally:
        hosts.stop()


# --- kubernetes: on paper, and the argv and manifest it would use ----------------------------------


def test_kubernetes_pods_are_slots_reached_by_kubectl_exec_and_git_over_it() -> None:
    from clanker.executors.kubernetes import Pods

    pods = Pods("agents", replicas=3, namespace="ci", context="prod")
    assert [pods.pod(k) for k in range(5)] == ["agents-0", "agents-1", "agents-2", "agents-0", "agents-1"]
    prefix = pods.exec_prefix(4)
    assert prefix == ["kubectl", "--context", "prod", "-n", "ci", "exec", "-i", "agents-1", "-c", "agent", "--"]
    clone = pods.clone("proj-1234abcd", "c5")
    assert clone == "/work/proj-1234abcd/c5"
    assert pods.git_url(4, clone) == "ext::kubectl --context prod -n ci exec -i agents-1 -c agent -- %S " + clone
    wrapped = through(prefix, Process(["claude", "-p", "x"], Path("/r"), {}, None, extra={"K": "secret"}), clone, {},
                      "x", joined=False)  # fmt: skip
    assert wrapped.argv[: len(prefix)] == prefix and "secret" not in " ".join(wrapped.argv)
    m = pods.manifest()
    assert (m["kind"], m["spec"]["replicas"], m["metadata"]["namespace"]) == ("StatefulSet", 3, "ci")
    (c,) = m["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["sleep", "infinity"] and c["volumeMounts"][0]["mountPath"] == "/work"
    assert m["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "agents"}
    assert yaml.safe_load(yaml.safe_dump(m)) == m  # plain data: `kubectl apply -f -` takes it
    from clanker.config.model import EXECUTOR_KINDS

    assert "kubernetes" not in EXECUTOR_KINDS  # not offered until it has run against a cluster


def _engine_with_bash() -> tuple[str, str] | None:
    """A container engine that answers, and an image it already has with bash in it."""
    import shutil

    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            continue
        if subprocess.run([engine, "info"], capture_output=True, timeout=30, check=False).returncode != 0:
            continue
        images = subprocess.run([engine, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                                text=True, timeout=30, check=False).stdout.split()  # fmt: skip
        for image in images:
            probe = subprocess.run([engine, "run", "--rm", image, "bash", "-c", "true"], capture_output=True,
                                   timeout=60, check=False)  # fmt: skip
            if probe.returncode == 0:
                return engine, image
    return None


@pytest.mark.e2e
def test_a_command_agent_in_a_container_sees_its_worktree_through_the_mount(tmp_path: Path) -> None:
    found = _engine_with_bash()
    if found is None:
        pytest.skip("no container engine answers here (docker/podman info fails, or no local image has bash)")
    engine, image = found
    repo = make_repo(tmp_path / "r")
    wt = repo / ".clanker" / "worktrees" / "c1"
    wt.mkdir(parents=True)
    name = f"clanker-test-{os.getpid()}"
    subprocess.run([engine, "run", "-d", "--name", name, "-v", f"{repo}:/workspace", image, "sleep", "600"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        box = Container(ExecutorConfig("dev", kind="container", exec=(engine, "exec", "-i", name), slots=1), repo)
        agent = Process(["bash", "-c", 'echo "$PWD $SECRET" > out.txt'], wt, {}, None, extra={"SECRET": "s3"})
        wrapped = box.wrap(agent, "the prompt")
        proc = subprocess.Popen(wrapped.argv, stdin=subprocess.PIPE, text=True)
        assert proc.stdin is not None and wrapped.stdin is not None
        proc.stdin.write(wrapped.stdin)
        proc.stdin.flush()
        assert proc.wait(60) == 0
        proc.stdin.close()
        assert (wt / "out.txt").read_text().strip() == "/workspace/.clanker/worktrees/c1 s3"
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True, check=False)
