"""The controller's screen: a blessed loop around `Controller.tick`.

One thread draws and reads keys. It sleeps in `select` on the keyboard and a wake pipe; the pipe
is written by signals (SIGWINCH, SIGINT, SIGTERM, via `signal.set_wakeup_fd`), by an inotify
watch on events.log, and by background commands (/land, /doctor) when they finish. Between
wakes it sleeps until the next due thing: a controller tick (every `heartbeat_secs`), the next
second (ages on screen), or — only while work runs — the next frame of the RUN label. Each
frame writes only the rows that changed, so an idle screen costs (almost) nothing and never
flickers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

from blessed import Terminal

from ..errors import ClankerError, UsageError
from ..fleet import panes as fleet
from ..fleet import rows as fleet_rows
from ..fleet.controller import Controller
from ..project import preflight
from ..state import heartbeat
from ..system.fswatch import LogWaiter
from ..text import sanitize
from . import frame, keys, layout, overlays, prompt, view
from .feed import Feed
from .layout import Overlay, Screen
from .styles import Styles

FPS = 4  # frames a second of the RUN label, only while work runs (each is a header row redrawn)
REFRESH_SECS = 0.5  # the panels follow the log at most this often (twice a second: faster is not read)
MESSAGE_SECS = 12.0  # how long a command's answer stays on the bottom line


# --- waking ---------------------------------------------------------------------------------------


class Wake:
    """A self-pipe: anything that should wake the loop writes a byte to it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.w, b"!")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.r, 4096):
                pass

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


# --- the app --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Ui:
    """What the person is doing on the screen (not the fleet's state)."""

    selected: str = ""  # slave id
    overlay: Overlay | None = None
    overlay_kind: str = ""  # help | details | log | doctor
    prompt: str | None = None
    hint: str = ""
    history: list[str] = dataclasses.field(default_factory=list)
    history_at: int = 0
    message: str = ""
    message_style: str = "acid"
    message_until: float = 0.0


