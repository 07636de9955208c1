"""Events as lines: the flat v1 JSON form of state/events.py's catalogue, written and read back.

    {"v":1,"ts":1764582000.123,"actor":"c2","type":"task.claimed","task":"T7","slave":"c2"}

`v`, `ts`, `actor` and `type` come first, then `task` for events about a task, then the event's own
fields in the order they are declared. A field declared with `opt(...)` is left out while it has
its default, so lines stay what clanker has always written. Reading is forgiving the way the fold
always was: a missing field takes its default, values are coerced to the declared type, and a line
of an unknown type (or one that can't be coerced) is refused with BadEvent, which the log reader
turns into a warning and a skip rather than a crash.
"""

from __future__ import annotations

import time
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .events import REGISTRY, Event
from .usage import Usage

VERSION = 1

ENVELOPE = ("v", "ts", "actor", "type", "task")


class _Field(msgspec.Struct, frozen=True):
    name: str
    coerce: Callable[[Any], Any]
    default: Any
    omit: bool


_FIELDS: dict[type[Event], list[_Field]] = {}


def _coercer(tp: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        each = _coercer(inner[0])
        return lambda v: None if v is None else each(v)
    if tp is str:
        return lambda v: v if isinstance(v, str) else str(v)
    if tp is bool:
        return bool
    if tp is int:
        return lambda v: int(v)
    if tp is float:
        return lambda v: float(v)
    if tp is Usage:
        return lambda v: Usage.from_json(v if isinstance(v, dict) else None)
    if origin is tuple:
        return lambda v: () if v is None else (v,) if isinstance(v, str) else tuple(str(x) for x in v)
    raise TypeError(f"no coercion for {tp!r}")


def _declared(cls: type[Event]) -> list[msgspec.structs.FieldInfo]:
    """A class's fields in the order its classes declare them, base first (a struct lists
    keyword-only fields of a base after its own): the order lines have always had."""
    by_name = {f.name: f for f in msgspec.structs.fields(cls)}
    order: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        if issubclass(klass, Event):
            for name in vars(klass).get("__annotations__", {}):
                if name in by_name:
                    order.setdefault(name)
    return [by_name[name] for name in order]


def _fields(cls: type[Event]) -> list[_Field]:
    found = _FIELDS.get(cls)
    if found is None:
        found = []
        for f in _declared(cls):
            if f.name in ("actor", "ts"):
                continue
            default = f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
            found.append(_Field(f.name, _coercer(f.type), default, f.name in cls.OMIT))
        _FIELDS[cls] = found
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Usage):
        return value.to_json()
    return value


def to_json(ev: Event) -> dict[str, Any]:
    """The flat v1 line of `ev`, as a dict in writing order."""
    out: dict[str, Any] = {"v": VERSION, "ts": round(ev.ts, 3), "actor": ev.actor, "type": ev.TYPE}
    fields = _fields(type(ev))
    task = getattr(ev, "task", None)
    if task is not None and any(f.name == "task" for f in fields):
        out["task"] = task
    for f in fields:
        if f.name == "task":
            continue
        value = getattr(ev, f.name)
        if f.omit and value == f.default:
            continue
        out[f.name] = _plain(value)
    return out


class BadEvent(ValueError):
    """A line that is not an event clanker knows (unknown type, or a value of the wrong kind)."""


_DEFAULTS: dict[type[Event], tuple[dict[str, Any], dict[str, _Field]]] = {}


def _defaults(cls: type[Event]) -> tuple[dict[str, Any], dict[str, _Field]]:
    """A class's default values, and its fields by name."""
    found = _DEFAULTS.get(cls)
    if found is None:
        fields = _fields(cls)
        found = _DEFAULTS[cls] = ({f.name: f.default for f in fields}, {f.name: f for f in fields})
    return found


def from_json(raw: dict[str, Any]) -> Event:
    """The event a parsed line describes. Raises BadEvent for an unknown type or bad values."""
    name = raw.get("type")
    cls = REGISTRY.get(str(name))
    if cls is None:
        raise BadEvent(f"unknown event type {name!r}")
    defaults, by_name = _defaults(cls)
    values = dict(defaults)  # every field has a default, and every default is immutable
    try:
        values["actor"] = str(raw.get("actor", "?"))
        values["ts"] = float(raw.get("ts", 0.0) or 0.0)
        for key, value in raw.items():  # the line's few keys, not every field the class has
            f = by_name.get(key)
            if f is None:
                continue  # the envelope, or a field a newer clanker wrote
            if value is not None:
                values[key] = f.coerce(value)
            elif f.default is None:
                values[key] = None
    except (TypeError, ValueError) as e:
        raise BadEvent(f"{name}: {e}") from None
    ev = cls(**values)
    if cls.ABOUT_TASK and not ev.task_id:
        raise BadEvent(f"{name} without a task")
    return ev


_CANONICAL = b'{"v":1,"ts":'  # how every line clanker writes begins (envelope first, in order)
_TYPE_KEY = b'"type":"'
_DECODERS: dict[bytes, tuple[msgspec.json.Decoder[Any], bool]] = {}  # type name → (decoder, a task event?)


def decode_line(raw: bytes) -> Event | None:
    """The event on a line clanker wrote, parsed and built in one compiled pass (msgspec), or None
    when the line needs from_json's forgiving path: a form clanker does not write (hand-edited,
    another order), a value of another type than declared, an unknown type. Either way the event
    is the same (tests/test_codec.py checks it); this path is ~4× faster, and a cold rebuild
    decodes every line of a year of history."""
    if not raw.startswith(_CANONICAL):
        return None
    at = raw.find(_TYPE_KEY)
    if at < 0 or raw.find(b"{", 1, at) >= 0:  # the envelope's own "type", not a nested one
        return None
    name = raw[at + 8 : raw.find(b'"', at + 8)]  # 8: len(_TYPE_KEY)
    found = _DECODERS.get(name)
    if found is None:
        cls = REGISTRY.get(name.decode("utf-8", "replace"))
        if cls is None:
            return None
        found = _DECODERS[name] = (msgspec.json.Decoder(cls), cls.ABOUT_TASK)
    try:
        ev: Event = found[0].decode(raw)
    except msgspec.DecodeError:  # a value from_json would coerce (a number for a string, …)
        return None
    if found[1] and not ev.task_id:
        return None
    return ev


_warned: set[str] = set()


def warn_skipped(problem: str, where: str) -> None:
    """Say once per kind of problem that a line was skipped (a hand-edited or newer log)."""
    key = problem.split(":", 1)[0]
    if key not in _warned:
        _warned.add(key)
        import logging  # only a skipped line needs it: every process would pay 1 ms for it at start

        logging.getLogger("clanker").warning("%s: skipped a line: %s", where, problem)


def make(type_: str, actor: str = "cli", task: str | None = None, ts: float | None = None, **data: Any) -> Event:
    """Build an event from its flat form (tests, tools): the same path as reading a line."""
    raw: dict[str, Any] = {"type": type_, "actor": actor, **data}
    if task is not None:
        raw["task"] = task
    raw["ts"] = time.time() if ts is None else ts
    return from_json(raw)


def payload(ev: Event) -> dict[str, Any]:
    out = to_json(ev)
    for key in ENVELOPE:
        out.pop(key, None)
    return out
