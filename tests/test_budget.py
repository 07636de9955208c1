"""Budgets: the settings, spend folded from the log minute by minute, the standing against each
budget (periods, day start, roles apart), what is said once, and what the scheduler holds."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from clanker.config import BudgetConfig, load
from clanker.errors import ConfigError
from clanker.fleet.scheduler import choose_job
from clanker.state import budget
from clanker.state import events as ev
from clanker.state.fold import fold
from clanker.state.model import SPENT_MINUTES, State, TaskState
from clanker.state.snapshot import state_from_json, state_to_json
from clanker.state.usage import Usage
from clanker.system.tmux import Tmux
from tests.helpers import make_repo

DAY = 86400.0


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def at(day: int, hh: int, mm: int = 0) -> float:
    """A time on day `day` of December 2026, UTC."""
    return 1796083200.0 + (day - 1) * DAY + hh * 3600 + mm * 60  # 2026-12-01 00:00 UTC


def run(task: str | None, ts: float, usd: float, tokens: int = 1000, role: str = "work") -> ev.Event:
    usage = Usage(input=tokens, cost_usd=usd)
    if task is None:
        return ev.PlanRan(actor="c1", role="planner", usage=usage, ts=ts)
    return ev.AttemptFinished(actor="c1", task=task, role=role, slave="c1", usage=usage, ts=ts)


def folded(*evs: ev.Event, tasks: tuple[str, ...] = ("T1",), claimed: bool = True) -> State:
    setup: list[ev.Event] = [ev.TaskAdded(actor="cli", task=t, title=t, ts=at(1, 0)) for t in tasks]
    if claimed:
        setup += [ev.TaskClaimed(actor="c1", task=t, slave="c1", ts=at(1, 0)) for t in tasks]
    return fold(State(), [(e, n) for n, e in enumerate([*setup, *evs], 1)])


def test_budget_settings_are_read_and_bad_ones_are_one_line_errors(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "budget:\n  daily_usd: 20\n  task_tokens: 500000\n  day_starts: '07:30'\n")
    b = load(repo).budget
    assert (b.daily_usd, b.task_tokens, b.day_starts, b.on_exceed, b.total_usd) == (
        20.0,
        500000,
        "07:30",
        "finish",
        None,
    )
    assert b.any and not BudgetConfig().any
    for text, problem in [
        ("budget:\n  day_starts: '25:00'\n", "budget.day_starts: must be a time of day like 00:00 or 07:30"),
        ("budget:\n  on_exceed: maybe\n", "budget.on_exceed: must be one of finish, stop"),
        ("budget:\n  daily_usd: 0\n", "budget.daily_usd: must be > 0"),
        ("budget:\n  task_tokens: 1.5\n", "budget.task_tokens: must be a whole number"),
    ]:
        (repo / "clanker.yaml").write_text(text)
        with pytest.raises(ConfigError) as info:
            load(repo)
        assert problem in str(info.value) and "clanker.yaml:" in str(info.value)


@pytest.mark.parametrize(
    ("now", "starts", "began"),
    [
        (at(2, 10), "00:00", at(2, 0)),
        (at(2, 10), "07:30", at(2, 7, 30)),
        (at(2, 6), "07:30", at(1, 7, 30)),  # before today's start: still yesterday's budget day
        (at(2, 7, 30), "07:30", at(2, 7, 30)),
    ],
)
def test_the_budget_day_begins_at_day_starts_local_time(now: float, starts: str, began: float) -> None:
    assert budget.day_start(now, starts) == began


def test_spend_is_folded_minute_by_minute_and_old_minutes_go() -> None:
    st = folded(run("T1", at(1, 9), 0.5), run("T1", at(1, 9) + 30, 0.25), run(None, at(1, 10), 1.0))
    assert st.spent == {int(at(1, 9) // 60): (0.75, 2000), int(at(1, 10) // 60): (1.0, 1000)}
    later = fold(st, [(run("T1", at(3, 9), 0.1), 99)])  # two days on: the old minutes are dropped
    assert list(later.spent) == [int(at(3, 9) // 60)]
    assert all(m > int(at(3, 9) // 60) - SPENT_MINUTES for m in later.spent)
    assert fold(st, [(run("T1", at(1, 11), 0.0, tokens=0), 99)]).spent == st.spent  # nothing spent


def test_the_standing_counts_today_for_daily_budgets_and_everything_for_the_total() -> None:
    st = folded(
        run("T1", at(1, 23), 4.0),  # yesterday
        run("T1", at(2, 9), 1.0),
        run("T1", at(2, 9, 50), 2.0, role="judge"),
        run(None, at(2, 9, 55), 0.5),  # the planner counts too
    )
    b = BudgetConfig(daily_usd=5.0, total_usd=10.0, daily_tokens=2500)
    s = budget.standing(st, b, at(2, 10))
    assert [(ln.budget, ln.period, ln.used, ln.limit) for ln in s.lines] == [
        ("daily_usd", "2026-12-02", 3.5, 5.0),
        ("daily_tokens", "2026-12-02", 3000, 2500),
        ("total_usd", "total", 7.5, 10.0),
    ]
    assert [ln.budget for ln in s.exceeded] == ["daily_tokens"]
    assert s.held is not None and "daily_tokens 3,000 of 2,500 tokens" in s.held
    assert (s.work.cost_usd, s.judge.cost_usd, s.planner.cost_usd) == (5.0, 2.0, 0.5)
    assert s.burn_usd_per_hour == 10.0  # $2.50 in the last 15 minutes
    assert budget.standing(st, BudgetConfig(daily_usd=5.0, day_starts="09:30"), at(2, 10)).lines[0].used == 2.5


@pytest.mark.parametrize(
    ("spends", "now", "limits", "pace"),
    [
        # $4 today, $1 of it in the last 15 min ($4/h); at noon 12 h are left: $48 at this burn for
        # the $6 left, so the budget lasts an eighth of the day left
        ([(at(2, 8), 3.0), (at(2, 11, 50), 1.0)], at(2, 12), BudgetConfig(daily_usd=10.0), 0.125),
        # the same burn at 22:30: 1.5 h left, $6 at $4/h lasts exactly that
        ([(at(2, 8), 3.0), (at(2, 22, 20), 1.0)], at(2, 22, 30), BudgetConfig(daily_usd=10.0), 1.0),
        # a slow burn: it lasts longer than the day, no throttle (the scheduler caps at 1 anyway)
        ([(at(2, 11, 50), 0.05)], at(2, 12), BudgetConfig(daily_usd=10.0), 9.95 / 2.4),  # $0.20/h × 12 h
        # nothing burning in the last 15 min: no pace at all
        ([(at(2, 8), 3.0)], at(2, 12), BudgetConfig(daily_usd=10.0), None),
        # no daily budget: no pace (a total budget has no day to last)
        ([(at(2, 11, 50), 1.0)], at(2, 12), BudgetConfig(total_usd=10.0), None),
        # the day starts at 18:00: at noon 6 h are left; $9 left at $4/h lasts 2.25 h of them
        ([(at(2, 11, 50), 1.0)], at(2, 12), BudgetConfig(daily_usd=10.0, day_starts="18:00"), 0.375),
        # spent already: nothing lasts
        ([(at(2, 11, 50), 12.0)], at(2, 12), BudgetConfig(daily_usd=10.0), 0.0),
        # tokens too: 1,000 at 4,000/h for 12 h, 2,000 of 10,000 left → 8,000 / 48,000
        ([(at(2, 8), 0.0), (at(2, 11, 50), 0.0)], at(2, 12), BudgetConfig(daily_tokens=10_000), round(8 / 48, 3)),
    ],
)
def test_the_pace_says_how_long_the_daily_budget_lasts_at_the_current_burn(
    spends: list[tuple[float, float]], now: float, limits: BudgetConfig, pace: float | None
) -> None:
    st = folded(*(run("T1", ts, usd) for ts, usd in spends))
    got = budget.pace(budget.standing(st, limits, now), limits, now)
    assert got == (pace if pace is None else pytest.approx(pace, abs=0.001))


def test_each_budget_is_said_at_80_percent_and_when_spent_once_per_period() -> None:
    b = BudgetConfig(daily_usd=10.0)
    st = folded(run("T1", at(1, 9), 8.5))
    said = budget.events(st, b, at(1, 10), "c1")
    assert [(type(e), e.payload()["budget"], e.payload()["period"]) for e in said] == [
        (ev.BudgetWarned, "daily_usd", "2026-12-01")
    ]
    st = fold(st, [(e, 90) for e in said])
    assert budget.events(st, b, at(1, 10), "c1") == []
    st = fold(st, [(run("T1", at(1, 11), 2.0), 91)])
    spent = budget.events(st, b, at(1, 11), "c1")
    assert [type(e) for e in spent] == [ev.BudgetExceeded]
    st = fold(st, [(e, 92) for e in spent])
    assert budget.events(st, b, at(1, 12), "c1") == []
    assert budget.standing(st, b, at(2, 1)).held is None  # a new day, a new budget
    # restart-safe: what was spent and said survives the snapshot
    back = state_from_json(state_to_json(st))
    assert (back.spent, back.budget_said) == (st.spent, st.budget_said)


def test_a_task_over_its_own_budget_is_blocked_for_the_planner() -> None:
    st = folded(run("T1", at(1, 9), 2.5), run("T2", at(1, 9), 0.5), tasks=("T1", "T2"))
    st = fold(
        st, [(ev.TaskReleased(actor="c1", task=t, slave="c1", reason="x"), 50 + n) for n, t in enumerate(["T1", "T2"])]
    )
    assert {t.state for t in st.tasks.values()} == {TaskState.READY}
    b = BudgetConfig(task_usd=2.0)
    assert budget.task_over(st.tasks["T2"], b) is None
    why = budget.task_over(st.tasks["T1"], b)
    assert why is not None and "$2.50 of $2.00" in why
    out = budget.blocked_tasks(st, b, "c1", planner=True)
    assert [(type(e), e.task_id) for e in out] == [(ev.TaskBlocked, "T1"), (ev.PlanRequested, None)]
    assert budget.blocked_tasks(st, BudgetConfig(daily_usd=1.0), "c1") == []


def test_a_spent_budget_holds_every_job_that_starts_an_agent_and_nothing_else() -> None:
    st = folded(tasks=("T1", "T2"), claimed=False)
    alive = frozenset({"c1", "c2"})
    assert choose_job(st, "c1", slaves=2, alive=alive) is not None
    assert choose_job(st, "c1", slaves=2, alive=alive, held=True) is None
    health = choose_job(st, "c1", slaves=2, alive=alive, held=True, health_every_secs=60, now=at(1, 1))
    assert health is not None and health.kind == "health"
    # T1 is submitted by c2: a judge agent is held, a gate-only judgement is not
    evs = [
        ev.TaskClaimed(actor="c2", task="T1", slave="c2", ts=at(1, 1)),
        ev.TaskSubmitted(actor="c2", task="T1", slave="c2", ts=at(1, 1)),
    ]
    st = fold(st, [(e, 100 + n) for n, e in enumerate(evs)])
    assert choose_job(st, "c1", slaves=2, alive=alive, held=True) is None
    gate_only = choose_job(st, "c1", slaves=2, alive=alive, held=True, judge_agent=False)
    assert gate_only is not None and (gate_only.kind, gate_only.task) == ("judge", "T1")
    # c2's own rework starts an agent too: held
    evs = [
        ev.JudgeClaimed(actor="c1", task="T1", slave="c1", ts=at(1, 2)),
        ev.Verdict(actor="c1", task="T1", slave="c1", verdict="rework", reasons="again", ts=at(1, 2)),
    ]
    st = fold(st, [(e, 200 + n) for n, e in enumerate(evs)])
    rework = choose_job(st, "c2", slaves=2, alive=alive)
    assert rework is not None and (rework.kind, rework.task) == ("work", "T1")
    assert choose_job(st, "c2", slaves=2, alive=alive, held=True) is None


FLEET = "heartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - 'true'\ngate_preflight: false\n"


def fleet(tmp_path: Path, settings: str, *tasks: tuple[str, str]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A repo with `settings` (slaves, budget…) over a fake-agent fleet, `tasks` (title, prompt)
    added, and `run --until-done` on it."""
    from tests.helpers import clanker

    repo = make_repo(tmp_path / "r", FLEET + settings)
    for title, prompt in tasks:
        clanker(repo, "task", "add", title, "--prompt", prompt, check=True)
    return repo, clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)


