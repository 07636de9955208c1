"""The controller's TUI: the pure parts (layout, commands, clanker.yaml edit, colours, panels) with
case tables, then the real screen — `python -m clanker` in a pane of a private tmux server, keys
sent with send-keys, the screen read with capture-pane."""

from __future__ import annotations

import dataclasses
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from blessed import Terminal

from clanker.commands import fleet as actions
from clanker.commands import land as land_cmd
from clanker.commands import task as taskcmd
from clanker.config import BudgetConfig, load
from clanker.errors import UsageError
from clanker.fleet.panes import view
from clanker.fleet.rows import SlaveRow
from clanker.state import heartbeat
from clanker.state.events import Event
from clanker.state.fold import fold
from clanker.state.model import State
from clanker.state.paths import Paths
from clanker.state.store import Store
from clanker.system.tmux import Tmux
from clanker.tui import frame, header, layout
from clanker.tui import prompt as commands
from clanker.tui.styles import Styles
from clanker.tui.tail import Line
from clanker.tui.view import mode, queue, slave_lines

from .helpers import clanker, event, events, git, make_repo, retry_until, status
from .test_e2e import person_session

# --- layout ----------------------------------------------------------------------------------------

SLAVES = (
    layout.SlaveLine("c1", "work", "T1", "Add a greeting script", "4m", "tok 1.2k $0.41", "1s"),
    layout.SlaveLine("c2", "judge", "T2", "Write the usage docs", "1m", "tok 800 $0.20", "0s"),
    layout.SlaveLine("c3", "idle", beat="2s", marker="PAUSED"),
)
TAIL = tuple(Line("INFO", "gray", f"INFO | t+{i}s | tok - | c1 | - | event number {i}") for i in range(60))
SCREEN = layout.Screen(
    repo="/home/me/project",
    mode="run",
    activity="1 working · 1 judging",
    slaves=SLAVES,
    queue=layout.Queue((("claimed", 1), ("judging", 1), ("done", 4)), 1, 2, 3, "execute", 3, 1, "tok 9k $1.20"),
    tail=TAIL,
    status="2 working · 3/3 slaves up · 4/6 done · ? help",
)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40), (200, 60), (60, 20), (40, 12), (20, 6), (1, 1)])
def test_every_size_fills_the_screen_exactly(width: int, height: int) -> None:
    for screen in (SCREEN, dataclasses.replace(SCREEN, overlay=layout.Overlay("help", ("x" * 300,) * 50))):
        rows = layout.render(screen, width, height)
        assert len(rows) == height
        assert {layout.row_width(r) for r in rows} == {width}


def test_the_header_names_the_executors_with_their_slots() -> None:
    screen = dataclasses.replace(SCREEN, executors="here 1/1 · hostA 2/2 · hostB down")
    text = layout.plain(layout.render(screen, 120, 30))
    assert any("3 slaves · cap 3 · here 1/1 · hostA 2/2 · hostB down" in row for row in text[:4])
    plain = layout.plain(layout.render(SCREEN, 120, 30))
    assert any(row.rstrip().endswith("cap 3") for row in plain[:4])  # none configured: nothing added


def test_80x24_shows_header_panels_tail_and_the_bottom_line() -> None:
    text = layout.plain(layout.render(SCREEN, 80, 24))
    assert text[0].startswith(header.BANNER[0]) and "RUN" in text[0] and "1 working · 1 judging" in text[0]
    assert "/home/me/project" in text[1]
    assert text[4].startswith("── slaves") and text[4].rstrip().endswith("2/3 busy ──")
    assert text[5].startswith("▸ c1  work     T1") and "4m   tok 1.2k $0.41   ♥ 1s" in text[5]
    assert "PAUSED" in text[7]
    assert text[8].startswith("── queue") and "claimed:1  judging:1  done:4" in text[9]
    assert "backlog 1 to judge · busy 2/3 · execute: work ≤3 judge ≤1 · tok 9k $1.20" in text[10]
    assert text[11].startswith("── tail") and "60 lines" in text[11]
    assert text[12:23] == [f"{TAIL[i].text:<80}" for i in range(49, 60)], "the newest tail lines that fit"
    assert text[23].startswith("2 working · 3/3 slaves up")


def test_small_screens_get_a_one_row_header_and_keep_the_selection_visible() -> None:
    many = tuple(layout.SlaveLine(f"c{i}", "idle") for i in range(1, 13))
    text = layout.plain(layout.render(dataclasses.replace(SCREEN, slaves=many, selected=11), 60, 16))
    assert text[0].startswith("CLANKER ▞ RUN")
    assert any(line.startswith("▸ c12") for line in text)
    assert any("more (↑/↓)" in line for line in text)
    assert sum(1 for line in text if line.startswith("INFO |")) >= 3, "the tail keeps some rows"


