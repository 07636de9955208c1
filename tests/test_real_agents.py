"""The real agent CLIs (npm packages in .agents/, installed by scripts/install-agents) driven by
clanker end to end against the scripted mock LLM on 127.0.0.1. In CI (CLANKER_REQUIRE_AGENTS=1) a
missing binary fails these tests instead of skipping them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from clanker.agents.base import AgentRequest, Outcome
from clanker.agents.claude import ClaudeAdapter
from clanker.agents.runner import AgentRun, RunResult
from clanker.config import AgentConfig

from .helpers import clanker, clanker_bg, events, git, make_repo, retry_until, status
from .mockllm import (
    CLAUDE_MODEL,
    CODEX_MODEL,
    GEMINI_MODEL,
    Drop,
    MockLLM,
    Step,
    Text,
    ToolCall,
    anthropic_error,
    anthropic_usage_limit,
    claude_env,
    codex_args,
    codex_env,
    codex_home_setup,
    codex_usage_limit,
    free_port_url,
    gemini_daily_quota,
    gemini_env,
    gemini_home_setup,
)

pytestmark = [pytest.mark.agents, pytest.mark.e2e]
BIN = Path(__file__).resolve().parent.parent / ".agents" / "node_modules" / ".bin"


def binary(name: str) -> str:
    path = BIN / name
    if not path.exists():
        if os.environ.get("CLANKER_REQUIRE_AGENTS") == "1":
            pytest.fail(f"{path} is missing: run scripts/install-agents")
        pytest.skip(f"{name} is not installed (scripts/install-agents)")
    return str(path)


@pytest.fixture(autouse=True)
def no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith(("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_")):
            monkeypatch.delenv(var)


def config(agent: dict[str, Any], **extra: Any) -> str:
    cfg = {
        "slaves": 2,
        "heartbeat_secs": 0.5,
        "retry": {"base_secs": 0.05, "cap_secs": 0.3},
        "agent": agent,
        "gate": ["test ! -e GATE_FAIL"],
        **extra,
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def claude_agent(url: str, home: Path, key: bool = True) -> dict[str, Any]:
    env = claude_env(url, home, api_key="sk-test-mockllm-0000000000000000" if key else None)
    env.pop("HOME")
    return {"kind": "claude", "binary": binary("claude"), "model": CLAUDE_MODEL, "max_turns": 8, "env": env}


def run_until_done(repo: Path, timeout: float = 150) -> str:
    proc = clanker(repo, "run", "--until-done", "--timeout", str(timeout), timeout=timeout + 30)
    return f"{proc.returncode}\n{proc.stdout}{proc.stderr}"


def result_line(log: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return next(ev for ev in reversed(lines) if ev.get("type") == "result")


# --- claude through the whole loop -------------------------------------------------------------------------------


def test_claude_writes_and_runs_and_its_numbers_reach_status(tmp_path: Path, socket_name: str) -> None:
    tape: list[Step] = [
        ToolCall.write("hello.txt", "hi from claude\n", input_tokens=1200, output_tokens=60, cache_read=300),
        ToolCall.shell("cat hello.txt", input_tokens=1400, output_tokens=40),
        ToolCall.shell("ls missing.txt", input_tokens=1450, output_tokens=20),
        Text("I wrote hello.txt and checked it.", input_tokens=1500, output_tokens=30),
        Text("The file is there and correct.\nVERDICT: done", input_tokens=900, output_tokens=25),
    ]
    with MockLLM(tape) as llm:
        repo = make_repo(tmp_path / "r", config(claude_agent(llm.url, tmp_path / "home")))
        clanker(repo, "task", "add", "Say hi", "--prompt", "Create hello.txt saying hi", check=True)
        out = run_until_done(repo)
    assert out.startswith("0\n"), out
    assert git(repo, "show", "main:hello.txt") == "hi from claude"
    assert llm.consumed == 5 and llm.errors == []
    reported = result_line(repo / ".clanker" / "logs" / "T1" / "1.jsonl")
    task = status(repo)["tasks"][0]
    u = reported["usage"]
    assert task["work"]["input"] == u["input_tokens"] and task["work"]["output"] == u["output_tokens"]
    assert task["work"]["cache_read"] == u["cache_read_input_tokens"]
    assert task["work"]["turns"] == reported["num_turns"] and reported["num_turns"] >= 3
    assert task["work"]["cost_usd"] == pytest.approx(reported["total_cost_usd"]) and task["work"]["cost_usd"] > 0
    judge = result_line(repo / ".clanker" / "logs" / "T1" / "judge-1.jsonl")
    assert task["judge"]["cost_usd"] == pytest.approx(judge["total_cost_usd"])
    assert task["cost_usd"] == pytest.approx(reported["total_cost_usd"] + judge["total_cost_usd"])
    # The pane showed a readable account of it.
    txt = (repo / ".clanker" / "logs" / "T1" / "1.txt").read_text()
    assert "✎ write" in txt and "hello.txt" in txt and "$ cat hello.txt" in txt
    # The attempt's note has the seed's fields: facts from the stream and git, the block flagged.
    note = (repo / ".clanker" / "history" / "T1" / "work-1.md").read_text()
    assert (
        "## Commands run\n- `cat hello.txt` (agent, exit 0)\n- `ls missing.txt` (agent, exit 2)\n"
        "- `test ! -e GATE_FAIL` (gate, exit 0)"
    ) in note
    assert "## Diffstat\n1 file changed, 1 insertion(+)" in note and "## Files touched\n- hello.txt" in note
    assert "## Summary block\nmissing: the agent wrote no SUMMARY block" in note


def test_claude_transient_failures_are_retried_until_the_tape_succeeds(tmp_path: Path, socket_name: str) -> None:
    tape: list[Step] = [
        anthropic_error(429),
        anthropic_error(529),
        anthropic_error(500),
        Drop(),
        ToolCall.write("ok.txt", "made it\n"),
        Text("done"),
        Text("VERDICT: done"),
    ]
    with MockLLM(tape) as llm:
        repo = make_repo(tmp_path / "r", config(claude_agent(llm.url, tmp_path / "home")))
        clanker(repo, "task", "add", "Persist", "--prompt", "Create ok.txt", check=True)
        out = run_until_done(repo)
    assert out.startswith("0\n"), out
    assert git(repo, "show", "main:ok.txt") == "made it"
    waits = [e for e in events(repo) if e["type"] == "retry.wait"]
    assert len(waits) == 4, waits
    outcomes = [e["outcome"] for e in events(repo) if e["type"] == "attempt.finished" and e["role"] == "work"]
    assert outcomes == ["transient"] * 4 + ["ok"]
    assert status(repo)["tasks"][0]["attempts"] == 1


def test_claude_without_a_key_blocks_with_the_fix(tmp_path: Path, socket_name: str) -> None:
    with MockLLM([]) as llm:
        repo = make_repo(tmp_path / "r", config(claude_agent(llm.url, tmp_path / "home", key=False)))
        clanker(repo, "task", "add", "Anything", check=True)
        out = run_until_done(repo)
    assert out.startswith("1\n"), out
    reason = status(repo)["tasks"][0]["reason"]
    assert "claude /login" in reason and "ANTHROPIC_API_KEY" in reason, reason


def test_claude_usage_limit_pauses_until_the_reset_then_resumes(
    tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_TOKEN", "sk-ant-oat01-mock-subscription-token-000000")
    reset = int(time.time()) + 4
    tape: list[Step] = [
        anthropic_usage_limit(reset),
        ToolCall.write("later.txt", "after the reset\n"),
        Text("done"),
        Text("VERDICT: done"),
    ]
    with MockLLM(tape) as llm:
        agent = claude_agent(llm.url, tmp_path / "home", key=False)
        repo = make_repo(tmp_path / "r", config(agent, credentials=[{"name": "team", "env": "TEAM_TOKEN"}]))
        clanker(repo, "task", "add", "Limited", "--prompt", "Create later.txt", check=True)
        out = run_until_done(repo)
    assert out.startswith("0\n"), out
    evs = events(repo)
    spent = [e for e in evs if e["type"] == "credential.exhausted"]
    assert [e["credential"] for e in spent] == ["team"] and spent[0]["until"] == reset
    claims = [e["ts"] for e in evs if e["type"] == "task.claimed"]
    assert len(claims) == 2 and claims[1] >= reset - 0.5
    assert git(repo, "show", "main:later.txt") == "after the reset"
    token = "sk-ant-oat01-mock-subscription-token-000000"
    assert all(token not in p.read_text(errors="replace") for p in (repo / ".clanker").rglob("*") if p.is_file())


def test_claude_rework_resumes_the_same_session(tmp_path: Path, socket_name: str) -> None:
    tape: list[Step] = [
        ToolCall.write("feature.txt", "v1\n"),
        Text("wrote v1"),
        Text("Missing the second line.\nVERDICT: rework add a second line saying v2"),
        ToolCall.write("feature.txt", "v1\nv2\n"),
        Text("added v2"),
        Text("VERDICT: done"),
    ]
    with MockLLM(tape) as llm:
        repo = make_repo(tmp_path / "r", config(claude_agent(llm.url, tmp_path / "home")))
        clanker(repo, "task", "add", "Feature", "--prompt", "Create feature.txt", check=True)
        out = run_until_done(repo)
        mains = llm.main_requests()
    assert out.startswith("0\n"), out
    assert git(repo, "show", "main:feature.txt") == "v1\nv2"
    work = [e for e in events(repo) if e["type"] == "attempt.finished" and e["role"] == "work"]
    assert len(work) == 2 and work[0]["session_id"] and work[0]["session_id"] == work[1]["session_id"]
    # The resumed run carried the first conversation and the judge's reasons.
    rework_request = json.dumps(mains[3].body)
    assert "Create feature.txt" in rework_request and "add a second line saying v2" in rework_request
    assert "wrote v1" in rework_request


def test_claude_offline_then_back_resumes_by_itself(tmp_path: Path, socket_name: str) -> None:
    url = free_port_url()  # nothing listens there yet: the API is "down"
    repo = make_repo(tmp_path / "r", config(claude_agent(url, tmp_path / "home")))
    clanker(repo, "task", "add", "Survive an outage", "--prompt", "Create back.txt", check=True)
    runner = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    try:
        retry_until(lambda: sum(e["type"] == "retry.wait" for e in events(repo)) >= 2, 60)
        tape: list[Step] = [ToolCall.write("back.txt", "we are back\n"), Text("done"), Text("VERDICT: done")]
        with MockLLM(tape, port=int(url.rsplit(":", 1)[1])):
            out, _ = runner.communicate(timeout=150)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out
    waits = [e for e in events(repo) if e["type"] == "retry.wait"]
    assert len(waits) >= 2 and all("onnect" in w["reason"] or "refused" in w["reason"].lower() for w in waits)
    assert git(repo, "show", "main:back.txt") == "we are back"
    assert status(repo)["tasks"][0]["attempts"] == 1


def test_claude_crossing_its_task_budget_mid_run_is_stopped_within_one_event(tmp_path: Path, socket_name: str) -> None:
    """Each turn reports about 3k tokens as it streams; the task may spend 7k: the third turn's
    usage crosses it, and the run is stopped there — at most one more request reaches the LLM."""
    tape: list[Step] = [ToolCall.shell(f"echo {n}", input_tokens=3000, output_tokens=20) for n in range(1, 7)]
    tape.append(Text("All six echoes ran.", input_tokens=3000, output_tokens=20))
    with MockLLM(tape) as llm:
        agent = claude_agent(llm.url, tmp_path / "home")
        settings = config(agent, slaves=1, planner={"agent": "none"}, budget={"task_tokens": 7000})
        repo = make_repo(tmp_path / "r", settings)
        clanker(repo, "task", "add", "Echo six times", "--prompt", "Run echo 1 to echo 6, one at a time", check=True)
        out = run_until_done(repo)
        consumed = llm.consumed
    assert out.startswith("1\n"), out  # nothing landed: the task is blocked
    assert 3 <= consumed <= 4, consumed  # stopped at the crossing turn, not after all seven
    log = events(repo)
    (run,) = [e for e in log if e["type"] == "attempt.finished"]
    spent = run["usage"]["input"] + run["usage"]["output"]
    assert 7000 <= spent < 7000 + 2 * 3020, run["usage"]
    blocked = [e for e in log if e["type"] == "task.blocked"]
    assert blocked and "task budget spent" in blocked[-1]["reason"] and "task_tokens" in blocked[-1]["reason"]
    assert not any(e["type"] == "task.judge_claimed" for e in log)  # no judge agent ran for it


# --- claude through clanker's runner: how each failure is classified ---------------------------------------------


def run_claude(tmp_path: Path, url: str, tape_home: Path, key: bool = True, max_turns: int = 8) -> RunResult:
    wt = make_repo(tmp_path / "wt")
    env = claude_env(url, tape_home, api_key="sk-test-mockllm-0000000000000000" if key else None)
    cfg = AgentConfig(
        kind="claude",
        binary=binary("claude"),
        model=CLAUDE_MODEL,
        max_turns=max_turns,
        env=env,
        timeout_secs=120,
        stall_secs=0,
    )
    prompt_file = tmp_path / "prompt.md"
    req = AgentRequest("worker", "Create x.txt", "T1", "c1", wt, 1, prompt_file, cfg)
    return AgentRun(ClaudeAdapter(), req, tmp_path / "log.jsonl", lambda _line: None).run()


@pytest.mark.parametrize(
    ("tape", "outcome"),
    [
        ([anthropic_error(429)], Outcome.TRANSIENT),
        ([anthropic_error(529)], Outcome.TRANSIENT),
        ([anthropic_error(500)], Outcome.TRANSIENT),
        ([Drop()], Outcome.TRANSIENT),
        ([anthropic_error(401)], Outcome.AUTH),
    ],
    ids=["429", "529", "500", "drop", "401"],
)
def test_claude_failures_are_classified(tmp_path: Path, tape: list[Step], outcome: Outcome) -> None:
    with MockLLM(tape) as llm:
        res = run_claude(tmp_path, llm.url, tmp_path / "home")
    assert res.outcome == outcome, (res.result.error, res.exit_code)


def test_claude_refused_connection_is_transient(tmp_path: Path) -> None:
    res = run_claude(tmp_path, free_port_url(), tmp_path / "home")
    assert res.outcome == Outcome.TRANSIENT, res.result.error


def test_claude_max_turns_is_out_of_budget(tmp_path: Path) -> None:
    tape: list[Step] = [ToolCall.shell("echo 1"), ToolCall.shell("echo 2"), ToolCall.shell("echo 3"), Text("x")]
    with MockLLM(tape) as llm:
        res = run_claude(tmp_path, llm.url, tmp_path / "home", max_turns=1)
    assert res.outcome == Outcome.OUT_OF_BUDGET and res.result.reset_at is None, res.result.error


# --- codex and gemini ----------------------------------------------------------------------------------------------


def codex_agent(url: str, home: Path) -> dict[str, Any]:
    codex_home_setup(home)
    env = codex_env(url, home)
    return {"kind": "codex", "binary": binary("codex"), "model": CODEX_MODEL, "args": codex_args(url), "env": env}


def gemini_agent(url: str, home: Path) -> dict[str, Any]:
    gemini_home_setup(home)
    return {"kind": "gemini", "binary": binary("gemini"), "model": GEMINI_MODEL, "env": gemini_env(url, home)}


@pytest.mark.parametrize("kind", ["codex", "gemini"])
def test_codex_and_gemini_land_a_file_with_tokens_and_priced_cost(tmp_path: Path, socket_name: str, kind: str) -> None:
    tape: list[Step] = [
        ToolCall.write("made.txt", f"by {kind}\n", input_tokens=2000, output_tokens=100),
        Text("done", input_tokens=2100, output_tokens=20),
    ]
    home = tmp_path / "home"
    with MockLLM(tape) as llm:
        agent = codex_agent(llm.url, home) if kind == "codex" else gemini_agent(llm.url, home)
        repo = make_repo(tmp_path / "r", config(agent, judge={"agent": "none"}))
        clanker(repo, "task", "add", "Make it", "--prompt", "Create made.txt", check=True)
        out = run_until_done(repo)
    assert out.startswith("0\n"), out
    assert git(repo, "show", "main:made.txt") == f"by {kind}"
    work = status(repo)["tasks"][0]["work"]
    assert work["input"] + work["cache_read"] >= 4000 and work["output"] >= 120
    assert work["cost_usd"] > 0, "priced from the table: the CLI reports no cost"


@pytest.mark.parametrize(
    ("kind", "step", "outcome"),
    [
        ("codex", codex_usage_limit(), Outcome.OUT_OF_BUDGET),
        ("gemini", gemini_daily_quota(), Outcome.OUT_OF_BUDGET),
    ],
)
def test_codex_and_gemini_failures_are_classified(
    tmp_path: Path, socket_name: str, kind: str, step: Step, outcome: Outcome
) -> None:
    home = tmp_path / "home"
    with MockLLM([step]) as llm:
        agent = codex_agent(llm.url, home) if kind == "codex" else gemini_agent(llm.url, home)
        repo = make_repo(tmp_path / "r", config(agent, judge={"agent": "none"}))
        clanker(repo, "task", "add", "Limited", check=True)
        started = time.time()
        out = run_until_done(repo, timeout=8)
    finished = [e for e in events(repo) if e["type"] == "attempt.finished"]
    assert finished and finished[0]["outcome"] == str(outcome), finished
    # A daily or hourly limit pauses the credential until its reset (minutes away): the run times
    # out waiting, with the task back in the queue rather than burnt.
    assert out.startswith("3\n"), out
    spent = [e for e in events(repo) if e["type"] == "credential.exhausted"]
    assert spent and spent[0]["until"] > started + 30
    assert status(repo)["tasks"][0]["state"] == "ready"


# --- coming from flocks: its files, imported, run unchanged -------------------------------------------------------

FLOCKS_TOML = """# two agents, one subscription each
max_agents = 2
max_retries = 2

