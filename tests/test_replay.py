"""Logs recorded from real runs (the demo, end-to-end scenarios) replay to the very state they gave
when they were recorded: the fold and the event format stay compatible with every log on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clanker.state import log as events
from clanker.state.fold import fold, state_to_json
from clanker.state.model import State

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