def test_the_prompt_and_overlays() -> None:
    prompt = dataclasses.replace(SCREEN, prompt="task ad", hint="/task add TITLE")
    assert layout.plain(layout.render(prompt, 80, 24))[-1].startswith("/task ad█   /task add TITLE")
    box = dataclasses.replace(SCREEN, overlay=layout.Overlay("clanker — help", tuple(f"line {i}" for i in range(40))))
    text = layout.plain(layout.render(box, 80, 24))
    assert any("┌─ clanker — help ─" in line for line in text)
    assert any("│ line 0 " in line for line in text) and not any("line 39" in line for line in text)
    assert any("1-20/40 Esc closes ┘" in line for line in text)
    log = dataclasses.replace(SCREEN, overlay=layout.Overlay("log", tuple(f"line {i}" for i in range(40)), follow=True))
    assert any("line 39" in line for line in layout.plain(layout.render(log, 80, 24))), "a log shows its end"
    assert layout.plain(layout.render(box, 80, 24))[-1].startswith("2 working"), "the bottom line stays"


def test_tail_rows_colour_the_tag_and_the_judge_cost() -> None:
    line = Line("DONE", "magenta", "DONE | t+5m | tok 5.0k $0.40 judge $0.07 | c1 | T3 | landed", "judge $0.07")
    row = layout.tail_row(line, 100)
    assert row[0] == ("DONE", "magenta_bold")
    assert ("judge $0.07", "acid") in row
    risk = layout.tail_row(Line("RISK", "yellow", "RISK | t+1m | tok - | c1 | - | stall"), 100)
    assert risk[1][1] == "yellow", "risks and blockers are highlighted in full"


# --- header -----------------------------------------------------------------------------------------


def test_run_label_pulses_only_while_work_runs() -> None:
    frames = [header.run_label("run", f) for f in range(header.PULSE_FRAMES)]
    assert all("".join(t for t, _ in f) == "RUN" for f in frames)
    per_char = [{f[i][1] for f in frames} for i in range(3)]
    assert all(len(styles) >= 3 for styles in per_char), "each character goes through several brightness levels"
    assert frames[0] != frames[3], "the characters are out of phase: a wave"
    assert {str(header.run_label("idle", f)) for f in range(20)} == {str([("IDLE", "dim")])}
    assert {str(header.run_label("paused", f)) for f in range(20)} == {str([("PAUSED", "yellow")])}


def test_banner_uses_three_or_four_colours() -> None:
    styles = {style for row in header.banner() for _, style in row}
    assert styles <= set(header.PALETTE) and 2 <= len(styles) <= 4
    assert 3 <= len(header.PALETTE) <= 4


@pytest.mark.parametrize("kind", ["screen", "xterm", "xterm-256color"])
def test_every_style_has_a_sequence_readable_in_8_colours(kind: str) -> None:
    term = Terminal(kind=kind, force_styling=True)
    styles = Styles(term)
    used = {style for row in layout.render(SCREEN, 100, 30) for _, style in row}
    used |= {f"pulse{n}" for n in range(header.PULSE_LEVELS)} | {"red", "acid", "hot_bold"}
    used |= {f"{c}_bold" for c in ("gray", "yellow", "red", "cyan", "green", "blue", "magenta")}
    assert used - {""} <= set(styles.seq)
    if term.number_of_colors < 256:
        assert not any("38;5" in seq for seq in styles.seq.values()), "only the 8 basic colours"
        tags = [styles.seq[f"{c}_bold"] for c in ("yellow", "red", "cyan", "green", "blue", "magenta")]
        assert len(set(tags)) == 6, "every tag has its own colour"
    levels = {styles.seq[f"pulse{n}"] for n in range(header.PULSE_LEVELS)}
    assert len(levels) >= 3, "the pulse has at least three brightness steps"