@pytest.mark.e2e
def test_a_spent_daily_budget_stops_dispatch_with_a_blok_line_and_its_exit_code(tmp_path: Path, tm: Tmux) -> None:
    from tests.helpers import clanker, events

    # $0.60 of work each (100 k tokens in, 20 k out)
    work = [(f"T{n}", f"fake: tokens 100000 20000\nfake: write t{n}.txt {n}") for n in range(1, 5)]
    repo, proc = fleet(tmp_path, "slaves: 2\nbudget:\n  daily_usd: 1.0\n", *work)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "stopped: budget: daily_usd $" in proc.stdout and "burn (last 15 min)" in proc.stdout
    log = events(repo)
    spent = [n for n, e in enumerate(log) if e["type"] == "budget.exceeded"]
    assert len(spent) == 1 and log[spent[0]]["budget"] == "daily_usd"
    claims = [n for n, e in enumerate(log) if e["type"] in ("task.claimed", "task.judge_claimed", "plan.claimed")]
    assert claims and max(claims) < spent[0], "nothing that starts an agent is claimed once the budget is spent"
    done = sum(1 for e in log if e["type"] == "task.mainlined")
    assert done < 4
    shown = clanker(repo, "budget")
    assert shown.returncode == 0 and "SPENT: budget: daily_usd" in shown.stdout


