"""Agents: sanitising output, verdicts, prompts, and real agent processes through AgentRun."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clanker.agents import adapter_for
from clanker.agents.base import Adapter, AgentRequest, Outcome, parse_verdict, sanitize
from clanker.agents.base import Ran as Command
from clanker.agents.command import CommandAdapter
from clanker.agents.fake import FakeAdapter
from clanker.agents.fakebin import PRICE_IN, PRICE_OUT
from clanker.agents.runner import AgentRun, RunResult, json_line
from clanker.config import AgentConfig
from clanker.jobs.prompts import judge_prompt, worker_prompt
from clanker.state.heartbeat import pid_alive
from clanker.state.model import Task
from clanker.state.usage import Usage
from clanker.system.clock import SYSTEM, Clock
from tests.fakeclock import FakeClock
from tests.helpers import git, make_repo, retry_until

# --- sanitize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b]2;evil title\x07hello", "hello"),  # OSC title, BEL-terminated
        ("\x1b]0;title\x1b\\after", "after"),  # OSC, ST-terminated
        ("\x1b]8;;http://x\x07link\x1b]8;;\x07", "link"),  # OSC 8 hyperlink
        ("\x1b[31mred\x1b[0m plain", "red plain"),  # SGR colours
        ("\x1b[2J\x1b[H\x1b[?1049h\x1b[1;1Hscreen", "screen"),  # clear, home, alt screen, move
        ("\x1b[?25l\x1b[K", ""),
        ("bell\x07 back\x08space\x00nul\x7fdel", "bell backspacenuldel"),
        ("carriage\rreturn\x0c\x0b", "carriagereturn"),
        ("\x1bcreset", "reset"),  # a lone ESC + char (RIS)
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        ("unicode ✓ 日本語 🚀 — é", "unicode ✓ 日本語 🚀 — é"),
        ("", ""),
    ],
)
def test_sanitize(raw: str, clean: str) -> None:
    out = sanitize(raw)
    assert out == clean
    assert "\x1b" not in out and "\x07" not in out


# --- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("All good.\nVERDICT: done", ("done", "")),
        ("VERDICT: rework the tests fail on empty input", ("rework", "the tests fail on empty input")),
        ("VERDICT: rework: missing tests", ("rework", "missing tests")),
        ("VERDICT: blocked — needs a product decision", ("blocked", "needs a product decision")),
        ("  verdict: Blocked - no access  ", ("blocked", "no access")),
        ("VERDICT: rework first pass\nthinking again…\nVERDICT: done looks fine now", ("done", "looks fine now")),
        ("VERDICT: done\nVERDICT: rework after all: x", ("rework", "after all: x")),
        ("VERDICT: done\n\nSome closing words.", ("done", "")),  # reasons stay on their line
        ("VERDICT: blocked\nVERDICT: done", ("done", "")),
        ("VERDICT:\ndone", None),
        ("no verdict at all", None),
        ("", None),
        ("VERDICT: maybe", None),
        ("VERDICT: doneish", None),
        ("I would say VERDICT: done", None),  # only a line that starts with it counts
    ],
)
def test_parse_verdict(text: str, verdict: tuple[str, str] | None) -> None:
    assert parse_verdict(text) == verdict


# --- prompts ---------------------------------------------------------------------------------------


def test_worker_prompt() -> None:
    t = Task("T7", "Add a flag", prompt="Implement --flag {{task.id}}", description="why: users asked",
             branch="clanker/T7")  # fmt: skip
    p = worker_prompt(t)
    assert p.splitlines()[0] == "CLANKER-ROLE: worker"
    assert "task T7: Add a flag" in p and "branch clanker/T7" in p
    assert "Implement --flag {{task.id}}" in p  # a prompt's text is not a template
    assert "why: users asked" in p and "{{" not in p.replace("{{task.id}}", "")
    assert "Earlier attempts failed" not in p and "judge asked" not in p and "Merge conflicts" not in p


def test_worker_prompt_with_history_and_conflicts() -> None:
    t = Task("T7", "x", prompt="p", errors=("gate failed: 1 test", "timed out"), judge_rounds=1,
             reason="handle empty input")  # fmt: skip
    p = worker_prompt(t, conflicts=["src/a.py", "README.md"])
    assert p.startswith("CLANKER-ROLE: worker\n")
    assert "- attempt 1: gate failed: 1 test" in p and "- attempt 2: timed out" in p
    assert "The judge asked for rework\nhandle empty input" in p
    assert "src/a.py, README.md" in p


def test_judge_prompt() -> None:
    t = Task("T3", "Fix bug", prompt="fix it", summary="changed a.py")
    p = judge_prompt(t, "diff --git a/a.py b/a.py\n+x", "$ make test\nok\n")
    assert p.splitlines()[0] == "CLANKER-ROLE: judge"
    assert "task T3: Fix bug" in p and "changed a.py" in p and "+x" in p and "$ make test\nok" in p
    assert "VERDICT: done" in p
    empty = judge_prompt(Task("T4", "t"), "", "  ")
    assert "(empty)" in empty and "(no output)" in empty and "(none)" in empty


# --- adapters --------------------------------------------------------------------------------------


def test_adapter_for() -> None:
    assert isinstance(adapter_for(AgentConfig(kind="fake")), FakeAdapter)
    assert isinstance(adapter_for(AgentConfig(kind="command", command=("x",))), CommandAdapter)
    assert adapter_for(AgentConfig(kind="claude")).name == "claude"
    assert {adapter_for(AgentConfig(kind=k)).name for k in ("codex", "gemini", "aider")} == {"codex", "gemini", "aider"}


def test_json_line() -> None:
    assert json_line('{"a": 1}') == {"a": 1}
    assert json_line("[1]") is None and json_line("not json") is None and json_line("") is None


# --- running real agent processes ----------------------------------------------------------------


@dataclass
class Env:
    repo: Path
    wt: Path
    tmp: Path


@pytest.fixture
def env(tmp_path: Path) -> Env:
    repo = make_repo(tmp_path / "repo")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "main")
    return Env(repo, wt.resolve(), tmp_path)


@dataclass
class Ran:
    res: RunResult
    progress: list[str]
    run: AgentRun
    log: Path


def make_run(
    env: Env,
    prompt: str,
    cfg: AgentConfig | None = None,
    role: str = "worker",
    resume: str | None = None,
    clock: Clock = SYSTEM,
) -> tuple[AgentRun, list[str], Path]:
    cfg = cfg or AgentConfig()
    pf = env.tmp / "prompts" / f"T1-{role}-1.md"
    pf.parent.mkdir(parents=True, exist_ok=True)
    pf.write_text(prompt, encoding="utf-8")
    req = AgentRequest(role, prompt, "T1", "c1", env.wt, 1, pf, cfg, resume)
    adapter: Adapter = adapter_for(cfg)
    log = env.tmp / "logs" / "T1" / ("1.jsonl" if role == "worker" else f"{role}-1.jsonl")
    progress: list[str] = []
    return AgentRun(adapter, req, log, progress.append, clock=clock), progress, log


def run_agent(env: Env, prompt: str, cfg: AgentConfig | None = None, role: str = "worker",
              resume: str | None = None, clock: Clock = SYSTEM) -> Ran:  # fmt: skip
    run, progress, log = make_run(env, prompt, cfg, role, resume, clock)
    return Ran(run.run(), progress, run, log)


def fake_prompt(*directives: str) -> str:
    return worker_prompt(Task("T1", "a task", prompt="\n".join(f"fake: {d}" for d in directives)))


def test_the_fake_agent_s_commands_are_reported_with_their_exit_codes(env: Env) -> None:
    ran = run_agent(env, fake_prompt("run echo hi > said.txt", "run test -e nowhere", "run exit 7"))
    assert ran.res.outcome == Outcome.OK
    assert (env.wt / "said.txt").read_text() == "hi\n"
    assert ran.res.result.commands == [
        Command("echo hi > said.txt", 0), Command("test -e nowhere", 1), Command("exit 7", 7),
    ]  # fmt: skip
    assert "$ test -e nowhere" in ran.log.with_suffix(".txt").read_text()


def test_fake_agent_writes_files_and_reports_usage(env: Env) -> None:
    prompt = fake_prompt("write src/a.py hello world", "append notes.txt first", "append notes.txt second",
                         "say working on it", "tokens 1234 56")  # fmt: skip
    assert prompt.startswith("CLANKER-ROLE: worker\n")
    ran = run_agent(env, prompt)
    res = ran.res
    assert res.outcome == Outcome.OK and res.exit_code == 0
    assert not (res.timed_out or res.stalled or res.cancelled) and not res.result.is_error
    assert (env.wt / "src" / "a.py").read_text() == "hello world\n"
    assert (env.wt / "notes.txt").read_text() == "first\nsecond\n"
    assert res.result.files == ["src/a.py", "notes.txt", "notes.txt"]
    cost = round(1234 * PRICE_IN + 56 * PRICE_OUT, 6)
    assert res.result.usage == Usage(1234, 56, 0, 0, 1, cost)
    assert res.result.session_id is not None and res.result.session_id.startswith("fake-T1-worker-1-")
    assert res.result.text == "changed src/a.py, notes.txt"
    # Progress is readable, and both logs were written.
    assert any(line.startswith("▶ fake agent started") for line in ran.progress)
    assert "✎ write src/a.py" in ran.progress and "· working on it" in ran.progress
    raw = [json_line(line) for line in ran.log.read_text().splitlines()]
    assert [r["type"] for r in raw if r] == ["start", "tool", "tool", "tool", "say", "result"]
    txt = ran.log.with_suffix(".txt").read_text()
    assert txt.startswith("# worker T1 attempt 1 by c1\n") and "✎ write src/a.py" in txt
    # The main checkout is untouched: the agent worked in its worktree only.
    assert not (env.repo / "src").exists()


def test_fake_agent_resumes_a_session(env: Env) -> None:
    ran = run_agent(env, fake_prompt("say again"), resume="sess-42")
    assert ran.res.outcome == Outcome.OK and ran.res.result.session_id == "sess-42"


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("transient", Outcome.TRANSIENT),
        ("out_of_budget", Outcome.OUT_OF_BUDGET),
        ("auth", Outcome.AUTH),
        ("permanent", Outcome.PERMANENT),
        ("gibberish", Outcome.PERMANENT),
    ],
)
def test_fake_agent_error_kinds(env: Env, kind: str, outcome: Outcome) -> None:
    ran = run_agent(env, fake_prompt("write a.txt before", f"error {kind} something went wrong", "write b.txt x"))
    res = ran.res
    assert res.outcome == outcome
    assert res.result.is_error and res.result.error == "something went wrong"
    assert res.result.error_kind == kind and res.exit_code == 1
    assert (env.wt / "a.txt").exists() and not (env.wt / "b.txt").exists()  # it stopped at the error


def test_fake_agent_exit_code_is_permanent(env: Env) -> None:
    ran = run_agent(env, fake_prompt("exit 3 boom went the agent"))
    assert ran.res.exit_code == 3 and ran.res.outcome == Outcome.PERMANENT
    assert ran.res.result.is_error and ran.res.result.error == "boom went the agent"


def test_fake_agent_title_escapes_never_reach_the_log(env: Env) -> None:
    ran = run_agent(env, fake_prompt("title EVIL TITLE"))
    assert ran.res.outcome == Outcome.OK
    assert any("retitled" in line for line in ran.progress)
    shown = "\n".join(ran.progress) + ran.log.with_suffix(".txt").read_text()
    assert "\x1b" not in shown and "\x07" not in shown


def test_fake_judge_verdicts(env: Env) -> None:
    task = Task("T1", "t", prompt="fake-judge: rework add tests please")
    ran = run_agent(env, judge_prompt(task, "diff", "ok"), role="judge")
    assert ran.res.outcome == Outcome.OK
    assert parse_verdict(ran.res.result.text) == ("rework", "add tests please")
    assert ran.log.name == "judge-1.jsonl"
    ran = run_agent(env, judge_prompt(Task("T1", "t", prompt="fine"), "diff", "ok"), role="judge")
    verdict = parse_verdict(ran.res.result.text)
    assert verdict is not None and verdict[0] == "done"


def test_timeout_stops_the_agent(env: Env) -> None:
    # On a fake clock: the half hour passes as soon as the agent has been quiet for a moment.
    clock = FakeClock()
    ran = run_agent(env, fake_prompt("sleep 3000"), AgentConfig(timeout_secs=1800, stall_secs=0), clock=clock)
    res = ran.res
    assert res.timed_out and not res.stalled and not res.cancelled
    # A run past its time limit is a failed attempt (retried with that note), not a transient error.
    assert res.outcome == Outcome.PERMANENT and res.result.is_error
    assert res.result.error == "agent timed out after 1800s (agent.timeout_secs)"
    assert res.seconds == pytest.approx(1800, abs=1)  # the run's length is read from its clock
    assert ran.run.proc is not None and ran.run.proc.poll() is not None
    assert any("timed out after 1800s" in line for line in ran.progress)


def test_stall_stops_a_silent_agent(env: Env) -> None:
    clock = FakeClock()
    ran = run_agent(env, fake_prompt("hang"), AgentConfig(stall_secs=600), clock=clock)
    res = ran.res
    assert res.stalled and not res.timed_out
    assert res.outcome == Outcome.TRANSIENT and res.result.error == "agent stalled: no output for 600s"
    # 600 s after its last line (it printed its first ones a few fake ticks after the start).
    assert 600 <= res.seconds < 660
    assert ran.run.proc is not None and ran.run.proc.poll() is not None


def test_cancel_from_another_thread(env: Env) -> None:
    run, progress, _ = make_run(env, fake_prompt("say started", "sleep 30"))
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(run.run()))
    thread.start()
    retry_until(lambda: "· started" in progress, seconds=15)
    run.cancel()
    thread.join(10)
    assert not thread.is_alive()
    (res,) = results
    assert res.cancelled and res.outcome == Outcome.TRANSIENT and not res.timed_out
    assert res.seconds < 8
    assert run.proc is not None and run.proc.poll() is not None


def test_timeout_kills_the_whole_process_group(env: Env) -> None:
    script = 'sleep 60 & echo $! > child.pid; echo "started"; wait'
    cfg = AgentConfig(kind="command", command=("sh", "-c", script), timeout_secs=1)
    ran = run_agent(env, "prompt", cfg)
    assert ran.res.timed_out and ran.res.seconds < 6
    child = int((env.wt / "child.pid").read_text())
    retry_until(lambda: not pid_alive(child), seconds=5)  # the agent's child died with it


# --- the command adapter -------------------------------------------------------------------------

RECORDER = """
cat > "$CLANKER_WORKTREE/stdin.txt"
cp "$CLANKER_PROMPT_FILE" prompt-file.txt
pwd -P > cwd.txt
for v in CLANKER_ROLE CLANKER_TASK_ID CLANKER_SLAVE CLANKER_WORKTREE CLANKER_ATTEMPT EXTRA; do
  printf '%s=%s\\n' "$v" "$(printenv "$v")"