[[credentials]]
name = "sub-1"
env = "CLAUDE_TOKEN_1"

[source]
type = "jsonl"
path = "tasks.jsonl"

[workspace]
branch_prefix = "flocks/"
land_target = "main"

[validate]
commands = ["test -f flocks.toml"]

[prompt]
template = "flocks-prompt.md"
"""


def test_a_flocks_project_imported_runs_to_done_unchanged(
    tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tape: list[Step] = [
        ToolCall.write("hello.txt", "hi from flocks\n", input_tokens=900, output_tokens=40),
        Text("I wrote hello.txt.", input_tokens=1000, output_tokens=20),
        Text("It does what the task asks.\nVERDICT: done", input_tokens=800, output_tokens=20),
    ]
    with MockLLM(tape) as llm:
        for k, v in claude_env(llm.url, tmp_path / "home", api_key=None).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("CLAUDE_TOKEN_1", "sk-test-mockllm-0000000000000000")  # flocks' credential
        monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")  # `claude` where flocks users have it
        binary("claude")
        files = {
            "flocks.toml": FLOCKS_TOML,
            "tasks.jsonl": '{"id": "greet", "title": "Say hello", "prompt": "Create hello.txt saying hi"}\n',
            "flocks-prompt.md": "You work for a flocks fleet.\n\n{{prompt}}\n",
        }
        repo = make_repo(tmp_path / "r", None, files)
        (repo / "clanker.yaml").unlink(missing_ok=True)
        wrote = clanker(repo, "import-flocks", "flocks.toml")
        assert wrote.returncode == 0, wrote.stderr
        assert "wrote" in wrote.stdout and "left out" not in wrote.stdout
        out = run_until_done(repo)
    assert out.startswith("0\n"), out
    (t,) = status(repo)["tasks"]
    assert (t["title"], t["state"]) == ("Say hello", "done")
    assert git(repo, "branch", "--list", "flocks/*").strip() == f"flocks/{t['id']}"  # flocks' branch prefix
    assert git(repo, "show", "main:hello.txt") == "hi from flocks"
    prompt = next((repo / ".clanker" / "prompts").glob(f"{t['id']}-worker-*.md")).read_text()
    assert "You work for a flocks fleet." in prompt and "Create hello.txt saying hi" in prompt  # {{prompt}}
    runs = [e for e in events(repo) if e["type"] == "attempt.finished"]
    assert runs and all(e["credential"] == "sub-1" for e in runs)
