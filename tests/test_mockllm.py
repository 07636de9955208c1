"""The real agent CLIs (claude, codex, gemini from `.agents/`, see scripts/install-agents) against `MockLLM`.

Each scenario runs one binary directly (not through clanker) in a temp git repo and asserts what it really
prints: the stream events, exit code, error texts and usage. With `CLANKER_RECORD_STREAMS=1` each run's raw
stdout is also saved to `tests/data/streams/<agent>-<scenario>.jsonl` (temp paths and the mock port
normalised, see the README there) with a sibling `.meta.json` (exit code, first stderr line, argv), so
parsers can be unit-tested on real output without the binaries.

Missing binaries skip these tests, unless `CLANKER_REQUIRE_AGENTS=1` (CI), which makes them fail.
The tests at the bottom check the mock itself and the recordings; they need no binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_repo
from tests.mockllm import (
    CODEX_MODEL,
    Drop,
    MockLLM,
    Step,
    Text,
    ToolCall,
    anthropic_error,
    anthropic_usage_limit,
    claude_args,
    claude_env,
    codex_env,
    codex_exec_args,
    codex_home_setup,
    codex_insufficient_quota,
    codex_usage_limit,
    free_port_url,
    full_env,
    gemini_args,
    gemini_daily_quota,
    gemini_env,
    gemini_error,
    gemini_home_setup,
    openai_error,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".agents" / "node_modules" / ".bin"
STREAMS = Path(__file__).resolve().parent / "data" / "streams"
PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex", "gemini": "@google/gemini-cli"}
RUN_TIMEOUT = 45.0
REC_TMP = "/tmp/clanker-rec"
REC_PORT = 8765
TRIM_BYTES = 20_000

agents = pytest.mark.agents


# ---------------------------------------------------------------------------------------------------------------
# Running a CLI


@dataclass
class Run:
    agent: str
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, type_: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_ and (subtype is None or e.get("subtype") == subtype)]

    def one(self, type_: str, subtype: str | None = None) -> dict[str, Any]:
        found = self.of(type_, subtype)
        assert len(found) == 1, f"expected one {type_}/{subtype}, got {len(found)}:\n{self.stdout}"
        return found[0]

    @property
    def types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    @property
    def result(self) -> dict[str, Any]:
        """The last `result` event (claude, gemini)."""
        found = self.of("result")
        assert found, f"no result event (rc={self.rc}):\n{self.stdout}\nstderr:\n{self.stderr[-2000:]}"
        return found[-1]


def agent_bin(name: str) -> Path:
    exe = BIN / name
    if not exe.exists():
        msg = f"{exe} is missing: run scripts/install-agents"
        if os.environ.get("CLANKER_REQUIRE_AGENTS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def run_cli(agent: str, args: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT) -> Run:
    """Run the agent in its own session, stdin closed; kill its whole process group on timeout."""
    argv = [str(agent_bin(agent)), *args]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{agent} did not finish within {timeout}s\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # helpers left in its session
            os.killpg(proc.pid, signal.SIGKILL)
    events: list[dict[str, Any]] = []
    for line in out.splitlines():
        if line.strip():
            obj = json.loads(line)  # stdout must be pure JSONL
            assert isinstance(obj, dict), line
            events.append(obj)
    return Run(agent, argv, proc.returncode, out, err, time.monotonic() - start, events)


# ---------------------------------------------------------------------------------------------------------------
# Recording


def _normalise(text: str, tmp: Path, url: str | None) -> str:
    text = text.replace(str(tmp), REC_TMP)
    text = text.replace(re.sub(r"[^A-Za-z0-9]", "-", str(tmp)), re.sub(r"[^A-Za-z0-9]", "-", REC_TMP))
    if url:
        port = url.rsplit(":", 1)[1]
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{REC_PORT}")
    return text


def _trim(stdout: str) -> str:
    """Keep recordings commit-sized: shorten long lists (tool lists etc.) in oversized lines, keeping the shape."""
    if len(stdout) <= TRIM_BYTES:
        return stdout
    lines = []
    for line in stdout.splitlines():
        if len(line) > 4000:
            obj = json.loads(line)
            for k, v in list(obj.items()):
                if isinstance(v, list) and len(v) > 5:
                    obj[k] = v[:5]
            line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        lines.append(line)
    return "\n".join(lines) + "\n"


def _cli_version(agent: str) -> str:
    pj = ROOT / ".agents" / "node_modules" / PACKAGES[agent] / "package.json"
    return str(json.loads(pj.read_text())["version"]) if pj.exists() else "unknown"


def record(run: Run, scenario: str, tmp: Path, url: str | None) -> None:
    """Save the run under tests/data/streams when CLANKER_RECORD_STREAMS=1."""
    if os.environ.get("CLANKER_RECORD_STREAMS") != "1":
        return
    STREAMS.mkdir(parents=True, exist_ok=True)
    name = f"{run.agent}-{scenario}"
    (STREAMS / f"{name}.jsonl").write_text(_trim(_normalise(run.stdout, tmp, url)))
    err_lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    meta = {
        "agent": run.agent,
        "scenario": scenario,
        "cli_version": _cli_version(run.agent),
        "exit_code": run.rc,
        "stderr_first_line": _normalise(err_lines[0], tmp, url) if err_lines else "",
        "stderr_error_line": next(
            (_normalise(ln, tmp, url) for ln in err_lines if re.search(r"error|failed", ln, re.I)), ""
        ),
        "argv": [_normalise(a, tmp, url) for a in [run.agent, *run.argv[1:]]],
        "seconds": round(run.seconds, 1),
    }
    (STREAMS / f"{name}.meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])  # tmp_path/home, from conftest's isolated_env


@pytest.fixture
def mock() -> Iterator[MockLLM]:
    with MockLLM() as m:
        yield m
        assert not m.errors, m.errors
        assert not m.overflow


# ---------------------------------------------------------------------------------------------------------------
# claude


def claude(mock: MockLLM, repo: Path, home: Path, prompt: str, max_turns: int = 5, **kw: Any) -> Run:
    url = kw.pop("url", mock.url)
    extra = kw.pop("extra", ())
    env = claude_env(url, home, **kw)
    return run_cli("claude", claude_args(prompt, max_turns=max_turns, extra=extra), full_env(env), repo)


@agents
def test_claude_write_bash_text(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [
        ToolCall.write("hello.txt", "hello world\n", input_tokens=1000, output_tokens=50),
        ToolCall.shell("echo ran > ran.txt", input_tokens=1200, output_tokens=30),
        Text("All done.", input_tokens=100, output_tokens=10, cache_read=1300, cache_write=200),
    ]
    run = claude(mock, repo, home, "Create hello.txt please", max_turns=5)
    record(run, "success", tmp_path, mock.url)

    assert run.rc == 0
    assert (repo / "hello.txt").read_text() == "hello world\n"
    assert (repo / "ran.txt").read_text() == "ran\n"
    init = run.one("system", "init")
    assert init["cwd"] == str(repo) and init["session_id"] and init["claude_code_version"] == _cli_version("claude")
    assert init["permissionMode"] == "bypassPermissions" and init["apiKeySource"] == "ANTHROPIC_API_KEY"
    uses = [c for e in run.of("assistant") for c in e["message"]["content"] if c["type"] == "tool_use"]
    assert [u["name"] for u in uses] == ["Write", "Bash"]
    results = [c for e in run.of("user") for c in e["message"]["content"] if c["type"] == "tool_result"]
    assert len(results) == 2 and not any(r.get("is_error") for r in results)

    res = run.result
    assert run.types[-1] == "result"
    assert res["subtype"] == "success" and res["is_error"] is False and res["api_error_status"] is None
    assert res["terminal_reason"] == "completed" and res["stop_reason"] == "end_turn"
    assert res["result"] == "All done." and res["num_turns"] == 3
    assert res["session_id"] == init["session_id"]
    usage = res["usage"]
    assert usage["input_tokens"] == 2300 and usage["output_tokens"] == 90
    assert usage["cache_read_input_tokens"] == 1300 and usage["cache_creation_input_tokens"] == 200
    assert res["total_cost_usd"] > 0
    (model_usage,) = res["modelUsage"].values()
    assert model_usage["inputTokens"] == 2300 and model_usage["costUSD"] == pytest.approx(res["total_cost_usd"])

    assert mock.consumed == 3
    first, second, third = mock.main_requests()
    assert "Create hello.txt please" in first.text and str(repo) in first.text  # prompt, cwd in the system prompt
    assert first.path.startswith("/v1/messages") and first.body["stream"] is True
    assert first.headers["x-api-key"].startswith("sk-test")
    assert "tool_result" in second.text and uses[0]["id"] in second.text
    assert uses[1]["id"] in third.text


@agents
def test_claude_bash_exit_code(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """A command that exits 3: its tool_result is an error whose text carries the exit code."""
    mock.tape = [ToolCall.shell("echo broken >&2; exit 3"), Text("It failed.")]
    run = claude(mock, repo, home, "run something", max_turns=5)
    record(run, "bash-exit-3", tmp_path, mock.url)

    assert run.rc == 0 and run.result["subtype"] == "success"
    (result,) = [c for e in run.of("user") for c in e["message"]["content"] if c["type"] == "tool_result"]
    assert result["is_error"] is True and result["content"] == "Exit code 3\nbroken"


@dataclass(frozen=True)
class ClaudeFailure:
    scenario: str
    tape: tuple[Step, ...]
    status: int | None
    error: str
    text: str
    url: str = "mock"  # "mock" | "refused"
    logged_in: bool = True


CLAUDE_FAILURES = [
    ClaudeFailure("429", (anthropic_error(429),), 429, "rate_limit", "API Error: Request rejected (429) · "),
    ClaudeFailure("529", (anthropic_error(529),), 529, "server_error", "API Error: 529 Overloaded."),
    ClaudeFailure("500", (anthropic_error(500),), 500, "server_error", "API Error: 500 Internal server error."),
    ClaudeFailure("401", (anthropic_error(401),), 401, "authentication_failed", "Invalid API key · "),
    ClaudeFailure("drop", (Drop(),), None, "server_error", "API Error: Connection dropped"),
    ClaudeFailure("refused", (), None, "server_error", "API Error: Connection refused", url="refused"),
    ClaudeFailure(
        "not-logged-in", (), None, "authentication_failed", "Not logged in · Please run /login", logged_in=False
    ),
]


@agents
@pytest.mark.parametrize("case", CLAUDE_FAILURES, ids=[c.scenario for c in CLAUDE_FAILURES])
def test_claude_failures(case: ClaudeFailure, mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """Every API failure ends the same way: exit 1, `result` with is_error true but subtype "success",
    terminal_reason "api_error", the HTTP status (or null) in api_error_status, and a synthetic assistant
    message carrying `error` and the text. No retries (CLAUDE_CODE_MAX_RETRIES=0), so it is quick."""
    mock.tape = list(case.tape)
    url = free_port_url() if case.url == "refused" else mock.url
    run = claude(mock, repo, home, "do it", url=url, api_key="sk-test-key" if case.logged_in else None)
    record(run, case.scenario, tmp_path, url)

    assert run.rc == 1
    assert run.types == ["system", "assistant", "result"]
    res = run.result
    assert res["is_error"] is True and res["subtype"] == "success" and res["terminal_reason"] == "api_error"
    assert res["api_error_status"] == case.status
    assert res["result"].startswith(case.text), res["result"]
    assert res["num_turns"] == 1 and res["total_cost_usd"] == 0
    msg = run.one("assistant")
    assert msg["error"] == case.error
    assert msg["message"]["model"] == "<synthetic>" and msg["message"]["content"][0]["text"] == res["result"]
    assert len(mock.main_requests()) == len(case.tape)
    assert run.seconds < 15


@agents
def test_claude_usage_limit_subscription(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """Logged in with a subscription token, a 429 with the unified rate-limit headers is a usage limit:
    a `rate_limit_event` (rejected, resetsAt, rateLimitType) then "You've hit your 5-hour limit · resets …"."""
    reset = int(time.time()) + 3600
    mock.tape = [anthropic_usage_limit(reset, "five_hour")]
    run = claude(mock, repo, home, "do it", api_key=None, oauth_token="sk-ant-oat01-mock-token")
    record(run, "usage-limit", tmp_path, mock.url)

    assert run.rc == 1
    assert run.types == ["system", "rate_limit_event", "assistant", "result"]
    info = run.one("rate_limit_event")["rate_limit_info"]
    assert info["status"] == "rejected" and info["resetsAt"] == reset and info["rateLimitType"] == "five_hour"
    assert run.one("assistant")["error"] == "rate_limit"
    res = run.result
    assert res["is_error"] is True and res["api_error_status"] == 429
    assert res["result"].startswith("You've hit your 5-hour limit · resets ")
    assert mock.main_requests()[0].headers["authorization"] == "Bearer sk-ant-oat01-mock-token"


@agents
def test_claude_max_turns(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [ToolCall.shell("true")] * 5
    run = claude(mock, repo, home, "loop forever", max_turns=2)
    record(run, "max-turns", tmp_path, mock.url)

    assert run.rc == 1
    res = run.result
    assert res["subtype"] == "error_max_turns" and res["is_error"] is True
    assert res["terminal_reason"] == "max_turns"
    assert "api_error_status" not in res and "result" not in res  # absent, not null, in error_* results
    assert (
        res["num_turns"] == 3
        and res["stop_reason"] == "tool_use"
        and res["errors"] == ["Reached maximum number of turns (2)"]
    )
    assert res["total_cost_usd"] > 0
    assert mock.consumed == 2  # the tool call of turn 2 ran, then it stopped before asking again
    assert not run.of("assistant") or all("error" not in e for e in run.of("assistant"))


@agents
def test_claude_retry_then_success(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """With CLAUDE_CODE_MAX_RETRIES=1, a 529 shows up as `system/api_retry` and the retry succeeds."""
    mock.tape = [anthropic_error(529), Text("recovered")]
    env = full_env({**claude_env(mock.url, home), "CLAUDE_CODE_MAX_RETRIES": "1"})
    run = run_cli("claude", claude_args("do it"), env, repo)
    record(run, "retry-529", tmp_path, mock.url)

    assert run.rc == 0
    retry = run.one("system", "api_retry")
    assert retry["attempt"] == 1 and retry["max_retries"] == 1
    assert retry["error_status"] == 529 and retry["error"] == "overloaded" and retry["retry_delay_ms"] > 0
    assert run.result["subtype"] == "success" and run.result["result"] == "recovered"
    assert mock.consumed == 2


@agents
def test_claude_resume(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [Text("first answer MARK-1"), Text("second answer")]
    first = claude(mock, repo, home, "first prompt")
    assert first.rc == 0
    sid = first.result["session_id"]
    second = claude(mock, repo, home, "second prompt", extra=["--resume", sid])
    record(second, "resume", tmp_path, mock.url)

    assert second.rc == 0 and second.result["result"] == "second answer"
    assert {e.get("session_id") for e in second.events} == {sid}
    req = mock.main_requests()[1].body
    roles = [m["role"] for m in req["messages"]]
    assert roles == ["user", "assistant", "user"]
    history = json.dumps(req["messages"])
    assert "first prompt" in history and "first answer MARK-1" in history and "second prompt" in history


# ---------------------------------------------------------------------------------------------------------------
# codex


def codex(
    mock: MockLLM,
    repo: Path,
    home: Path,
    prompt: str,
    url: str | None = None,
    resume: str | None = None,
    retries: int = 0,
) -> Run:
    codex_home_setup(home)
    url = url or mock.url
    args = codex_exec_args(url, repo, prompt, resume=resume, retries=retries)
    return run_cli("codex", args, full_env(codex_env(url, home)), repo)


@agents
def test_codex_apply_patch(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [
        ToolCall.write("hello.txt", "hello world\n", input_tokens=1000, output_tokens=50),
        Text("Done.", input_tokens=200, output_tokens=10, cache_read=1000),
    ]
    run = codex(mock, repo, home, "Create hello.txt please")
    record(run, "apply-patch", tmp_path, mock.url)

    assert run.rc == 0
    assert (repo / "hello.txt").read_text() == "hello world\n"
    assert run.types == ["thread.started", "turn.started", "item.started", "item.completed", "item.completed"] + [
        "turn.completed"
    ]
    change = run.of("item.completed")[0]["item"]
    assert change["type"] == "file_change" and change["status"] == "completed"
    assert change["changes"] == [{"path": str(repo / "hello.txt"), "kind": "add"}]
    assert run.of("item.completed")[1]["item"] == {"id": "item_1", "type": "agent_message", "text": "Done."}
    usage = run.one("turn.completed")["usage"]
    assert usage["input_tokens"] == 2200 and usage["cached_input_tokens"] == 1000 and usage["output_tokens"] == 60
    first, second = mock.main_requests()
    assert first.path == "/v1/responses" and first.body["model"] == CODEX_MODEL and first.body["stream"] is True
    assert "Create hello.txt please" in first.text
    assert first.headers["authorization"] == "Bearer sk-test-mockllm-0000000000000000"
    assert "apply_patch" in [t.get("name") for t in first.body["tools"]]
    assert "custom_tool_call_output" in [i.get("type") for i in second.body["input"]]


@agents
@pytest.mark.parametrize(
    ("scenario", "command", "code", "status"),
    [("exec-command", "echo ran > ran.txt", 0, "completed"), ("exec-command-exit-3", "echo broken >&2; exit 3", 3,
      "failed")],
)  # fmt: skip
def test_codex_exec_command(
    scenario: str, command: str, code: int, status: str, mock: MockLLM, repo: Path, home: Path, tmp_path: Path
) -> None:
    """A command's item has its exit code and status, and the login shell codex wrapped it in."""
    mock.tape = [ToolCall.shell(command), Text("Ran it.")]
    run = codex(mock, repo, home, "run something")
    record(run, scenario, tmp_path, mock.url)

    assert run.rc == 0
    cmd = run.of("item.completed")[0]["item"]
    assert cmd["type"] == "command_execution" and cmd["exit_code"] == code and cmd["status"] == status
    assert cmd["command"] == f"/bin/bash -lc '{command}'"
    assert "function_call_output" in [i.get("type") for i in mock.main_requests()[1].body["input"]]
    if code == 0:
        assert (repo / "ran.txt").read_text() == "ran\n"


