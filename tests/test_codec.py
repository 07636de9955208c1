"""The log's compiled fast path (codec.decode_line) builds exactly the event the forgiving path
(from_json) builds, for every line clanker writes and for any line a person might write."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from clanker.state import log
from clanker.state.codec import decode_line, from_json, to_json
from clanker.state.events import REGISTRY, Event
from clanker.state.usage import Usage

REPLAY = Path(__file__).parent / "data" / "replay"


def slow(raw: bytes) -> Event | str:
    """What a line reads as through from_json alone."""
    return log.forgiving(raw)


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def test_every_recorded_line_takes_the_fast_path_to_the_same_event() -> None:
    lines = [raw for path in sorted(REPLAY.glob("*.log")) for raw in path.read_bytes().splitlines(keepends=True)]
    assert len(lines) > 800
    for raw in lines:
        fast = decode_line(raw)
        assert fast is not None, raw  # every line clanker wrote is canonical
        assert fast == slow(raw) and type(fast) is type(slow(raw)), raw


usage = st.builds(Usage, st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**6),
                  st.integers(0, 10**6), st.integers(0, 500), st.floats(0, 1e4, allow_nan=False))  # fmt: skip
text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


def _value(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is not None and type(None) in typing.get_args(tp):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return st.none() | _value(inner)
    if tp is str:
        return text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**40), 2**40)
    if tp is float:
        return st.floats(-1e12, 1e12, allow_nan=False).map(lambda f: round(f, 3))
    if tp is Usage:
        return usage
    if origin is tuple:
        return st.lists(text, max_size=3).map(tuple)
    raise TypeError(tp)


@st.composite
def events(draw: st.DrawFn) -> Event:
    cls = draw(st.sampled_from(sorted(REGISTRY.values(), key=lambda c: c.TYPE)))
    values = {f.name: draw(_value(f.type)) for f in msgspec.structs.fields(cls) if f.name != "ts"}
    if "task" in values and not values["task"]:
        values["task"] = "T1"
    return cls(ts=draw(st.floats(0, 2e9, allow_nan=False).map(lambda f: round(f, 3))), **values)


@settings(max_examples=600, deadline=None)
@given(events())
def test_any_event_clanker_writes_reads_back_the_same_on_the_fast_path(ev: Event) -> None:
    raw = line(to_json(ev))
    fast = decode_line(raw)
    assert slow(raw) == ev
    assert fast is None or (fast == ev and type(fast) is type(ev))  # None: an actor with a `{` (slow, not wrong)
    assert fast is not None or b"{" in raw[1 : raw.find(b'"type":"')]


junk = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), text,
    st.lists(st.one_of(text, st.integers())), st.dictionaries(text, st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(events(), st.dictionaries(st.sampled_from(["task", "slave", "summary", "files", "priority", "usage", "passed",
                                                  "seconds", "reason", "verdict", "ts", "actor", "v", "type"]),
                                 junk, max_size=4))  # fmt: skip
def test_a_hand_edited_line_reads_as_the_forgiving_path_reads_it(ev: Event, edits: dict[str, Any]) -> None:
    """Values of any JSON type, in any field (the envelope's too): the reader gives what
    from_json gives — the same event, or a skip — whichever path it took."""
    obj = {**to_json(ev), **edits}
    raw = line(obj)
    got, want = log._parse(raw), slow(raw)
    assert got == want if isinstance(want, Event) else isinstance(got, str)  # the event, or a skip


def test_lines_in_another_form_leave_the_fast_path() -> None:
    ev = from_json({"type": "task.claimed", "actor": "c1", "task": "T1", "slave": "c1", "ts": 5.0})
    canonical = line(to_json(ev))
    assert decode_line(canonical) == ev
    reordered = line({"type": "task.claimed", "v": 1, "ts": 5.0, "actor": "c1", "task": "T1", "slave": "c1"})
    assert decode_line(reordered) is None and log._parse(reordered) == ev
    nested = b'{"v":1,"ts":5.0,"x":{"type":"task.note"},"actor":"c1","type":"task.claimed","task":"T1"}\n'
    assert decode_line(nested) is None  # a "type" inside a value is not the line's
    assert decode_line(b'{"v":1,"ts":5.0,"actor":"c1","type":"task.unknown","task":"T1"}\n') is None
    assert decode_line(b'{"v":1,"ts":5.0,"actor":"c1","type":"task.claimed","task":""}\n') is None
    assert decode_line(b'{"v":1,"ts":5.0,"actor":"c1","type":"task.claimed","task":7}\n') is None
    assert log._parse(b'{"v":1,"ts":5.0,"actor":"c1","type":"task.claimed","task":7}\n') == from_json(
        {"type": "task.claimed", "actor": "c1", "task": "7", "ts": 5.0}
    )
