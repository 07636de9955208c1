"""Logs recorded from real runs (the demo, end-to-end scenarios) replay to the very state they gave
when they were recorded: the fold and the event format stay compatible with every log on disk."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from clanker.errors import IllegalTransition
from clanker.state import log as events
from clanker.state.codec import BadEvent, decode_line, from_json, make, to_json
from clanker.state.events import TaskEvent
from clanker.state.fold import fold
from clanker.state.model import State
from clanker.state.paths import Paths
from clanker.state.snapshot import state_to_json
from clanker.state.store import Store

REPLAY = Path(__file__).parent / "data" / "replay"
LOGS = sorted(p.stem for p in REPLAY.glob("*.log"))


@pytest.mark.parametrize("name", LOGS)
def test_a_recorded_log_replays_to_its_recorded_state(name: str) -> None:
    log = REPLAY / f"{name}.log"
    expected = json.loads((REPLAY / f"{name}.state.json").read_text())
    state = fold(State(), events.read_from(log, 0))
    assert json.loads(json.dumps(state_to_json(state), sort_keys=True)) == expected


def test_the_recorded_logs_cover_the_event_kinds() -> None:
    kinds = {json.loads(line)["type"] for name in LOGS for line in (REPLAY / f"{name}.log").read_text().splitlines()}
    assert len(LOGS) >= 10 and len(kinds) >= 40


# Lines whose old writers differed from one another, so one canonical form can't match them all:
# the field order of the watcher's risk, an explicit `conflict: false`, the regression task's
# default fields, and setup.failed's task written last. Each still reads back as the same event.
CANONICAL_DIFFERS = {"risk", "task.verdict", "task.added", "setup.failed"}


def test_recorded_lines_are_written_back_byte_for_byte() -> None:
    differ: dict[str, int] = {}
    total = 0
    for name in LOGS:
        for line in (REPLAY / f"{name}.log").read_text(encoding="utf-8").splitlines(keepends=True):
            total += 1
            raw = json.loads(line)
            ev = from_json(raw)
            out = json.dumps(to_json(ev), ensure_ascii=False, separators=(",", ":")) + "\n"
            assert from_json(json.loads(out)) == ev, line
            if out != line:
                differ[raw["type"]] = differ.get(raw["type"], 0) + 1
    assert set(differ) <= CANONICAL_DIFFERS, differ
    assert sum(differ.values()) <= total // 50, (differ, total)  # 98 % of the lines are the same bytes


@pytest.mark.parametrize("kind", ["task.claimed", "attempt.finished", "gate.ran"])
def test_an_event_about_a_task_is_refused_without_one(kind: str) -> None:
    # attempt.finished is about a task without being a TaskEvent (a struct has one base).
    line = {"v": 1, "ts": 1, "actor": "c1", "type": kind, "slave": "c1"}
    with pytest.raises(BadEvent, match="without a task"):
        from_json(line)
    assert decode_line(json.dumps(line, separators=(",", ":")).encode()) is None
    assert from_json({**line, "task": "T1"}).task_id == "T1"


def test_an_unknown_type_is_skipped_with_a_warning_and_can_not_be_appended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "events.log"
    log.write_text(
        '{"v":1,"ts":1,"actor":"cli","type":"task.added","task":"T1","title":"x"}\n'
        '{"v":1,"ts":2,"actor":"c9","type":"task.teleported","task":"T1"}\n'
        '{"v":1,"ts":3,"actor":"cli","type":"task.claimed","task":"T1","slave":"c1"}\n'
    )
    with caplog.at_level(logging.WARNING, logger="clanker"):
        got = [e.type for e, _ in events.read_from(log, 0)]
    assert got == ["task.added", "task.claimed"]
    assert "unknown event type 'task.teleported'" in caplog.text
    with pytest.raises(BadEvent):
        make("task.teleported", "c9", "T1")
    store = Store(Paths(tmp_path / "repo"), "test")
    with pytest.raises(IllegalTransition, match="unregistered event"):
        store.append(TaskEvent(actor="x", task="T1"))  # a base class is not an event kind