@pytest.mark.e2e
def test_on_exceed_stop_stops_a_running_agent_and_keeps_its_work(tmp_path: Path, tm: Tmux) -> None:
    from tests.helpers import events, git

    # Long starts (and writes) while Costly runs; Costly's spend, recorded when it ends, stops Long.
    costly = "fake: sleep 2\nfake: tokens 100000 20000\nfake: write t1.txt 1"
    started = time.monotonic()
    settings = "slaves: 2\nhung_secs: 8\nbudget:\n  daily_usd: 0.5\n  on_exceed: stop\n"
    repo, proc = fleet(tmp_path, settings, ("Costly", costly), ("Long", "fake: write t2.txt 2\nfake: sleep 40"))
    took = time.monotonic() - started
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert took < 30, f"the long agent was not stopped: {took:.0f}s"
    log = events(repo)
    long_id = next(e["task"] for e in log if e["type"] == "task.added" and e["title"] == "Long")
    released = [e for e in log if e["type"] == "task.released" and e["task"] == long_id]
    assert released and "budget: daily_usd" in released[-1]["reason"]
    stopped = [e for e in log if e["type"] == "attempt.finished" and e["task"] == long_id]
    assert stopped and stopped[-1]["seconds"] < 20, "stopped mid-run, not refused at launch"
    refs = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/clanker/").split()
    branch = next(r for r in refs if r.removeprefix("clanker/").split("-")[0] == long_id)
    assert git(repo, "show", f"{branch}:t2.txt").strip() == "2", "what the stopped agent wrote is kept on its branch"