# --- commands ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "args", "fields"),
    [
        ("/slaves 5", "slaves", ("5",), {}),
        ("slaves 05", "slaves", ("5",), {}),
        ("/pause", "pause", (), {}),
        ("/pause c2", "pause", ("c2",), {}),
        ("/resume 3", "resume", ("c3",), {}),
        ("/retry T4", "retry", ("T4",), {}),
        ("/cancel T4", "cancel", ("T4",), {}),
        ("/land", "land", (), {}),
        ("/land T1 T2", "land", ("T1", "T2"), {}),
        ("/plan", "plan", (), {}),
        ("/plan T3", "plan", ("T3",), {}),
        ("/attach c1", "attach", ("c1",), {}),
        ("/doctor", "doctor", (), {}),
        ("/QUIT", "quit", (), {}),
        (
            "/task add Fix the 'login' form --path src/web --priority 2 --depends-on T1",
            "task",
            ("add",),
            {"title": "Fix the login form", "paths": ["src/web"], "priority": 2, "depends_on": ["T1"]},
        ),
        (
            '/task add "Say $(hi)" --prompt "fake: write a.txt x" --id X1',
            "task",
            ("add",),
            {"title": "Say $(hi)", "paths": [], "depends_on": [], "prompt": "fake: write a.txt x", "id": "X1"},
        ),
    ],
)
def test_parse(line: str, name: str, args: tuple[str, ...], fields: dict[str, object]) -> None:
    cmd = commands.parse(line)
    assert (cmd.name, cmd.args) == (name, args)
    if fields:
        assert cmd.fields == fields


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "type a command"),
        ("/frobnicate", "unknown command /frobnicate — /help lists them"),
        ("/pasue", "unknown command /pasue — did you mean /pause?"),
        ("/slaves", "usage: /slaves N"),
        ("/slaves 0", "N from 1 to 64"),
        ("/slaves 65", "N from 1 to 64"),
        ("/slaves many", "usage: /slaves N"),
        ("/pause c1 c2", "usage: /pause [cN]"),
        ("/pause x", "'x' is not a slave"),
        ("/attach", "usage: /attach cN"),
        ("/retry", "usage: /retry T"),
        ("/plan T1 T2", "usage: /plan [T]"),
        ("/task", "usage: /task add TITLE"),
        ("/task add", "a task needs a title"),
        ("/task add x --colour red", "unknown option --colour"),
        ("/task add x --priority high", "--priority must be a whole number"),
        ("/task add x --path", "--path needs a value"),
        ("/task add 'unbalanced", "can't read that line"),
    ],
)
def test_bad_commands_are_one_line(line: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        commands.parse(line)
    assert message in str(err.value) and "\n" not in str(err.value)


IDS = commands.Ids(slaves=("c1", "c2", "c10"), retryable=("T3",), cancellable=("T1", "T2", "T3"), landable=("T2",))


@pytest.mark.parametrize(
    ("line", "completed", "options"),
    [
        ("", "", tuple(commands.USAGE)),
        ("s", "slaves ", ("slaves",)),
        ("p", "p", ("pause", "plan")),
        ("pl", "plan ", ("plan",)),
        ("ta", "task ", ("task",)),
        ("task a", "task add ", ("add",)),
        ("task add x --pa", "task add x --path ", ("--path",)),
        ("pause c", "pause c", ("c1", "c2", "c10")),
        ("pause c1", "pause c1", ("c1", "c10")),
        ("attach c2", "attach c2 ", ("c2",)),
        ("retry ", "retry T3 ", ("T3",)),
        ("cancel T", "cancel T", ("T1", "T2", "T3")),
        ("land T2 ", "land T2 ", ()),
        ("xyz", "xyz", ()),
        ("slaves 3", "slaves 3", ()),
    ],
)
def test_completion_of_commands_and_ids(line: str, completed: str, options: tuple[str, ...]) -> None:
    done = commands.complete(line, IDS)
    assert (done.line, done.options) == (completed, options)


def test_hint_shows_the_usage_being_typed() -> None:
    assert commands.hint("slaves 4") == "/slaves N"
    assert commands.hint("p") == "/pause  /plan"
    assert commands.hint("zz") == "unknown command"


# --- /slaves edits one line of clanker.yaml --------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("slaves: 3\n", "slaves: 5\n"),
        (
            "# my fleet\nslaves: 3   # how many at once\nagent:\n  kind: fake  # cheap\n",
            "# my fleet\nslaves: 5   # how many at once\nagent:\n  kind: fake  # cheap\n",
        ),
        ("agent:\n  kind: fake\n", "agent:\n  kind: fake\nslaves: 5\n"),
        ("agent:\n  kind: fake", "agent:\n  kind: fake\nslaves: 5\n"),
        ("", "slaves: 5\n"),
        ("# only a comment\n", "# only a comment\nslaves: 5\n"),
        ("gate: []\nslaves:    2\nheartbeat_secs: 1\n", "gate: []\nslaves: 5\nheartbeat_secs: 1\n"),
    ],
)
def test_with_slaves_changes_only_that_line(before: str, after: str) -> None:
    assert actions.with_slaves(before, 5) == after


