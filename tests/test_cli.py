"""The CLI as a person uses it: doctor, logs, init, the command agent, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clanker.config import SCHEMA, Config

from .helpers import clanker, clanker_process, events, git, make_repo, status

GATE = "test ! -e GATE_FAIL"


def test_doctor_reports_each_check_and_fails_until_init(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 1\n")
    proc = clanker(repo, "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert checks[".clanker ignored"]["status"] == "fail" and "clanker init" in checks[".clanker ignored"]["fix"]
    assert checks["tmux"]["status"] == "ok" and checks["git"]["status"] == "ok"
    assert checks["gate"]["status"] == "warn" and checks["slaves"]["status"] == "warn"
    assert checks["pane c1"]["status"] == "warn"
    clanker(repo, "init", check=True)
    proc = clanker(repo, "doctor")
    assert proc.returncode == 0, proc.stdout
    assert "ok    .clanker ignored" in proc.stdout
    assert "warn  gate" in proc.stdout and "→ add `gate:" in proc.stdout
    assert git(repo, "status", "--porcelain") == "", "init leaves nothing for git to see"
    assert "/.clanker/" in (repo / ".git" / "info" / "exclude").read_text()


def test_doctor_flags_a_bad_config(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: robot\n")
    proc = clanker(repo, "doctor")
    assert proc.returncode == 1
    assert "fail  config" in proc.stdout and "clanker.yaml:3: agent.kind" in proc.stdout


@pytest.mark.parametrize("run", [clanker, clanker_process], ids=["in-process", "process"])
def test_bad_config_is_one_line_exit_2(tmp_path: Path, run: Any) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 3\nsalves: 4\n")
    proc = run(repo, "status")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"clanker: {repo / 'clanker.yaml'}:2: salves: unknown key (known here: {', '.join(sorted(SCHEMA))})"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task", "show", "T99"], "no task 'T99'"),
        (["task", "add", "x", "--id", "bad id"], "bad task id"),
        (["slave", "0"], "slave numbers start at 1"),
        (["logs", "nope"], "no task 'nope'"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    repo = make_repo(tmp_path / "r")
    proc = clanker(repo, *args)
    assert proc.returncode in (1, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_outside_a_repo_and_without_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "clanker", "status"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "is not inside a git repository" in proc.stderr
    repo = make_repo(tmp_path / "r")
    proc = subprocess.run(
        [sys.executable, "-m", "clanker"], cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 2 and "run --until-done" in proc.stderr


@pytest.mark.e2e
def test_command_agent_task_lands_with_gate_only_judging(tmp_path: Path, socket_name: str) -> None:
    script = (
        'set -e\ntest "$(head -n1)" = "CLANKER-ROLE: worker"\n'
        'head -n1 "$CLANKER_PROMPT_FILE" | grep -q "CLANKER-ROLE: worker"\n'
        'printf "%s %s %s\\n" "$CLANKER_ROLE" "$CLANKER_TASK_ID" "$CLANKER_SLAVE" > made-by.txt\n'
        'test "$PWD" = "$CLANKER_WORKTREE"\necho "wrote made-by.txt"\n'
    )
    config = (
        "slaves: 2\nheartbeat_secs: 0.5\n"
        "agent:\n  kind: command\n  command: [sh, agent.sh]\n"
        f"judge:\n  agent: none\ngate:\n  - {GATE}\n"
    )
    repo = make_repo(tmp_path / "r", config, {"agent.sh": script})
    clanker(repo, "task", "add", "Record who made it", check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = git(repo, "show", "main:made-by.txt").split()
    assert made[:2] == ["worker", "T1"] and made[2] in ("c1", "c2")
    verdicts = [e for e in events(repo) if e["type"] == "task.verdict"]
    assert verdicts[0]["reasons"] == "gate passed (judge.agent: none)"
    log = clanker(repo, "logs", "T1", check=True).stdout
    assert "wrote made-by.txt" in log
    assert clanker(repo, "logs", "T1", "--tail", "1", check=True).stdout.strip() == "wrote made-by.txt"


@pytest.mark.e2e
def test_failing_agent_is_retried_then_blocked_with_its_reason(tmp_path: Path, socket_name: str) -> None:
    config = "slaves: 2\nheartbeat_secs: 0.5\nmax_attempts: 2\nagent:\n  kind: fake\n"
    repo = make_repo(tmp_path / "r", config)
    clanker(repo, "task", "add", "Doomed", "--prompt", "fake: exit 3 the model refused", check=True)
    clanker(repo, "task", "add", "Fine", "--prompt", "fake: write ok.txt fine", check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
    assert proc.returncode == 1
    assert "1/2 tasks done" in proc.stdout and "T1 blocked — 2 attempts failed" in proc.stdout
    t1 = next(t for t in status(repo)["tasks"] if t["id"] == "T1")
    assert t1["state"] == "blocked" and t1["attempts"] == 2
    retried = clanker(repo, "task", "retry", "T1")
    assert retried.returncode == 0 and json.loads(clanker(repo, "task", "list", "--json").stdout)[0]["state"] == "ready"


@pytest.mark.e2e
def test_run_max_attempts_is_for_one_run_and_retry_all_failed_requeues_every_blocked_task(
    tmp_path: Path, socket_name: str
) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 0.5\nmax_attempts: 3\nagent:\n  kind: fake\n")
    for title in ("Doomed", "Also doomed"):
        clanker(repo, "task", "add", title, "--prompt", "fake: exit 3 the model refused", check=True)
    clanker(repo, "task", "add", "Fine", "--prompt", "fake: write ok.txt fine", check=True)
    proc = clanker(repo, "run", "--until-done", "--max-attempts", "1", "--timeout", "60", timeout=90)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    tasks = {t["id"]: t for t in status(repo)["tasks"]}
    assert [(tasks[t]["state"], tasks[t]["attempts"]) for t in ("T1", "T2")] == [("blocked", 1)] * 2  # not 3
    retried = clanker(repo, "task", "retry", "--all-failed")
    assert retried.returncode == 0 and retried.stdout.strip() == "2 task(s) ready again: T1, T2"
    states = {t["id"]: t["state"] for t in status(repo)["tasks"]}
    assert states == {"T1": "ready", "T2": "ready", "T3": "done"}
    assert clanker(repo, "task", "retry", "--all-failed").stdout.strip() == "no blocked task to retry"
    bad = clanker(repo, "task", "retry")
    assert bad.returncode == 2 and "name one task to retry, or give --all-failed" in bad.stderr
    assert "CLANKER_MAX_ATTEMPTS" not in os.environ  # the override was for that run only


def test_a_spawned_slave_starts_without_click_and_fails_as_the_cli_does(tmp_path: Path) -> None:
    from clanker.fleet.panes import slave_command
    from clanker.start import spawned_slave

    repo = make_repo(tmp_path / "r", "slaves: 1\n")
    assert spawned_slave(["--repo", str(repo), "slave", "1", "--executor", "x"]) is None
    assert spawned_slave(["slave", "1"]) is None and spawned_slave(["--repo", str(repo), "status", "1"]) is None
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    # The command line the fleet spawns (slave 0 fails at once, after the settings are read) ...
    argv = slave_command(Config(repo), 0)
    fast = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=60)

    def imported(p: subprocess.CompletedProcess[str]) -> set[str]:
        return {ln.rsplit("|", 1)[1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")}

    assert "click" not in imported(fast) and "clanker.fleet.slave" in imported(fast)
    # ... and the same through click (`--repo=R` is not the spawned form) say the same.
    parsed = subprocess.run([*argv[:3], f"--repo={repo}", "slave", "0"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert "click" in imported(parsed)
    said = [[ln for ln in p.stderr.splitlines() if ln.startswith("clanker:")] for p in (fast, parsed)]
    assert said[0] == said[1] == ["clanker: slave numbers start at 1: `clanker slave 1`"]
    assert fast.returncode == parsed.returncode == 1