@pytest.mark.e2e
def test_a_run_crossing_its_tasks_budget_is_stopped_mid_run_and_the_task_blocked(tmp_path: Path, tm: Tmux) -> None:
    from tests.helpers import events

    prompt = "fake: spend 100000 20000\nfake: sleep 40\nfake: write x.txt 1"  # $0.60 in its first turn
    repo, proc = fleet(tmp_path, "slaves: 1\nplanner:\n  agent: none\nbudget:\n  task_usd: 0.5\n", ("Big", prompt))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # blocked
    log = events(repo)
    runs = [e for e in log if e["type"] == "attempt.finished"]
    assert len(runs) == 1 and runs[0]["seconds"] < 20 and runs[0]["usage"]["input"] >= 100000
    blocked = [e for e in log if e["type"] == "task.blocked"]
    assert blocked and "task budget spent: $0.60 of $0.50" in blocked[-1]["reason"]


def test_the_merge_queue_figures_come_from_the_landed_tasks() -> None:
    from clanker.fleet.rows import flow

    def landed(t: str, accepted: float, at_: float, sha: str, gate: float) -> list[ev.Event]:
        return [
            ev.TaskAdded(actor="cli", task=t, title=t, ts=0.0),
            ev.TaskClaimed(actor="c1", task=t, slave="c1", ts=1.0),
            ev.TaskSubmitted(actor="c1", task=t, slave="c1", ts=2.0),
            ev.JudgeClaimed(actor="c2", task=t, slave="c2", ts=3.0),
            ev.Verdict(actor="c2", task=t, slave="c2", verdict="done", ts=accepted),
            ev.LandingClaimed(actor="c2", task=t, slave="c2", ts=accepted + 1),
            ev.GateRan(actor="c2", task=t, slave="c2", role="mainline", passed=True, seconds=gate, ts=at_ - 1),
            ev.Mainlined(actor="c2", task=t, slave="c2", sha=sha, ts=at_),
        ]

    now = 10_000.0
    evs = [
        *landed("T1", 100.0, 160.0, "a" * 40, 4.0),  # long ago, alone
        *landed("T2", now - 300, now - 200, "b" * 40, 0.0),  # T2 and T3 landed together as one commit
        *landed("T3", now - 280, now - 200, "b" * 40, 6.0),
    ]
    st = fold(State(), [(e, n) for n, e in enumerate(evs, 1)])
    f = flow(st, now)
    assert (f.landed, f.landings, f.last_hour) == (3, 2, 1)
    assert f.queue_secs == 80.0 and f.batch_fill == 1.5 and f.gate_secs == 5.0
    assert (
        f.line() == "1 landing in the last hour · 1m in queue (median, accepted → landed) · "
        "1.5 tasks per landing · gate 5.0s per landing"
    )