@pytest.mark.parametrize("text", ["{slaves: 3, gate: []}\n", "slaves:\n  - 1\n", "- a\n", "a: [\n"])
def test_with_slaves_refuses_what_it_cannot_edit_safely(text: str) -> None:
    with pytest.raises(UsageError):
        actions.with_slaves(text, 5)


def test_land_lands_submitted_tasks_and_says_so_in_one_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "slaves: 1\ngate:\n  - test -e done.txt\n", {"README.md": "# r\n"})
    git(repo, "checkout", "-q", "-b", "clanker/T1")
    (repo / "done.txt").write_text("done\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "work")
    git(repo, "checkout", "-q", "main")
    cfg = load(repo, repo / "clanker.yaml")
    store = Store(Paths(repo), "test")
    assert land_cmd.land_now(cfg, store, []).message == "nothing to land: no task is waiting for a judge"
    taskcmd.add(store, {"id": "T1", "title": "Make done.txt"})
    store.append(event("task.claimed", "c1", "T1", {"slave": "c1"}))
    store.append(event("task.submitted", "c1", "T1", {"slave": "c1", "summary": "added done.txt"}))
    answer = land_cmd.land_now(cfg, store, []).message
    assert answer.startswith("landed 1, skipped 0, conflicts 0, failed 0") and "\n" not in answer
    assert store.state().tasks["T1"].state == "done"
    assert "Clanker-Task: T1" in git(repo, "log", "-1", "--format=%B", "main")


# --- panels from state -------------------------------------------------------------------------------------


def built(*evs: Event) -> State:
    return fold(State(), [(e, n) for n, e in enumerate(evs, 1)])


def e(type_: str, task: str | None, ts: float = 1000.0, **data: object) -> Event:
    return event(type_, "x", task, dict(data), ts=ts)


STATE = built(
    e("task.added", "T1", title="Working"),
    e("task.claimed", "T1", 1000.0, slave="c1"),
    e("attempt.finished", "T1", role="work", usage={"input": 1500, "cost_usd": 0.4}),
    e("task.added", "T2", title="Judged"),
    e("task.claimed", "T2", slave="c2"),
    e("task.submitted", "T2", slave="c2"),
    e("task.judge_claimed", "T2", 1200.0, slave="c3"),
    e("task.added", "T3", title="Waiting"),
    e("task.added", "T4", title="Reworked"),
    e("task.claimed", "T4", slave="c4"),
    e("task.submitted", "T4", slave="c4"),
    e("task.judge_claimed", "T4", slave="c1"),
    e("task.verdict", "T4", slave="c1", verdict="rework", reasons="more"),
    e("task.claimed", "T4", 1100.0, slave="c4"),
    e("fleet.paused", None, slave="c5"),
)


def row(sid: str, state: str, task: str | None = None, age: float | None = 1.0, job: str = "") -> SlaveRow:
    return SlaveRow(sid, state, task, age, f"%{sid[1:]}", "agent" if task else "idle", job)


def test_slave_lines_carry_job_task_spend_and_markers() -> None:
    rows = [
        row("c1", "working", "T1", job="work"),
        row("c2", "idle"),
        row("c3", "judging", "T2", age=9.0, job="judge"),  # heartbeat older than 3 × 0.5 s: stalled
        row("c4", "working", "T4", job="work"),
        row("c5", "paused"),
        row("c6", "dead", age=3600.0),
        row("c7", "absent", age=None),
    ]
    lines = {sl.id: sl for sl in slave_lines(STATE, rows, 1300.0, 0.5, stall_secs=60, quiet={"T4": 120.0})}
    c1 = lines["c1"]
    assert (c1.job, c1.task, c1.title, c1.elapsed, c1.spend, c1.beat, c1.marker) == (
        "work",
        "T1",
        "Working",
        "5m",
        "tok 1.5k $0.40",
        "1s",
        "",
    )
    assert (lines["c2"].job, lines["c2"].task, lines["c2"].marker) == ("idle", "", "")
    assert (lines["c3"].job, lines["c3"].marker) == ("judge", "STALLED")
    assert (lines["c4"].job, lines["c4"].marker) == ("rework", "STALLED"), "no agent output for 120 s > 60 s"
    assert lines["c5"].marker == "PAUSED" and lines["c6"].marker == "DEAD" and lines["c7"].marker == "ABSENT"
    assert lines["c7"].beat == "-"


def test_queue_counts_backlog_and_concurrency() -> None:
    q = queue(STATE, slaves=4, judge_cap=1)
    assert q.counts == (("claimed", 2), ("judging", 1), ("ready", 1))
    assert (q.backlog, q.busy, q.cap, q.judge_target) == (1, 3, 4, 1)
    assert q.phase in ("explore", "execute", "integrate") and 1 <= q.work_target <= 4
    assert q.spend == "tok 1.5k $0.40"
    # With budgets, the queue panel says where each stands (spend recorded per minute by the fold).
    assert list(STATE.spent) == [16]  # the runs of STATE, a quarter of an hour after the epoch
    limited = queue(STATE, slaves=4, judge_cap=1, limits=BudgetConfig(daily_usd=0.3, total_usd=10.0), now=990.0)
    assert limited.spend == "tok 1.5k $0.40 · today $0.40/$0.30 SPENT · total $0.40/$10.00 · $1.60/h"


def test_mode_runs_pauses_and_idles() -> None:
    assert mode(STATE, [row("c1", "working", "T1")]) == "run"
    assert mode(STATE, [row("c1", "idle")]) == "idle"
    everyone = built(e("fleet.paused", None, slave="*"))
    assert mode(everyone, [row("c1", "paused")]) == "paused"


# --- the real screen, in tmux ---------------------------------------------------------------------------

GATE_SH = 'if [ -e GATE_FAIL ]; then echo "GATE_FAIL marker present"; exit 1; fi\necho gate ok\n'
CONFIG = (
    "# the test fleet\nslaves: 2   # two at once\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - sh gate.sh\n"
)


def fleet(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", CONFIG, {"README.md": "# test\n", "gate.sh": GATE_SH})
    clanker(repo, "task", "add", "Write the docs", "--prompt", "fake: sleep 0.5\nfake: write docs/a.md hello",
            "--path", "docs", check=True)  # fmt: skip
    clanker(repo, "task", "add", "Break the gate once", "--prompt", "fake: fail-gate-once\nfake: write lib/b.txt b",
            "--path", "lib", check=True)  # fmt: skip
    return repo


def start(tm: Tmux, socket_name: str, repo: Path, term: str = "") -> str:
    """A person's shell pane on the test server, where they type `clanker` (so its last words stay)."""
    pane = person_session(tm, socket_name, "work", repo, "sh")
    prefix = f"env TERM={term} " if term else ""
    tm.send_keys(pane, f"{prefix}{sys.executable} -m clanker --repo {repo}", "Enter")
    return pane


def screen_with(tm: Tmux, pane: str, *texts: str, seconds: float = 60) -> str:
    def ready() -> str:
        shown = tm.capture(pane)
        return shown if all(t in shown for t in texts) else ""

    try:
        return retry_until(ready, seconds)
    except AssertionError:
        raise AssertionError(f"never showed {texts}; the screen:\n{tm.capture(pane)}") from None


def screen_without(tm: Tmux, pane: str, text: str, seconds: float = 10) -> str:
    def gone() -> str:
        shown = tm.capture(pane)
        return shown if text not in shown else ""

    return retry_until(gone, seconds)


def screen_when(tm: Tmux, pane: str, ok: Callable[[list[str]], bool], seconds: float = 20) -> list[str]:
    def ready() -> list[str]:
        shown = lines_of(tm.capture(pane))
        return shown if ok(shown) else []

    return retry_until(ready, seconds)


def type_text(tm: Tmux, pane: str, text: str) -> None:
    tm.run("send-keys", "-t", pane, "-l", text)


def lines_of(shown: str) -> list[str]:
    return shown.split("\n")


@pytest.mark.e2e
def test_screen_of_a_real_run_resize_idle_and_quit(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet(tmp_path)
    pane = start(tm, socket_name, repo, term="screen")  # 8 colours
    shown = screen_with(tm, pane, "done:2", "landed", "IDLE", seconds=90)
    text = lines_of(shown)
    # Header: the figlet banner and the (still) label; the panels; the tail; the bottom line.
    assert text[0].startswith(header.BANNER[0].rstrip()) and text[3].startswith(header.BANNER[3].rstrip())
    assert "IDLE" in text[0] and str(repo) in text[1]
    assert text[4].startswith("── slaves") and re.match(r"▸ c1 +\w+", text[5]) and text[6].startswith("  c2")
    assert any(line.startswith("── queue") for line in text) and any("backlog 0 to judge" in ln for ln in text)
    tail = [line for line in text if re.match(r"(INFO|RISK|BLOK|TODO|FIX |TEST|DONE) \| t\+", line)]
    tags = {line[:4] for line in tail}
    assert {"TODO", "INFO", "TEST", "RISK", "DONE"} <= tags, tail
    assert any("gate FAILED (work): `sh gate.sh`: GATE_FAIL marker present | gate.sh" in ln for ln in tail), shown
    assert any(
        re.search(r"DONE \| t\+\d+s \| tok [\d.k]+ \$[\d.]+ .*\| T1 \| landed \w{8}: Write the docs", ln) for ln in tail
    )
    assert all(len(line) <= 140 for line in tail)
    assert text[-1].startswith("idle · 2/2 slaves up · 2/2 done")
    # 8 colours only, and the seed's colour per tag.
    coloured = tm.capture(pane, escapes=True)
    assert "38;5;" not in coloured
    assert re.search(r"\x1b\[35m(\x1b\[[0-9;]*m)*DONE|\x1b\[1m\x1b\[35mDONE", coloured), "DONE is magenta"
    assert re.search(r"\x1b\[3[3]m(\x1b\[[0-9;]*m)*RISK|\x1b\[33m(\x1b\[1m)?RISK", coloured), "RISK is yellow"

    # Resize to 80×24: redrawn to fit, everything still there.
    tm.run("resize-window", "-t", pane, "-x", "80", "-y", "24")
    small = screen_when(tm, pane, lambda rows: len(rows) == 24 and "done:2" in rows[8])
    assert len(small) == 24 and all(len(line) <= 80 for line in small)
    assert small[0].startswith(header.BANNER[0].rstrip()) and small[-1].startswith("idle ·")
    assert any(line.startswith("── queue") and len(line) == 80 for line in small)

    # Idle: nothing new happens; the screen does not grow, only the bottom line changes in place.
    def still() -> list[str]:
        """The screen, plus its bottom line a moment later, if nothing but that line changed."""
        first = lines_of(tm.capture(pane))
        later = screen_when(tm, pane, lambda rows: rows[-1] != first[-1], 10)
        return [*first, later[-1]] if first[:4] + first[7:-1] == later[:4] + later[7:-1] else []

    *first, bottom = retry_until(still, 30)
    assert len(first) == 24 and bottom.startswith("idle ·") and "last event" in bottom
    assert tm.display(pane, "#{history_size}") == "0", "nothing scrolled: it is redrawn in place"
    assert sum(line.startswith("idle ·") for line in lines_of(tm.capture(pane))) == 1

    # Quit: the screen goes, one line says the slaves keep running, and they do.
    tm.send_keys(pane, "q")
    shown = screen_with(tm, pane, "controller stopped; slaves c1, c2 keep running", seconds=20)
    assert "`clanker stop` stops them" in shown
    panes = view(tm, repo).panes
    assert {"c1", "c2"} <= set(panes) and not panes["c1"].dead and not panes["c2"].dead
    assert all(not b.stopped for sid, b in heartbeat.read_all(Paths(repo)).items() if sid != "ctl")
    clanker(repo, "stop", check=True)


@pytest.mark.e2e
def test_keys_prompt_overlays_and_commands(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet(tmp_path)
    pane = start(tm, socket_name, repo)
    screen_with(tm, pane, "done:2", "IDLE", seconds=90)

    # ? help overlay; Esc closes it (a bare Escape: wait for it to land before the next key).
    tm.send_keys(pane, "?")
    screen_with(tm, pane, "clanker — help", "/slaves N", "Esc closes")
    tm.send_keys(pane, "Escape")
    screen_without(tm, pane, "clanker — help")

    # / opens the prompt; Tab completes the command; Enter runs it; the tail shows the new task.
    tm.send_keys(pane, "/", "t", "a", "Tab")
    assert lines_of(screen_with(tm, pane, "/task █"))[-1].startswith("/task █")
    tm.send_keys(pane, "Tab")
    screen_with(tm, pane, "/task add █")
    type_text(tm, pane, "Shown in the tail --path shown --prompt 'fake: write shown/a.txt s'")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "added T3: Shown in the tail", "| T3 | new: Shown in the tail | shown")
    assert any(t["id"] == "T3" and t["title"] == "Shown in the tail" for t in status(repo)["tasks"])

    # A bad command is an inline message; the screen carries on.
    tm.send_keys(pane, "/")
    type_text(tm, pane, "frobnicate now")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "unknown command /frobnicate")
    for line, answer in [
        ("plan", "nothing to plan from: list your plan documents in clanker.yaml"),
        ("retry T1", "task T1 is done: only blocked or cancelled tasks can be retried"),
        ("cancel T99", "no task 'T99'"),
        ("slaves 0", "N from 1 to 64"),
    ]:
        tm.send_keys(pane, "/")
        type_text(tm, pane, line)
        tm.send_keys(pane, "Enter")
        screen_with(tm, pane, answer)

    # Completion of ids: the slaves.
    tm.send_keys(pane, "/")
    type_text(tm, pane, "pause c")
    tm.send_keys(pane, "Tab")
    assert re.search(r"/pause c█ +c1  c2", screen_with(tm, pane, "c1  c2"))
    tm.send_keys(pane, "Escape")
    screen_without(tm, pane, "/pause c█")

    # p pauses the selected slave (an event), p again resumes it.
    tm.send_keys(pane, "p")
    screen_with(tm, pane, "paused c1", "PAUSED")
    tm.send_keys(pane, "p")
    screen_with(tm, pane, "resumed c1")
    tm.send_keys(pane, "P")  # the whole fleet: the label says so
    screen_with(tm, pane, "paused the fleet", "PAUSED  nothing running")
    tm.send_keys(pane, "P")
    screen_with(tm, pane, "resumed the fleet", "IDLE")
    kinds = [(ev["type"], ev.get("slave")) for ev in events(repo) if ev["type"].startswith("fleet.")]
    assert kinds == [("fleet.paused", "c1"), ("fleet.resumed", "c1"), ("fleet.paused", "*"), ("fleet.resumed", "*")]

    # Enter: the selected slave's details; l: its task's log.
    author = next(t["slave"] for t in status(repo)["tasks"] if t["id"] == "T2")
    while not re.search(rf"▸ {author} ", tm.capture(pane)):
        tm.send_keys(pane, "Down")
        screen_with(tm, pane, "▸ c")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, f"slave {author}", "branch    clanker/T", "Esc closes")
    tm.send_keys(pane, "Escape")
    screen_without(tm, pane, f"slave {author}")
    tm.send_keys(pane, "l")
    log = screen_with(tm, pane, f"{author} · T", "log (↑/↓ scroll)")
    assert "gate" in log or "fake agent" in log
    tm.send_keys(pane, "Escape")
    screen_without(tm, pane, "log (↑/↓ scroll)")

    # /doctor in an overlay.
    tm.send_keys(pane, "/")
    type_text(tm, pane, "doctor")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "clanker doctor", "tmux", "git", seconds=60)
    tm.send_keys(pane, "Escape")
    screen_without(tm, pane, "clanker doctor")

    # /slaves 3: clanker.yaml changes on that one line (comments kept) and a third slave starts.
    tm.send_keys(pane, "/")
    type_text(tm, pane, "slaves 3")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "slaves 2 → 3 (saved in")
    assert (repo / "clanker.yaml").read_text() == CONFIG.replace("slaves: 2   #", "slaves: 3   #")
    retry_until(lambda: "c3" in view(tm, repo).panes and heartbeat.read(Paths(repo), "c3"), 30)
    screen_with(tm, pane, "  c3 ")

    # /quit leaves the slaves running.
    tm.send_keys(pane, "/")
    type_text(tm, pane, "quit")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "controller stopped; slaves c1, c2, c3 keep running", seconds=20)
    clanker(repo, "stop", check=True)