@agents
def test_codex_resume(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [Text("first answer MARK-1"), Text("second answer")]
    first = codex(mock, repo, home, "first prompt")
    assert first.rc == 0
    thread = first.one("thread.started")["thread_id"]
    second = codex(mock, repo, home, "second prompt", resume=thread)
    record(second, "resume", tmp_path, mock.url)

    assert second.rc == 0
    assert second.one("thread.started")["thread_id"] == thread
    assert second.of("item.completed")[-1]["item"]["text"] == "second answer"
    history = mock.main_requests()[1].text
    assert "first prompt" in history and "first answer MARK-1" in history and "second prompt" in history


@agents
def test_codex_retry_is_silent(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """With request_max_retries=1 a 500 is retried without any event on stdout."""
    mock.tape = [openai_error(500), Text("recovered")]
    run = codex(mock, repo, home, "do it", retries=1)
    record(run, "retry-500", tmp_path, mock.url)

    assert run.rc == 0
    assert run.types == ["thread.started", "turn.started", "item.completed", "turn.completed"]
    assert mock.consumed == 2


CODEX_FAILURES: list[tuple[str, tuple[Step, ...], str]] = [
    ("429", (openai_error(429),), "exceeded retry limit, last status: 429 Too Many Requests"),
    ("usage-limit", (codex_usage_limit(),), "You’ve hit your usage limit. "),
    ("insufficient-quota", (codex_insufficient_quota(),), "Quota exceeded. Check your plan and billing details."),
    ("500", (openai_error(500),), "We’re currently experiencing high demand, which may cause temporary errors."),
    ("401", (openai_error(401),), "unexpected status 401 Unauthorized: Incorrect API key provided."),
    ("drop", (Drop(),), "stream disconnected before completion: error sending request"),
    ("refused", (), "Connection failed: error sending request"),
]


@agents
@pytest.mark.parametrize(("scenario", "tape", "text"), CODEX_FAILURES, ids=[c[0] for c in CODEX_FAILURES])
def test_codex_failures(
    scenario: str, tape: tuple[Step, ...], text: str, mock: MockLLM, repo: Path, home: Path, tmp_path: Path
) -> None:
    """Failures: exit 1, a top-level `error` then `turn.failed` with the same message. Note the curly
    apostrophes (’) in codex's texts. A refused connection only fails fast with
    features.unbounded_connection_retries=false (else "Reconnecting... waiting for network" forever)."""
    mock.tape = list(tape)
    url = free_port_url() if scenario == "refused" else mock.url
    run = codex(mock, repo, home, "do it", url=url)
    record(run, scenario, tmp_path, url)

    assert run.rc == 1
    assert run.types == ["thread.started", "turn.started", "error", "turn.failed"]
    message = run.one("turn.failed")["error"]["message"]
    assert message.startswith(text), message
    assert run.one("error")["message"] == message
    assert len(mock.main_requests()) == len(tape)
    assert run.seconds < 15


# ---------------------------------------------------------------------------------------------------------------
# gemini


def gemini(mock: MockLLM, repo: Path, home: Path, prompt: str, url: str | None = None) -> Run:
    gemini_home_setup(home)
    url = url or mock.url
    return run_cli("gemini", gemini_args(prompt), full_env(gemini_env(url, home)), repo)


@agents
def test_gemini_write_file(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [
        ToolCall.write("hello.txt", "hello world\n", input_tokens=1000, output_tokens=50),
        Text("Done.", input_tokens=200, output_tokens=10, cache_read=1000),
    ]
    run = gemini(mock, repo, home, "Create hello.txt please")
    record(run, "write-file", tmp_path, mock.url)

    assert run.rc == 0
    assert (repo / "hello.txt").read_text() == "hello world\n"
    assert run.types == ["init", "message", "tool_use", "tool_result", "message", "result"]
    use = run.one("tool_use")
    assert use["tool_name"] == "write_file" and use["parameters"] == {
        "file_path": "hello.txt",
        "content": "hello world\n",
    }
    assert run.one("tool_result")["status"] == "success"
    reply = run.of("message")[-1]
    assert reply["role"] == "assistant" and reply["content"] == "Done."
    res = run.result
    assert res["status"] == "success"
    stats = res["stats"]
    assert stats["input_tokens"] == 2200 and stats["output_tokens"] == 60 and stats["cached"] == 1000
    assert stats["tool_calls"] == 1 and set(stats["models"]) == {"gemini-2.5-flash"}
    first, second = mock.main_requests()
    assert ":streamGenerateContent" in first.path and "Create hello.txt please" in first.text
    assert first.headers["x-goog-api-key"].startswith("sk-test")
    assert "functionResponse" in second.text


@agents
def test_gemini_shell(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    mock.tape = [ToolCall.shell("echo ran > ran.txt"), Text("Ran it.")]
    run = gemini(mock, repo, home, "run something")
    record(run, "shell", tmp_path, mock.url)

    assert run.rc == 0
    assert (repo / "ran.txt").read_text() == "ran\n"
    assert run.one("tool_use")["tool_name"] == "run_shell_command"
    assert run.one("tool_result")["status"] == "success"


@agents
def test_gemini_shell_exit_code_is_not_in_the_stream(mock: MockLLM, repo: Path, home: Path, tmp_path: Path) -> None:
    """A command that exits 3: stream-json's tool_result says "success" with its output only, so
    clanker cannot know the code (the model is told it; the stream is not)."""
    mock.tape = [ToolCall.shell("echo broken >&2; exit 3"), Text("It failed.")]
    run = gemini(mock, repo, home, "run something")
    record(run, "shell-exit-3", tmp_path, mock.url)

    assert run.rc == 0
    result = run.one("tool_result")
    assert (
        result["status"] == "success"
        and result["output"] == "broken"
        and "3" not in json.dumps({k: v for k, v in result.items() if k not in ("timestamp", "tool_id")})
    )
    assert "Exit Code: 3" in mock.main_requests()[1].text


GEMINI_FAILURES: list[tuple[str, tuple[Step, ...], int, str]] = [
    ("429-per-day", (gemini_daily_quota(),), 173, "[API Error: You have exhausted your daily quota on this model.]"),
    ("429", (gemini_error(429),), 173, "[API Error: Resource has been exhausted (e.g. check quota).]"),
    ("500", (gemini_error(500),), 244, '[API Error: {"error":{"code":500,'),
    ("401", (gemini_error(401),), 145, '[API Error: {"error":{"code":401,'),
    ("drop", (Drop(),), 1, "[API Error: exception TypeError: fetch failed sending request]"),
    ("refused", (), 1, "[API Error: exception TypeError: fetch failed sending request]"),
]


@agents
@pytest.mark.parametrize(("scenario", "tape", "rc", "text"), GEMINI_FAILURES, ids=[c[0] for c in GEMINI_FAILURES])
def test_gemini_failures(
    scenario: str, tape: tuple[Step, ...], rc: int, text: str, mock: MockLLM, repo: Path, home: Path, tmp_path: Path
) -> None:
    """Failures: exit code = HTTP status mod 256 (1 without a status), stdout ends with
    `result{status:"error", error{type, message}}`. maxAttempts 1 keeps it at one request."""
    mock.tape = list(tape)
    url = free_port_url() if scenario == "refused" else mock.url
    run = gemini(mock, repo, home, "do it", url=url)
    record(run, scenario, tmp_path, url)

    assert run.rc == rc
    assert run.types == ["init", "message", "result"]
    res = run.result
    assert res["status"] == "error" and res["error"]["type"] == "unknown"
    assert res["error"]["message"].startswith(text), res["error"]["message"]
    assert len(mock.main_requests()) == len(tape)
    assert run.seconds < 20


# ---------------------------------------------------------------------------------------------------------------
# The mock itself and the recordings (no binaries needed)


def _post(url: str, body: dict[str, Any]) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _sse_data(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_mock_anthropic_tape_and_side_requests() -> None:
    tools = [{"name": "Write", "input_schema": {}}]
    with MockLLM([ToolCall.write("a.txt", "x"), anthropic_error(529), Text("bye", output_tokens=7)]) as m:
        status, body, _ = _post(f"{m.url}/v1/messages?beta=true", {"model": "m", "messages": [], "max_tokens": 5})
        assert status == 200 and json.loads(body)["content"][0]["text"] == "Mock title"  # side call, no tools
        status, body, _ = _post(f"{m.url}/v1/messages/count_tokens", {"messages": []})
        assert status == 200 and json.loads(body) == {"input_tokens": 1000}
        assert m.consumed == 0

        status, body, _ = _post(f"{m.url}/v1/messages", {"model": "m", "stream": True, "tools": tools, "messages": []})
        events = _sse_data(body)
        assert [e["type"] for e in events] == [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert events[1]["content_block"]["name"] == "Write"
        assert json.loads(events[2]["delta"]["partial_json"]) == {"file_path": "a.txt", "content": "x"}
        assert events[4]["delta"]["stop_reason"] == "tool_use"

        status, body, headers = _post(f"{m.url}/v1/messages", {"model": "m", "tools": tools, "messages": []})
        assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error" and "request-id" in headers

        status, body, _ = _post(f"{m.url}/v1/messages", {"model": "m", "tools": tools, "messages": []})
        msg = json.loads(body)
        assert msg["content"] == [{"type": "text", "text": "bye"}] and msg["stop_reason"] == "end_turn"
        assert msg["usage"]["output_tokens"] == 7
        status, body, _ = _post(f"{m.url}/v1/messages", {"model": "m", "tools": tools, "messages": []})
        assert json.loads(body)["content"][0]["text"] == "(mock tape exhausted)"
        assert m.consumed == 3 and m.remaining == 0
        assert [r.step for r in m.main_requests()] == [0, 1, 2, None]
        assert len(m.requests) == 6


def test_mock_openai_and_gemini() -> None:
    with MockLLM([ToolCall.write("f.txt", "a\nb"), codex_usage_limit(), ToolCall.shell("ls"), Text("ok")]) as m:
        tools = [{"type": "custom", "name": "apply_patch"}]
        status, body, _ = _post(f"{m.url}/v1/responses", {"model": "gpt", "tools": tools, "input": []})
        events = _sse_data(body)
        assert [e["type"] for e in events] == ["response.created", "response.output_item.done", "response.completed"]
        item = events[1]["item"]
        assert item["type"] == "custom_tool_call" and item["name"] == "apply_patch"
        assert item["input"] == "*** Begin Patch\n*** Add File: f.txt\n+a\n+b\n*** End Patch\n"
        assert events[2]["response"]["usage"]["input_tokens_details"] == {"cached_tokens": 0}
        status, body, _ = _post(f"{m.url}/v1/responses", {"model": "gpt", "tools": tools, "input": []})
        assert status == 429 and json.loads(body)["error"]["type"] == "usage_limit_reached"

        gtools: list[dict[str, Any]] = [{"functionDeclarations": []}]
        base = f"{m.url}/v1beta/models/gemini-2.5-flash"
        status, body, _ = _post(f"{base}:countTokens", {"contents": []})
        assert json.loads(body) == {"totalTokens": 1000}
        status, body, _ = _post(f"{base}:generateContent", {"contents": []})  # side call
        assert json.loads(body)["candidates"][0]["content"]["parts"] == [{"text": "Mock title"}]
        status, body, _ = _post(f"{base}:streamGenerateContent?alt=sse", {"contents": [], "tools": gtools})
        (chunk,) = _sse_data(body)
        assert chunk["candidates"][0]["content"]["parts"] == [
            {"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}}
        ]
        status, body, _ = _post(f"{base}:streamGenerateContent?alt=sse", {"contents": [], "tools": gtools})
        (chunk,) = _sse_data(body)
        assert chunk["candidates"][0]["content"]["parts"] == [{"text": "ok"}]
        assert chunk["usageMetadata"]["promptTokenCount"] == 100
        assert m.consumed == 4
        assert [r.protocol for r in m.requests] == ["openai", "openai", "gemini", "gemini", "gemini", "gemini"]


def test_mock_drop_and_refused() -> None:
    with MockLLM([Drop()]) as m:
        req = urllib.request.Request(f"{m.url}/v1/messages", json.dumps({"tools": [1]}).encode())
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(req, timeout=10)
        assert m.consumed == 1
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(free_port_url(), timeout=5)


def test_recorded_streams_are_valid() -> None:
    """Every recording is JSONL with a meta file; each agent's stream ends the way the agent ends its streams."""
    recordings = sorted(STREAMS.glob("*.jsonl"))
    if not recordings:
        pytest.skip("no recordings yet: run the agents tests with CLANKER_RECORD_STREAMS=1")
    for path in recordings:
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        assert isinstance(meta["exit_code"], int) and meta["agent"] in PACKAGES, path
        assert path.stat().st_size <= TRIM_BYTES + 5000, path
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        assert events, path
        last = events[-1]["type"]
        if meta["agent"] in ("claude", "gemini"):
            assert last == "result", path
        else:
            assert last in ("turn.completed", "turn.failed"), path
        assert (meta["exit_code"] == 0) == (last in ("result", "turn.completed") and _succeeded(events[-1])), path


def _succeeded(event: dict[str, Any]) -> bool:
    if event["type"] == "turn.completed":
        return True
    if "is_error" in event:
        return event["is_error"] is False
    return event.get("status") == "success"
