"""What happens when agents fail, end to end with the fake agent reproducing each real quirk:
transient errors are retried, budget limits pause and resume, auth blocks with the fix, and
secrets never reach events, logs, state or panes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clanker.fleet.panes import view
from clanker.system.tmux import Tmux

from .helpers import clanker, events, git, make_repo, status

pytestmark = pytest.mark.e2e

BASE = "slaves: 2\nheartbeat_secs: 0.5\nretry:\n  base_secs: 0.05\n  cap_secs: 0.2\nagent:\n  kind: fake\n"


def run(repo: Path, *extra: str) -> str:
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", *extra, timeout=120)
    return f"{proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_transient_errors_are_retried_until_the_agent_succeeds(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", BASE)
    prompt = "fake: times 3 error transient API Error: 529 Overloaded\nfake: write a.txt finally"
    clanker(repo, "task", "add", "flaky API", "--prompt", prompt, check=True)
    out = run(repo)
    assert out.startswith("0\n"), out
    waits = [e for e in events(repo) if e["type"] == "retry.wait"]
    assert len(waits) == 3 and all("529 Overloaded" in w["reason"] for w in waits)
    assert all(0 <= w["delay"] <= 0.2 for w in waits), "backoff is capped by retry.cap_secs"
    task = status(repo)["tasks"][0]
    assert task["state"] == "done" and task["attempts"] == 1, "transient retries are not new attempts"
    assert git(repo, "show", "main:a.txt") == "finally"


def test_usage_limit_with_a_reset_pauses_every_slave_then_resumes(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", BASE)
    prompt = "fake: times 1 error out_of_budget You've hit your limit, resets-in 2\nfake: write b.txt later"
    clanker(repo, "task", "add", "hits the limit", "--prompt", prompt, check=True)
    out = run(repo)
    assert out.startswith("0\n"), out
    evs = events(repo)
    spent = [e for e in evs if e["type"] == "credential.exhausted"]
    assert len(spent) == 1 and spent[0]["credential"] == "default"
    assert any(e["type"] == "task.released" and e.get("refund") for e in evs)
    paused = {e["slave"] for e in evs if e["type"] == "slave.paused"}
    assert paused == {"c1", "c2"}, "every slave using the credential waits for the reset"
    resumed = [e for e in evs if e["type"] == "task.claimed"]
    assert resumed[-1]["ts"] >= spent[0]["until"] - 0.5, "nobody started the agent again before the reset"
    task = status(repo)["tasks"][0]
    assert task["state"] == "done" and task["attempts"] == 1


def test_out_of_budget_without_a_reset_blocks_the_task(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", BASE)
    clanker(
        repo, "task", "add", "too big", "--prompt", "fake: error out_of_budget context window exhausted", check=True
    )
    out = run(repo)
    assert out.startswith("1\n") and "T1 blocked — out_of_budget: context window exhausted" in out, out


def test_auth_failure_blocks_with_the_fix(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", BASE)
    clanker(repo, "task", "add", "no key", "--prompt", "fake: error auth Not logged in", check=True)
    out = run(repo)
    assert out.startswith("1\n"), out
    reason = status(repo)["tasks"][0]["reason"]
    assert reason.startswith("auth: ") and "Not logged in" in reason


def test_a_failing_attempt_is_retried_with_its_error_in_the_next_prompt(tmp_path: Path, socket_name: str) -> None:
    repo = make_repo(tmp_path / "r", BASE)
    prompt = "fake: on-attempt 1 exit 2 I broke the build\nfake: write c.txt fixed"
    clanker(repo, "task", "add", "second time lucky", "--prompt", prompt, check=True)
    out = run(repo)
    assert out.startswith("0\n"), out
    second = (repo / ".clanker" / "prompts" / "T1-worker-2.md").read_text()
    assert second.splitlines()[0] == "CLANKER-ROLE: worker"
    assert "Earlier attempts failed" in second and "I broke the build" in second


def test_secrets_never_reach_events_logs_state_or_panes(
    tmp_path: Path, tm: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-0123456789abcdef-SECRET"
    inherited = "sk-ant-api-inherited-0123456789"
    monkeypatch.setenv("MY_AGENT_TOKEN", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", inherited)  # in the environment, not configured
    config = BASE + "credentials:\n  - name: main\n    env: MY_AGENT_TOKEN\n    inject: FAKE_API_KEY\n"
    repo = make_repo(tmp_path / "r", config)
    prompt = "fake: print-env FAKE_API_KEY\nfake: print-env ANTHROPIC_API_KEY\nfake: write d.txt done"
    clanker(repo, "task", "add", "leaky agent", "--prompt", prompt, check=True)
    out = run(repo, "--keep")
    assert out.startswith("0\n"), out
    # The agent did get the secret (it printed it) …
    log = clanker(repo, "logs", "T1", check=True).stdout
    assert "FAKE_API_KEY=[redacted]" in log and "ANTHROPIC_API_KEY=[redacted]" in log
    # … and it appears nowhere clanker wrote or showed.
    for path in (repo / ".clanker").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert secret not in text and inherited not in text, path
    for pane in view(tm, repo).panes.values():
        screen = tm.capture(pane.id)
        assert secret not in screen and inherited not in screen
    assert secret not in json.dumps(status(repo))
    clanker(repo, "stop", check=True)