@pytest.mark.e2e
def test_attach_switches_the_persons_client_to_the_slave(tmp_path: Path, tm: Tmux, socket_name: str) -> None:
    repo = fleet(tmp_path)
    pane = start(tm, socket_name, repo)
    screen_with(tm, pane, "done:2", seconds=90)
    # A person's terminal attached to the session: a tmux client running in another, outer server.
    outer = f"{socket_name}-outer"
    subprocess.run(
        ["tmux", "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50",
         f"env -u TMUX tmux -L {socket_name} attach -t work"],
        check=True,
    )  # fmt: skip
    try:
        retry_until(lambda: tm.run("list-clients", "-F", "#{client_name}"), 20)
        c1 = view(tm, repo).panes["c1"].id
        tm.send_keys(pane, "a")  # c1 is selected
        retry_until(lambda: tm.run("list-clients", "-F", "#{pane_id}") == [c1], 20)
        screen_with(tm, pane, "switched to c1")
        tm.send_keys(pane, "/")
        type_text(tm, pane, "attach c2")
        tm.send_keys(pane, "Enter")
        c2 = view(tm, repo).panes["c2"].id
        retry_until(lambda: tm.run("list-clients", "-F", "#{pane_id}") == [c2], 20)
    finally:
        subprocess.run(["tmux", "-L", outer, "kill-server"], capture_output=True, check=False)
    tm.send_keys(pane, "/")
    type_text(tm, pane, "attach c2")
    tm.send_keys(pane, "Enter")
    screen_with(tm, pane, "can't switch to c2")  # nobody is attached any more: one line, no crash
    tm.send_keys(pane, "C-c")
    screen_with(tm, pane, "controller stopped; slaves c1, c2 keep running")
    clanker(repo, "stop", check=True)