class App:
    def __init__(self, ctl: Controller, term: Terminal) -> None:
        self.ctl = ctl
        self.term = term
        self.styles = Styles(term)
        self.feed = Feed(ctl.paths.events)
        self.ui = Ui()
        self.wake = Wake()
        self.log_dirty = threading.Event()  # the log grew since the panels were last refreshed
        self.log_watch: LogWaiter | None = None
        self.resized = True
        self.prev: list[str] = []
        self.prev_cells: list[list[frame.Cell]] = []  # the same rows, cell by cell
        self.size = (0, 0)
        # Without a scroll region a line feed at the bottom would scroll the whole screen.
        self.csr = cast("Callable[[int, int], str]", term.csr)  # blessed's stubs say str; tparm wants ints
        self.can_scroll = bool(str(self.csr(0, 1))) if term.does_styling else False
        self.fv: fleet.FleetView | None = None
        self.rows: list[fleet_rows.SlaveRow] = []
        self.base = Screen()
        self.frame = 0
        self.preflight_shown = 0.0  # the preflight failure last shown in an overlay
        self.done_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.busy_jobs: set[str] = set()
        self.dirty = True  # something on screen may have changed: compose it all again
        self._moves: dict[tuple[int, int], str] = {}

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        self.log_watch = LogWaiter(self.ctl.paths.state_dir)
        old_wakeup = signal.set_wakeup_fd(self.wake.w)
        self.ctl.wake = self.wake.poke
        # A resize, or coming back from Ctrl-Z, means the whole screen must be drawn again.
        old = {sig: signal.signal(sig, self._redraw) for sig in (signal.SIGWINCH, signal.SIGCONT)}
        try:
            with self.term.fullscreen(), self.term.cbreak(), self.term.hidden_cursor():
                self._loop()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            self.log_watch.close()
            self.log_watch = None
            self.wake.close()

    def _redraw(self, _signum: int, _frame: FrameType | None) -> None:
        self.resized = True

    def _loop(self) -> None:
        next_tick = 0.0
        next_data = 0.0
        next_frame = 0.0
        last_data = 0.0
        keyboard = sys.stdin.fileno()
        while not self.ctl.stopping.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self.tick()
                next_tick = now + self.ctl.cfg.heartbeat_secs
                next_data = 0.0
            if self.log_dirty.is_set():
                # A busy fleet appends many events a second: the panels — the tail too, read
                # when they are — follow at most every REFRESH_SECS (a person can't read
                # faster), not once per line of the log.
                next_data = min(next_data, last_data + REFRESH_SECS)
                # The fleet itself (one tmux query, the heartbeats, respawns) is kept every
                # heartbeat_secs, as headless: what the log says needs no tick, only a refresh.
            while not self.done_jobs.empty():
                self.done_jobs.get()()
                next_data = 0.0
            if now >= next_data:
                self.log_dirty.clear()
                self._refresh()
                self.dirty = True
                last_data, next_data = now, now + 1.0
            stepped = False
            if self.base.mode == "run" and now >= next_frame:
                self.frame += 1
                stepped = True
                next_frame = now + 1.0 / FPS
            # A wake by the log alone changes nothing on screen until the next refresh; a step of
            # the RUN label changes only the header rows.
            if self.dirty or self.resized or (self.term.width, self.term.height) != self.size:
                self.dirty = False
                self._draw()
            elif stepped:
                self._draw(header_only=True)
            due = min(next_tick, next_data, next_frame if self.base.mode == "run" else next_data)
            # The log is watched only while no refresh is due: the writes until then are merged
            # by the kernel, not woken for one by one. While slaves are held back (the fleet's
            # first second or so), each write may be a starting slave's first: it is watched.
            merged = self.log_dirty.is_set() and not self.ctl.held_back
            log = [] if merged or self.log_watch is None else [self.log_watch.fileno()]
            readable, _, _ = select.select([keyboard, self.wake.r, *log], [], [], max(0.0, due - time.monotonic()))
            if self.wake.r in readable:
                self.wake.drain()
            if log and log[0] in readable and self.log_watch is not None and self.log_watch.changed():
                self.log_dirty.set()
                if self.ctl.held_back:
                    next_tick = 0.0  # slaves wait to be spawned: the log may say the starting ones are up
            if keyboard in readable:
                key = self.term.inkey(timeout=0)
                while key:
                    keys.press(self, key)
                    key = self.term.inkey(timeout=0)
                next_data = 0.0
                self.dirty = True

    def tick(self) -> None:
        try:
            self.fv = self.ctl.tick()
            self.ctl.store.save_snapshot_if_behind()
        except ClankerError as e:  # tmux or git hiccup: say it and carry on; the next tick retries
            self.say(f"controller: {e}", "red")

    def _refresh(self) -> None:
        """Rebuild what the panels show from the state, heartbeats and the tail."""
        self.feed.poll()
        ctl = self.ctl
        state = ctl.store.state()
        self.rows = fleet_rows.slave_rows(ctl.cfg, ctl.paths, state, self.fv.panes if self.fv else None)
        ids = [r.id for r in self.rows]
        if self.ui.selected not in ids:
            self.ui.selected = ids[0] if ids else ""
        now = time.time()
        quiet = {}
        for r in self.rows:
            if r.task and r.state == "working":
                age = fleet_rows.log_age(ctl.paths, r.task, now)
                if age is not None:
                    quiet[r.task] = age
        if self.ui.overlay_kind == "log":
            self.show_log(refresh=True)
        if self.ui.message and time.monotonic() > self.ui.message_until:
            self.ui.message = ""
        gate = ctl.gate()
        pre = state.preflights.get(preflight.key(ctl.cfg))
        if gate == "failed" and pre is not None and pre.ts != self.preflight_shown and not self.ui.overlay:
            # Nothing is dispatched until this is fixed: say what and how, once per finding.
            self.preflight_shown = pre.ts
            self.open(
                "preflight",
                "gate preflight: nothing dispatched",
                preflight.render(pre.detail, ctl.cfg.repo).splitlines(),
            )
        self.base = Screen(
            repo=str(ctl.cfg.repo),
            mode="env" if gate == "failed" else "budget" if ctl.budget_held() else view.mode(state, self.rows),
            activity=view.activity(self.rows),
            slaves=view.slave_lines(state, self.rows, now, ctl.cfg.heartbeat_secs, ctl.cfg.agent.stall_secs, quiet),
            queue=view.queue(state, ctl.cfg.slaves, ctl.cfg.judges, ctl.cfg.budget, now),
            tail=tuple(self.feed.lines),
            status=self.ui.message or view.idle_line(state, self.rows, self.feed.last_event, now),
            status_style=self.ui.message_style if self.ui.message else "dim",
            executors=view.executors(ctl.cfg, state, self.rows, now),
        )

    def screen(self) -> Screen:
        ids = [sl.id for sl in self.base.slaves]
        return dataclasses.replace(
            self.base,
            frame=self.frame,
            selected=ids.index(self.ui.selected) if self.ui.selected in ids else 0,
            prompt=self.ui.prompt,
            hint=self.ui.hint,
            overlay=self.ui.overlay,
            status=self.ui.message or self.base.status,
            status_style=self.ui.message_style if self.ui.message else self.base.status_style,
        )

    def _draw(self, header_only: bool = False) -> None:
        size = (self.term.width, self.term.height)
        out = []
        if self.resized or size != self.size:
            self.resized = False
            self.size = size
            self.prev, self.prev_cells = [], []
            out.append(str(self.term.home) + str(self.term.clear))
            header_only = False
        screen = self.screen()
        if header_only and screen.overlay is None and len(self.prev) == size[1]:
            # Only the RUN label moved: the header rows are composed again, the rest stays.
            top = [layout.clip(r, size[0]) for r in layout.header_rows(screen, *size)[:1]]  # the label's row
            self._write_rows(out, top, [self.styles.line(r) for r in top])
        else:
            spans = layout.render(screen, *size)
            rows = [self.styles.line(r) for r in spans]
            self.prev += [""] * (len(rows) - len(self.prev))
            self.prev_cells += [[] for _ in range(len(rows) - len(self.prev_cells))]
            plan = frame.scroll_plan(self.prev, rows) if self.can_scroll else None
            if plan is not None:
                # The terminal moves the tail up itself; only the new rows are written below.
                out.append(self.csr(plan.top, plan.bottom) + self.term.move_yx(plan.bottom, 0) + "\n" * plan.by)
                out.append(self.csr(0, size[1] - 1))
                self.prev = frame.scrolled(self.prev, plan, "")
                self.prev_cells = frame.scrolled(self.prev_cells, plan, [])
            self._write_rows(out, spans, rows)
        if out:
            sys.stdout.write("".join(out))
            sys.stdout.flush()

    def _move(self, y: int, x: int) -> str:
        """The cursor motion to (y, x): blessed builds each one with a terminfo parser, so once."""
        found = self._moves.get((y, x))
        if found is None:
            found = self._moves[(y, x)] = str(self.term.move_yx(y, x))
        return found

    def _write_rows(self, out: list[str], spans: list[layout.Row], rows: list[str]) -> None:
        """Append to `out` what changes the screen's first len(rows) rows from what they show."""
        for y, text in enumerate(rows):
            if self.prev[y] != text:
                now = frame.cells_of(spans[y])
                span = frame.changed(self.prev_cells[y], now)
                if span is not None:
                    x0, x1 = span
                    out.append(self._move(y, x0) + self.styles.line(layout.cut(spans[y], x0, x1)))
                self.prev[y] = text
                self.prev_cells[y] = now

    # --- messages and background work ---------------------------------------------------------------

    def say(self, text: str, style: str = "acid") -> None:
        self.ui.message = " ".join(sanitize(text).split())
        self.ui.message_style = style
        self.ui.message_until = time.monotonic() + MESSAGE_SECS

    def background(self, name: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` in a thread (it may take a while: git, gates, probes); `done` gets its result
        back on the UI thread. An error becomes the bottom line."""
        if name in self.busy_jobs:
            self.say(f"{name} is running already")
            return
        self.busy_jobs.add(name)

        def target() -> None:
            try:
                result = work()
                self.done_jobs.put(lambda: done(result))
            except Exception as e:  # noqa: BLE001 - shown inline: nothing may crash the screen
                msg = str(e) if isinstance(e, ClankerError) else f"{type(e).__name__}: {e}"
                self.done_jobs.put(lambda: self.say(f"{name}: {msg}", "red"))
            finally:
                self.done_jobs.put(lambda: self.busy_jobs.discard(name))
                self.wake.poke()

        threading.Thread(target=target, name=f"tui-{name}", daemon=True).start()

    def select(self, step: int) -> None:
        ids = [r.id for r in self.rows]
        if ids:
            at = ids.index(self.ui.selected) if self.ui.selected in ids else 0
            self.ui.selected = ids[(at + step) % len(ids)]

    def row(self, sid: str) -> fleet_rows.SlaveRow:
        row = next((r for r in self.rows if r.id == sid), None)
        if row is None:
            raise UsageError(f"no slave {sid}: the slaves panel lists them")
        return row

    def ids(self) -> prompt.Ids:
        state = self.ctl.store.state()
        by_state: dict[str, list[str]] = {}
        for t in state.tasks.values():
            by_state.setdefault(str(t.state), []).append(t.id)

        def pick(*names: str) -> tuple[str, ...]:
            return tuple(i for n in names for i in by_state.get(n, []))

        live = [s for s in by_state if s not in ("done", "cancelled", "split")]
        return prompt.Ids(
            slaves=tuple(r.id for r in self.rows),
            retryable=pick("blocked", "cancelled", "rework", "ready"),
            cancellable=pick(*live),
            landable=pick("needs_judge"),
        )

    # --- overlays -----------------------------------------------------------------------------------

    def open(self, kind: str, title: str, lines: list[str], follow: bool = False) -> None:
        self.ui.overlay = Overlay(title, tuple(sanitize(ln).replace("\t", "  ") for ln in lines), 0, follow)
        self.ui.overlay_kind = kind

    def show_help(self) -> None:
        self.open("help", "clanker — help", overlays.help_lines())

    def show_doctor(self, lines: list[str]) -> None:
        self.ui.message = ""
        self.open("doctor", "clanker doctor", lines)

    def show_details(self) -> None:
        if self.ui.selected:
            r = self.row(self.ui.selected)
            lines = overlays.details_lines(self.ctl.store.state(), r, self.feed.last_task.get(r.id), self.ctl.paths)
            self.open("details", f"slave {r.id}", lines)

    def show_log(self, refresh: bool = False) -> None:
        sid = self.ui.selected
        if not sid:
            return
        task_id = self.row(sid).task or self.feed.last_task.get(sid)
        if task_id is None:
            if not refresh:
                self.say(f"{sid} has no task yet: no log to show")
            return
        lines = overlays.log_lines(self.ctl.paths, task_id)
        o = self.ui.overlay
        if refresh and o is not None:
            self.ui.overlay = dataclasses.replace(o, lines=tuple(sanitize(ln) for ln in lines))
        else:
            self.open("log", f"{sid} · {task_id} log (↑/↓ scroll)", lines, follow=True)


def run_tui(ctl: Controller) -> int:
    """Run the controller with its screen until `q`, `/quit` or a signal; the slaves keep running."""
    term = Terminal()
    if not term.is_a_tty:
        raise UsageError("the controller's screen needs a terminal: use `clanker run --until-done` in scripts")
    with ctl.running(wait_on_log=False):
        App(ctl, term).run()
    beats = heartbeat.read_all(ctl.paths)
    live = sorted(s for s, b in beats.items() if s != "ctl" and not b.stopped and heartbeat.pid_alive(b.pid))
    kept = f"slaves {', '.join(live)} keep running" if live else "no slave is running"
    print(f"clanker: controller stopped; {kept} (`clanker` brings this screen back, `clanker stop` stops them)")
    return 0
