"""The controller's screen as pure data: a `Screen` (what to show) → rows of styled segments that
fit exactly `width` × `height` cells. No terminal here, so every size is testable.

Top to bottom: the header (banner, RUN label, repo), the slaves panel, the queue panel, the tail
panel (as many lines as fit), and one bottom line — the status line, or the `/` prompt. Overlays
(help, details, log, doctor) are boxes drawn over the middle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from wcwidth import wcwidth

from . import header
from .header import Seg
from .tail import Line

Row = list[Seg]
BIG_HEADER = (76, 20)  # the banner needs this many columns and rows; below that, one header row
MIN_TITLE = 12  # the slaves panel drops spend, elapsed and heartbeat before the title gets narrower


@dataclass(frozen=True)
class SlaveLine:
    id: str
    job: str = ""  # work | rework | judge | idle
    task: str = ""
    title: str = ""
    elapsed: str = ""
    spend: str = ""  # the task's `tok 1.2k $0.41`
    beat: str = "-"  # heartbeat age
    marker: str = ""  # DEAD | STALLED | PAUSED | STOPPED | ABSENT


@dataclass(frozen=True)
class Queue:
    counts: tuple[tuple[str, int], ...] = ()  # non-zero counts by state, in queue order
    backlog: int = 0  # submitted tasks waiting for (or in) integration
    busy: int = 0  # slaves holding a job now
    cap: int = 0  # the effective cap: `slaves` in clanker.yaml, or lower by an advice
    phase: str = ""
    work_target: int = 0
    judge_target: int = 0
    spend: str = ""
    flow: str = ""  # the merge queue: landings in the last hour, median time in it
    why: str = ""  # what holds work below the cap (scheduler.Targets.why)


@dataclass(frozen=True)
class Overlay:
    title: str
    lines: tuple[str, ...]
    scroll: int = 0  # first line shown
    follow: bool = False  # show the end (logs) rather than the beginning


@dataclass(frozen=True)
class Screen:
    repo: str = ""
    mode: str = "idle"  # run | idle | paused
    frame: int = 0
    activity: str = ""  # "2 working · 1 judging"
    slaves: tuple[SlaveLine, ...] = ()
    selected: int = 0
    queue: Queue = field(default_factory=Queue)
    tail: tuple[Line, ...] = ()
    status: str = ""
    status_style: str = "dim"
    prompt: str | None = None  # the text after `/` while the prompt is open
    hint: str = ""  # completions or the usage of the command being typed
    overlay: Overlay | None = None
    executors: str = ""  # `here 1/1 · hostA 2/2 · hostB down`, when executors are configured


# --- cells ---------------------------------------------------------------------------------------


def cells(text: str) -> int:
    if text.isascii():
        return len(text)
    return _wide_cells(text)


@lru_cache(maxsize=4096)
def _wide_cells(text: str) -> int:
    # The banner, the pulse and the markers are the same strings frame after frame.
    return sum(max(0, wcwidth(c)) for c in text)


def fit(text: str, width: int, pad: bool = True) -> str:
    """`text` in exactly `width` cells (or at most, without `pad`), cut with `…`."""
    if width <= 0:
        return ""
    if cells(text) <= width:
        return text + " " * (width - cells(text)) if pad else text
    out, used = [], 0
    for c in text:
        w = max(0, wcwidth(c))
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    cut = "".join(out) + "…"
    return cut + " " * (width - used - 1) if pad else cut


def row_width(row: Row) -> int:
    return sum(cells(t) for t, _ in row)


def clip(row: Row, width: int) -> Row:
    """The row cut (with `…`) or padded to exactly `width` cells."""
    out: Row = []
    used = 0
    for text, style in row:
        w = cells(text)
        if used + w <= width:
            out.append((text, style))
            used += w
            continue
        piece = fit(text, width - used, pad=False)
        out.append((piece, style))
        used += cells(piece)
        break
    if used < width:
        out.append((" " * (width - used), ""))
    return [s for s in out if s[0]]


def cut(row: Row, start: int, end: int) -> Row:
    """Cells [start, end) of a row; a wide character split by a boundary becomes a space."""
    out: Row = []
    pos = 0
    for text, style in row:
        if text.isascii() and text.isprintable():  # one cell per character: a slice
            if pos < end and pos + len(text) > start:
                out.append((text[max(0, start - pos) : end - pos], style))
            pos += len(text)
            continue
        piece = []
        for c in text:
            w = max(0, wcwidth(c))
            if pos >= start and pos + w <= end:
                piece.append(c)
            elif pos < end and pos + w > start:
                piece.append(" " * max(0, min(end, pos + w) - max(start, pos)))
            pos += w
        if piece:
            out.append(("".join(piece), style))
    return out


# --- panels --------------------------------------------------------------------------------------


def rule(title: str, width: int, extra: str = "") -> Row:
    left = f"── {title} "
    right = f" {extra} ──" if extra else ""
    return [(left, "void"), ("─" * max(0, width - cells(left) - cells(right)), "void"), (right, "void")]


def header_rows(s: Screen, width: int, height: int) -> list[Row]:
    label = header.run_label(s.mode, s.frame)
    if width >= BIG_HEADER[0] and height >= BIG_HEADER[1]:
        side = [
            [*label, ("  ", ""), (s.activity, "bold")],
            [(s.repo, "ice")],
            [
                (f"{len(s.slaves)} slave{'s' if len(s.slaves) != 1 else ''} · cap {s.queue.cap}", "dim"),
                (f" · {s.executors}" if s.executors else "", "dim"),
            ],
            [("? help  / commands  q quit", "dim")],
        ]
        room = width - header.BANNER_WIDTH - 2
        return [[*b, ("  ", ""), *clip(side[i], room)] if room > 0 else b for i, b in enumerate(header.banner())]
    compact: Row = [("CLANKER", "hot"), (" ▞ ", "void"), *label, ("  ", ""), (s.activity, "bold")]
    return [[*compact, ("  ", ""), (s.repo, "ice")]]


def slave_row(sl: SlaveLine, selected: bool, width: int) -> Row:
    """id, job, task, title, elapsed, tokens and cost, heartbeat age, marker. On a narrow screen the
    title shrinks first, then spend, elapsed and heartbeat go, in that order; the marker stays."""
    marker_style = {"DEAD": "red", "STALLED": "yellow", "PAUSED": "yellow"}.get(sl.marker, "dim")
    cols: dict[str, tuple[str, int, str]] = {
        "sel": ("▸ " if selected else "  ", 2, "acid"),
        "id": (sl.id, 4, "acid" if selected else "bold"),
        "job": (sl.job or "-", 9, "ice" if sl.job in ("work", "rework", "judge") else "dim"),
        "task": (sl.task or "-", 9, ""),
        "title": (sl.title, 0, "dim"),
        "elapsed": (sl.elapsed, 5, ""),
        "spend": (sl.spend, 17, ""),
        "beat": (f"♥ {sl.beat}", 6, "dim"),
        "marker": (sl.marker, 8, marker_style),
    }
    for optional in ("spend", "elapsed", "beat"):
        if sum(w for _, w, _ in cols.values()) + MIN_TITLE <= width:
            break
        del cols[optional]
    title_w = max(0, width - sum(w for _, w, _ in cols.values()))
    text, _, style = cols["title"]
    cols["title"] = (fit(text, title_w - 1) + " " if title_w > 1 else "", title_w, style)
    return clip([(fit(text, w), style) for text, w, style in cols.values()], width)


def slave_rows(s: Screen, width: int, room: int) -> list[Row]:
    if not s.slaves:
        return [[("  no slaves yet", "dim")]]
    if len(s.slaves) <= room:
        return [slave_row(sl, i == s.selected, width) for i, sl in enumerate(s.slaves)]
    shown = max(1, room - 1)  # one row says how many more there are
    first = min(max(0, s.selected - shown + 1), len(s.slaves) - shown)
    rows = [slave_row(s.slaves[i], i == s.selected, width) for i in range(first, first + shown)]
    return [*rows, [(f"  … {len(s.slaves) - shown} more (↑/↓)", "dim")]]


def queue_rows(q: Queue) -> list[Row]:
    counts: Row = []
    for name, n in q.counts:
        style = {"blocked": "red", "rework": "yellow", "done": "magenta"}.get(name, "")
        counts += [(f"{name}:{n}", style), ("  ", "")]
    if not q.counts:
        counts = [("no tasks: /task add TITLE", "dim")]
    elif q.flow:
        counts.append((q.flow, "dim"))
    second: Row = [
        ("backlog ", "dim"),
        (str(q.backlog), "bold"),
        (" to judge · busy ", "dim"),
        (f"{q.busy}/{q.cap}", "bold"),
        (f" · {q.phase}: work ≤{q.work_target} judge ≤{q.judge_target}" if q.phase else "", "dim"),
        (f" ({q.why})" if q.why else "", "yellow"),
        (" · ", "dim"),
        (q.spend, ""),
    ]
    return [[("  ", ""), *counts], [("  ", ""), *second]]


def tail_row(line: Line, width: int) -> Row:
    rest = line.text[len(line.tag) :]
    body = {"INFO": "gray", "RISK": "yellow", "BLOK": "red"}.get(line.tag.strip(), "")
    row: Row = [(line.tag, line.colour + "_bold")]
    if line.accent and line.accent in rest:
        before, after = rest.split(line.accent, 1)
        row += [(before, body), (line.accent, "acid"), (after, body)]
    else:
        row.append((rest, body))
    return clip(row, width)


def bottom_row(s: Screen, width: int) -> Row:
    if s.prompt is not None:
        row: Row = [("/", "acid"), (s.prompt, "bold"), ("█", "acid")]
        if s.hint:
            row += [("   ", ""), (s.hint, "dim")]
        return clip(row, width)
    return clip([(s.status, s.status_style)], width)


# --- overlays ------------------------------------------------------------------------------------


def overlay_box(o: Overlay, width: int, height: int) -> tuple[int, int, list[Row]]:
    """(x, y, rows) of the overlay box, centred, at most the screen minus a margin."""
    inner_w = min(width - 4, max(40, *(cells(ln) for ln in o.lines), cells(o.title) + 4) + 2)
    inner_w = max(10, inner_w)
    body_h = max(1, min(height - 4, len(o.lines)))
    top = max(0, min(o.scroll, len(o.lines) - body_h))
    if o.follow and o.scroll == 0:
        top = max(0, len(o.lines) - body_h)
    shown = list(o.lines[top : top + body_h])
    more = f" {top + 1}-{top + len(shown)}/{len(o.lines)} " if len(o.lines) > body_h else ""
    title = f" {o.title} "
    top_bar = "─" * max(0, inner_w - cells(title) - 1)
    rows: list[Row] = [[("┌─", "acid"), (title, "hot_bold"), (top_bar, "acid"), ("┐", "acid")]]
    for ln in shown:
        rows.append([("│ ", "acid"), (fit(ln, inner_w - 2), ""), (" │", "acid")])
    bottom = f"{more}Esc closes "
    rows.append([("└", "acid"), ("─" * max(0, inner_w - cells(bottom)), "acid"), (bottom, "dim"), ("┘", "acid")])
    box_w = inner_w + 2
    return (max(0, (width - box_w) // 2), max(0, (height - len(rows)) // 2), rows)


def splice(row: Row, x: int, piece: Row, width: int) -> Row:
    w = row_width(piece)
    return clip([*cut(row, 0, x), *piece, *cut(row, x + w, width)], width)


# --- the whole screen ----------------------------------------------------------------------------


def render(s: Screen, width: int, height: int) -> list[Row]:
    """Exactly `height` rows of exactly `width` cells."""
    width, height = max(1, width), max(1, height)
    rows: list[Row] = header_rows(s, width, height)
    fixed = len(rows) + 1 + 1 + 2 + 1 + 1  # + slaves rule, queue rule, queue rows, tail rule, bottom
    slaves_room = max(1, min(len(s.slaves) or 1, height - fixed - 3))  # the tail keeps ≥ 3 rows
    busy = f"{sum(1 for sl in s.slaves if sl.task)}/{len(s.slaves)} busy" if s.slaves else ""
    rows.append(rule("slaves", width, busy))
    rows += slave_rows(s, width, slaves_room)
    rows.append(rule("queue", width))
    rows += queue_rows(s.queue)
    rows.append(rule("tail", width, f"{len(s.tail)} lines" if s.tail else ""))
    tail_room = max(0, height - len(rows) - 1)
    if s.tail:
        rows += [tail_row(ln, width) for ln in s.tail[-tail_room:]] if tail_room else []
    elif tail_room:
        rows.append([("  nothing yet: task starts and finishes, retries, errors and test runs show here", "dim")])
    rows = rows[: height - 1]
    rows += [[] for _ in range(height - 1 - len(rows))]
    rows.append(bottom_row(s, width))
    rows = [clip(r, width) for r in rows]
    if s.overlay is not None:
        x, y, box = overlay_box(s.overlay, width, height)
        for i, piece in enumerate(box):
            if 0 <= y + i < height - 1:
                rows[y + i] = splice(rows[y + i], x, piece, width)
    return rows


def plain(rows: list[Row]) -> list[str]:
    """The rows as text (tests, and the README's captured screen)."""
    return ["".join(t for t, _ in r) for r in rows]