# --- frames: the tail scrolls itself -----------------------------------------------------------------


def _shown(prev: list[str], rows: list[str]) -> tuple[list[str], int]:
    """What a terminal shows after the frame (scroll, then the changed rows), and rows written."""
    plan = frame.scroll_plan(prev, rows)
    screen = frame.scrolled(prev, plan, "") if plan else list(prev)
    written = 0
    for y, text in enumerate(rows):
        if screen[y] != text:
            screen[y] = text
            written += 1
    return screen, written


@pytest.mark.parametrize("new", [1, 2, 5])
def test_a_new_tail_line_scrolls_the_tail_and_writes_only_what_is_new(new: int) -> None:
    head = ["banner", "── slaves", "c1 working T3", "── tail 30 lines"]
    tail = [f"INFO | line {i}" for i in range(30)]
    prev = [*head, *tail[:20], "idle · bottom"]
    rows = [*head[:3], f"── tail {30 + new} lines", *tail[new : 20 + new], "idle · bottom"]
    plan = frame.scroll_plan(prev, rows)
    assert plan == frame.Scroll(top=4, bottom=23, by=new)
    screen, written = _shown(prev, rows)
    assert screen == rows
    assert written == new + 1  # the new lines and the tail's rule, not the 20 moved rows


def test_frames_that_do_not_scroll_are_plain_row_updates() -> None:
    prev = [f"row {i}" for i in range(10)]
    rows = [*prev[:3], "changed", *prev[4:]]
    assert frame.scroll_plan(prev, rows) is None
    assert frame.scroll_plan(prev, prev) is None
    assert frame.scroll_plan([], rows) is None
    assert _shown(prev, rows) == (rows, 1)