done > env.txt
printf 'TMUX=%s\\n' "${TMUX-unset}" >> env.txt
echo "one line of progress"
echo "to stderr" >&2
echo "last line"
"""


def test_command_adapter_gets_the_prompt_env_and_cwd(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    prompt = "CLANKER-ROLE: worker\nDo: $(echo nope) `nope` \"q\" 'q' ✓\n\nlast line without newline"
    cfg = AgentConfig(kind="command", command=("sh", "-c", RECORDER), env={"EXTRA": "from config"})
    ran = run_agent(env, prompt, cfg)
    assert ran.res.outcome == Outcome.OK and ran.res.exit_code == 0
    assert (env.wt / "stdin.txt").read_text(encoding="utf-8") == prompt
    assert (env.wt / "prompt-file.txt").read_text(encoding="utf-8") == prompt
    assert (env.wt / "cwd.txt").read_text().strip() == str(env.wt)
    got = dict(line.split("=", 1) for line in (env.wt / "env.txt").read_text().splitlines())
    assert got == {
        "CLANKER_ROLE": "worker",
        "CLANKER_TASK_ID": "T1",
        "CLANKER_SLAVE": "c1",
        "CLANKER_WORKTREE": str(env.wt),
        "CLANKER_ATTEMPT": "1",
        "EXTRA": "from config",
        "TMUX": "unset",  # the agent never sees the slave's tmux
    }
    assert "one line of progress" in ran.progress and "to stderr" in ran.progress
    assert "last line" in ran.res.result.text


def test_command_adapter_passes_args(env: Env) -> None:
    cfg = AgentConfig(kind="command", command=("sh", "-c", 'echo "$@" > args.txt', "sh"), args=("--a", "b c"))
    assert run_agent(env, "p", cfg).res.outcome == Outcome.OK
    assert (env.wt / "args.txt").read_text() == "--a b c\n"


def test_command_adapter_non_zero_exit_is_permanent(env: Env) -> None:
    cfg = AgentConfig(kind="command", command=("sh", "-c", "echo 'it broke'; exit 7"))
    res = run_agent(env, "p", cfg).res
    assert res.exit_code == 7 and res.outcome == Outcome.PERMANENT
    assert res.result.is_error and res.result.error.startswith("exited with code 7") and "it broke" in res.result.error


def test_command_that_cannot_start(env: Env) -> None:
    cfg = AgentConfig(kind="command", command=(str(env.tmp / "no-such-agent"),))
    ran = run_agent(env, "p", cfg)
    assert ran.res.outcome == Outcome.PERMANENT and ran.res.exit_code is None
    assert ran.res.result.error.startswith("can't start") and ran.run.proc is None


def test_a_run_whose_reported_usage_would_overspend_is_stopped_at_that_event(env: Env) -> None:
    seen: list[Usage] = []

    def over(used: Usage) -> bool:
        seen.append(used)
        return used.cost_usd > 0.5

    run, _progress, _log = make_run(
        env, fake_prompt("spend 1000 100", "spend 100000 20000", "sleep 30", "write x.txt 1")
    )
    run.on_usage = over
    t0 = time.monotonic()
    res = run.run()
    assert time.monotonic() - t0 < 10, "stopped at the event that crossed the limit, not after the sleep"
    assert res.cancelled and run.stopped_for_spend
    crossing = round(101000 * PRICE_IN + 20100 * PRICE_OUT, 6)
    assert [round(u.cost_usd, 6) for u in seen] == [round(1000 * PRICE_IN + 100 * PRICE_OUT, 6), crossing]
    # Stopped before its final report: what it used still counts.
    assert (res.result.usage.input, res.result.usage.output) == (101000, 20100)
    assert not (env.wt / "x.txt").exists()


def test_a_run_that_stays_within_budget_is_told_and_left_alone(env: Env) -> None:
    seen: list[Usage] = []
    run, _progress, _log = make_run(env, fake_prompt("spend 10 1", "spend 10 1", "tokens 5 5"))

    def told(used: Usage) -> bool:
        seen.append(used)
        return False

    run.on_usage = told
    res = run.run()
    assert res.outcome == Outcome.OK and not run.stopped_for_spend
    assert [u.tokens for u in seen] == [11, 22, 10]  # the final report replaces the running sum


def test_a_runs_peak_memory_is_sampled_while_it_runs(env: Env) -> None:
    ran = run_agent(env, fake_prompt("sleep 2.5", "write y.txt 1"))
    assert ran.res.outcome == Outcome.OK
    assert 5 < ran.res.peak_rss_mb < 500  # the fake agent is one small Python process