def test_any_frame_after_any_frame_shows_exactly_the_new_frame() -> None:
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(1, 30)
        pool = [f"r{rng.randint(0, 12)}" for _ in range(n + 10)]
        prev = pool[:n]
        k = rng.randint(0, 9)
        rows = [*prev[k:], *pool[n : n + k]][:n] if rng.random() < 0.7 else [rng.choice(pool) for _ in range(n)]
        rows += [""] * (n - len(rows))
        assert _shown(prev, rows)[0] == rows


def _paint(screen: list[frame.Cell], row: layout.Row, width: int) -> tuple[list[frame.Cell], int]:
    """A terminal row after the frame writes what `changed` says; and how many cells it wrote."""
    new = frame.cells_of(row)
    span = frame.changed(screen, new)
    if span is None:
        return screen, 0
    x0, x1 = span
    out = list(screen) + [(" ", "")] * (width - len(screen))
    out[x0:x1] = frame.cells_of(layout.cut(row, x0, x1))
    return out[:width], x1 - x0


def test_a_changed_row_writes_only_from_its_first_to_its_last_changed_cell() -> None:
    old = layout.clip([("  c1  work  T3 ", ""), ("♥ 0s", "dim")], 40)
    new = layout.clip([("  c1  work  T3 ", ""), ("♥ 9s", "dim")], 40)
    shown, wrote = _paint(frame.cells_of(old), new, 40)
    assert shown == frame.cells_of(new) and wrote == 1
    assert frame.changed(frame.cells_of(new), frame.cells_of(new)) is None
    restyled = layout.clip([("  c1  work  T3 ", ""), ("♥ 9s", "acid")], 40)
    assert frame.changed(frame.cells_of(new), frame.cells_of(restyled)) == (15, 19)  # a style is a change


def test_wide_characters_are_never_cut_in_half() -> None:
    old = layout.clip([("ab界cd", "")], 12)
    new = layout.clip([("ab界ce", "")], 12)
    assert frame.changed(frame.cells_of(old), frame.cells_of(new)) == (5, 6)
    new2 = layout.clip([("ab界xd", "")], 12)  # only the character after the wide one changed
    assert frame.changed(frame.cells_of(old), frame.cells_of(new2)) == (4, 5)
    new3 = layout.clip([("ab世cd", "")], 12)  # the wide one itself: both of its cells
    assert frame.changed(frame.cells_of(old), frame.cells_of(new3)) == (2, 4)


def test_any_row_painted_over_any_row_shows_exactly_the_new_row() -> None:
    rng = random.Random(5)
    alphabet = ["a", "b", "界", " ", "♥", "世"]
    for _ in range(500):
        width = rng.randint(4, 20)

        def make(width: int = width) -> layout.Row:
            segs = [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))), rng.choice(["", "dim"]))
                    for _ in range(rng.randint(1, 3))]  # fmt: skip
            return layout.clip(segs, width)

        old, new = make(), make()
        shown, _ = _paint(frame.cells_of(old), new, width)
        assert shown == frame.cells_of(new), (old, new)
