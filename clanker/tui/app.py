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
from pathlib import Path
from types import FrameType
from typing import Any, cast

from blessed import Terminal
from blessed.keyboard import Keystroke
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..errors import ClankerError, UsageError
from ..fleet import panes as fleet
from ..fleet import status
from ..fleet.controller import Controller
from ..project import preflight
from ..state import heartbeat, logs
from ..state import intake as taskcmd
from ..system.fswatch import WRITE_TYPES, WRITES
from ..text import sanitize
from . import actions, commands, header, layout, view
from .feed import Feed
from .layout import Overlay, Screen

FPS = 8  # frames a second of the RUN label, only while work runs
MESSAGE_SECS = 12.0  # how long a command's answer stays on the bottom line
HELP = """\
keys
  ↑ ↓        select a slave            Enter   its details
  a          attach: switch to its pane (Ctrl-b then l comes back)
  l          its task's log            p / P   pause or resume it / the fleet
  /          command prompt (Tab completes commands and ids)
  ?          this help                 Esc     close an overlay
  q, Ctrl-C  quit this screen — the slaves keep running; `clanker` brings it back

commands
"""


# --- colours ------------------------------------------------------------------------------------

# style → (256-colour index, 8-colour name, bold in 8 colours)
TAIL_COLOURS: dict[str, tuple[int, str, bool]] = {
    "gray": (245, "white", False),
    "yellow": (220, "yellow", False),
    "red": (196, "red", True),
    "cyan": (51, "cyan", False),
    "green": (46, "green", False),
    "blue": (75, "blue", True),
    "magenta": (201, "magenta", False),
}
PULSE_256 = (58, 100, 142, 184, 190, 229)  # the acid accent from dark to bright


class Styles:
    """Style names → escape sequences for this terminal: 256 colours or more, or 8/16 colours."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        rich = term.number_of_colors >= 256
        fg = cast(Callable[[int], str], term.color)  # typed for NullCallableString's sake as taking str
        names = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
        seq: dict[str, str] = {"": "", "bold": str(term.bold), "dim": str(term.dim)}

        def colour(idx: int, name: str, bold: bool) -> str:
            if rich:
                return str(fg(idx))
            return str(fg(names.index(name))) + (str(term.bold) if bold else "")

        for style, (idx, name, bold) in {**TAIL_COLOURS, **header.PALETTE}.items():
            seq[style] = colour(idx, name, bold)
            seq[style + "_bold"] = seq[style] + str(term.bold)
        if not rich:
            seq["gray"] = str(term.dim)  # 8 colours have no gray: dim default text reads as one
        for level in range(header.PULSE_LEVELS):
            if rich:
                seq[f"pulse{level}"] = str(fg(PULSE_256[level])) + str(term.bold)
            else:  # dim, normal, bold: three steps of brightness are what 8 colours have
                step = (str(term.dim), "", str(term.bold))[level * 3 // header.PULSE_LEVELS]
                seq[f"pulse{level}"] = str(fg(3)) + step
        self.seq = seq
        self.normal = str(term.normal)

    def line(self, row: layout.Row) -> str:
        out = []
        for text, style in row:
            code = self.seq.get(style, "")
            out.append(f"{code}{text}{self.normal}" if code else text)
        return "".join(out)


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


class _LogWatch(FileSystemEventHandler):
    def __init__(self, on_write: Callable[[], None]) -> None:
        self.on_write = on_write

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in WRITE_TYPES and Path(str(event.src_path)).name == "events.log":
            self.on_write()


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
        self.log_dirty = threading.Event()
        self.resized = True
        self.prev: list[str] = []
        self.size = (0, 0)
        self.fv: fleet.FleetView | None = None
        self.rows: list[status.SlaveRow] = []
        self.base = Screen()
        self.frame = 0
        self.preflight_shown = 0.0  # the preflight failure last shown in an overlay
        self.done_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.busy_jobs: set[str] = set()

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        observer: Any = Observer()
        observer.daemon = True
        watch = _LogWatch(self._log_written)
        observer.schedule(watch, str(self.ctl.paths.state_dir), recursive=False, event_filter=list(WRITES))
        observer.start()
        old_wakeup = signal.set_wakeup_fd(self.wake.w)
        # A resize, or coming back from Ctrl-Z, means the whole screen must be drawn again.
        old = {sig: signal.signal(sig, self._redraw) for sig in (signal.SIGWINCH, signal.SIGCONT)}
        try:
            with self.term.fullscreen(), self.term.cbreak(), self.term.hidden_cursor():
                self._loop()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            observer.stop()
            self.wake.close()

    def _log_written(self) -> None:
        self.log_dirty.set()
        self.wake.poke()

    def _redraw(self, _signum: int, _frame: FrameType | None) -> None:
        self.resized = True

    def _loop(self) -> None:
        next_tick = 0.0
        next_data = 0.0
        next_frame = 0.0
        keyboard = sys.stdin.fileno()
        while not self.ctl.stopping.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self._tick()
                next_tick = now + self.ctl.cfg.heartbeat_secs
                next_data = 0.0
            if self.log_dirty.is_set():
                self.log_dirty.clear()
                self.feed.poll()
                next_data = 0.0
                if self.ctl.cfg.heartbeat_secs > 1.0:
                    next_tick = min(next_tick, now + 0.2)  # react to new work soon, in bursts
            while not self.done_jobs.empty():
                self.done_jobs.get()()
                next_data = 0.0
            if now >= next_data:
                self._refresh()
                next_data = now + 1.0
            if self.base.mode == "run" and now >= next_frame:
                self.frame += 1
                next_frame = now + 1.0 / FPS
            self._draw()
            due = min(next_tick, next_data, next_frame if self.base.mode == "run" else next_data)
            readable, _, _ = select.select([keyboard, self.wake.r], [], [], max(0.0, due - time.monotonic()))
            if self.wake.r in readable:
                self.wake.drain()
            if keyboard in readable:
                key = self.term.inkey(timeout=0)
                while key:
                    self._key(key)
                    key = self.term.inkey(timeout=0)
                next_data = 0.0

    def _tick(self) -> None:
        try:
            self.fv = self.ctl.tick()
            self.ctl.store.save_snapshot_if_behind()
        except ClankerError as e:  # tmux or git hiccup: say it and carry on; the next tick retries
            self.say(f"controller: {e}", "red")
        self.feed.poll()

    def _refresh(self) -> None:
        """Rebuild what the panels show from the state, heartbeats and the tail."""
        ctl = self.ctl
        state = ctl.store.state()
        self.rows = status.slave_rows(ctl.cfg, ctl.paths, state, self.fv.panes if self.fv else None)
        ids = [r.id for r in self.rows]
        if self.ui.selected not in ids:
            self.ui.selected = ids[0] if ids else ""
        now = time.time()
        quiet = {}
        for r in self.rows:
            if r.task and r.state == "working":
                age = status.log_age(ctl.paths, r.task, now)
                if age is not None:
                    quiet[r.task] = age
        if self.ui.overlay_kind == "log":
            self._show_log(refresh=True)
        if self.ui.message and time.monotonic() > self.ui.message_until:
            self.ui.message = ""
        gate = ctl.gate()
        pre = state.preflights.get(preflight.key(ctl.cfg))
        if gate == "failed" and pre is not None and pre.ts != self.preflight_shown and not self.ui.overlay:
            # Nothing is dispatched until this is fixed: say what and how, once per finding.
            self.preflight_shown = pre.ts
            self._open(
                "preflight",
                "gate preflight: nothing dispatched",
                preflight.render(pre.detail, ctl.cfg.repo).splitlines(),
            )
        self.base = Screen(
            repo=str(ctl.cfg.repo),
            mode="env" if gate == "failed" else view.mode(state, self.rows),
            activity=view.activity(self.rows),
            slaves=view.slave_lines(state, self.rows, now, ctl.cfg.heartbeat_secs, ctl.cfg.agent.stall_secs, quiet),
            queue=view.queue(state, ctl.cfg.slaves, ctl.cfg.judge_max_parallel),
            tail=tuple(self.feed.lines),
            status=self.ui.message or view.idle_line(state, self.rows, self.feed.last_event, now),
            status_style=self.ui.message_style if self.ui.message else "dim",
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

    def _draw(self) -> None:
        size = (self.term.width, self.term.height)
        out = []
        if self.resized or size != self.size:
            self.resized = False
            self.size = size
            self.prev = []
            out.append(str(self.term.home) + str(self.term.clear))
        rows = [self.styles.line(r) for r in layout.render(self.screen(), *size)]
        self.prev += [""] * (len(rows) - len(self.prev))
        for y, text in enumerate(rows):
            if self.prev[y] != text:
                out.append(self.term.move_yx(y, 0) + text)
                self.prev[y] = text
        if out:
            sys.stdout.write("".join(out))
            sys.stdout.flush()

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

    # --- keys ---------------------------------------------------------------------------------------

    def _key(self, key: Keystroke) -> None:
        try:
            if self.ui.prompt is not None:
                self._prompt_key(key)
            elif self.ui.overlay is not None:
                self._overlay_key(key)
            else:
                self._main_key(key)
        except ClankerError as e:
            self.say(str(e), "red")
        except Exception as e:  # noqa: BLE001 - a bug in one command must not take the screen down
            self.say(f"error: {type(e).__name__}: {e}", "red")

    def _main_key(self, key: Keystroke) -> None:
        name, ch = key.name or "", str(key)
        if name == "KEY_UP" or name == "KEY_DOWN":
            self._select(-1 if name == "KEY_UP" else 1)
        elif name == "KEY_ENTER":
            self._details()
        elif ch == "?":
            self._help()
        elif ch == "/":
            self.ui.prompt, self.ui.hint, self.ui.history_at = "", commands.hint(""), len(self.ui.history)
        elif ch == "a":
            self._attach(self.ui.selected)
        elif ch == "l":
            self._show_log()
        elif ch == "p":
            self._toggle_pause(self.ui.selected)
        elif ch == "P":
            self._toggle_pause(None)
        elif ch == "q":
            self.ctl.stopping.set()
        elif name == "KEY_ESCAPE":
            self.ui.message = ""

    def _overlay_key(self, key: Keystroke) -> None:
        name, ch = key.name or "", str(key)
        o = self.ui.overlay
        assert o is not None
        page = max(1, self.term.height - 4)  # the overlay box's body (see layout.overlay_box)
        if name == "KEY_ESCAPE" or ch == "q" or (ch == "?" and self.ui.overlay_kind == "help"):
            self.ui.overlay, self.ui.overlay_kind = None, ""
            return
        top = o.scroll if o.scroll or not o.follow else max(0, len(o.lines) - page)
        moves = {"KEY_UP": -1, "KEY_DOWN": 1, "KEY_PGUP": -page, "KEY_PGDOWN": page}
        if name in moves:
            top = max(0, min(len(o.lines) - 1, top + moves[name]))
            self.ui.overlay = dataclasses.replace(o, scroll=top, follow=o.follow and top >= len(o.lines) - page)
        elif name == "KEY_HOME":
            self.ui.overlay = dataclasses.replace(o, scroll=0, follow=False)
        elif name == "KEY_END":
            self.ui.overlay = dataclasses.replace(o, scroll=0, follow=True)

    def _prompt_key(self, key: Keystroke) -> None:
        name, ch = key.name or "", str(key)
        text = self.ui.prompt or ""
        if name == "KEY_ESCAPE":
            self.ui.prompt, self.ui.hint = None, ""
            return
        if name == "KEY_ENTER":
            self.ui.prompt, self.ui.hint = None, ""
            if text.strip():
                self.ui.history.append(text)
                self._command(text)
            return
        if name in ("KEY_BACKSPACE", "KEY_DELETE"):
            if not text:
                self.ui.prompt, self.ui.hint = None, ""
                return
            text = text[:-1]
        elif name == "KEY_TAB":
            done = commands.complete(text, self._ids())
            text = done.line
            if len(done.options) > 1:
                self.ui.prompt, self.ui.hint = text, "  ".join(done.options)
                return
        elif name in ("KEY_UP", "KEY_DOWN") and self.ui.history:
            step = -1 if name == "KEY_UP" else 1
            self.ui.history_at = max(0, min(len(self.ui.history), self.ui.history_at + step))
            text = self.ui.history[self.ui.history_at] if self.ui.history_at < len(self.ui.history) else ""
        elif ch == "\x15":  # Ctrl-U clears the line, as in a shell
            text = ""
        elif ch and not key.is_sequence and ch.isprintable():
            text += ch
        self.ui.prompt, self.ui.hint = text, commands.hint(text)

    def _select(self, step: int) -> None:
        ids = [r.id for r in self.rows]
        if ids:
            at = ids.index(self.ui.selected) if self.ui.selected in ids else 0
            self.ui.selected = ids[(at + step) % len(ids)]

    def _row(self, sid: str) -> status.SlaveRow:
        row = next((r for r in self.rows if r.id == sid), None)
        if row is None:
            raise UsageError(f"no slave {sid}: the slaves panel lists them")
        return row

    def _ids(self) -> commands.Ids:
        state = self.ctl.store.state()
        by_state: dict[str, list[str]] = {}
        for t in state.tasks.values():
            by_state.setdefault(str(t.state), []).append(t.id)

        def pick(*names: str) -> tuple[str, ...]:
            return tuple(i for n in names for i in by_state.get(n, []))

        live = [s for s in by_state if s not in ("done", "cancelled", "split")]
        return commands.Ids(
            slaves=tuple(r.id for r in self.rows),
            retryable=pick("blocked", "cancelled", "rework", "ready"),
            cancellable=pick(*live),
            landable=pick("needs_judge"),
        )

    # --- overlays -----------------------------------------------------------------------------------

    def _open(self, kind: str, title: str, lines: list[str], follow: bool = False) -> None:
        self.ui.overlay = Overlay(title, tuple(sanitize(ln).replace("\t", "  ") for ln in lines), 0, follow)
        self.ui.overlay_kind = kind

    def _help(self) -> None:
        usage = [f"  {u}" for u in commands.USAGE.values()]
        self._open("help", "clanker — help", [*HELP.splitlines(), *usage])

    def _details(self) -> None:
        if not self.ui.selected:
            return
        r = self._row(self.ui.selected)
        beat = "-" if r.heartbeat_age_s is None else f"{r.heartbeat_age_s:.0f}s ago"
        lines = [f"{r.id}  {r.state}  phase {r.phase or '-'}  heartbeat {beat}  pane {r.pane or '-'}", ""]
        state = self.ctl.store.state()
        task_id = r.task or self.feed.last_task.get(r.id)
        t = state.tasks.get(task_id) if task_id else None
        if t is None:
            lines.append("no task yet")
        else:
            if not r.task:
                lines.append(f"(last task it touched: {t.id})")
            lines += taskcmd.show(t).splitlines()
        self._open("details", f"slave {r.id}", lines)

    def _show_log(self, refresh: bool = False) -> None:
        sid = self.ui.selected
        if not sid:
            return
        r = self._row(sid)
        task_id = r.task or self.feed.last_task.get(sid)
        if task_id is None:
            if not refresh:
                self.say(f"{sid} has no task yet: no log to show")
            return
        text = logs.tail(self.ctl.paths, task_id, 500) or f"no log for {task_id} yet"
        lines = text.splitlines()
        o = self.ui.overlay
        if refresh and o is not None:
            self.ui.overlay = dataclasses.replace(o, lines=tuple(sanitize(ln) for ln in lines))
        else:
            self._open("log", f"{sid} · {task_id} log (↑/↓ scroll)", lines, follow=True)

    # --- actions ------------------------------------------------------------------------------------

    def _attach(self, sid: str) -> None:
        r = self._row(sid)
        if not r.pane:
            raise UsageError(f"{sid} has no pane to attach to")
        try:
            self.ctl.tm.focus(r.pane)
        except ClankerError as e:
            raise UsageError(f"can't switch to {sid} ({r.pane}): {e}") from None
        self.say(f"switched to {sid} — Ctrl-b l (last window) or `clanker attach ctl` comes back")

    def _toggle_pause(self, sid: str | None) -> None:
        state = self.ctl.store.state()
        paused = ("*" in state.paused) if sid is None else (sid in state.paused)
        act = actions.resume if paused else actions.pause
        self.say(act(self.ctl.store, state, sid))
        self.log_dirty.set()

    def _command(self, text: str) -> None:
        cmd = commands.parse(text)
        ctl = self.ctl
        state = ctl.store.state()
        if cmd.name == "task":
            tid = taskcmd.add(ctl.store, cmd.fields)
            self.say(f"added {tid}: {cmd.fields['title']}")
        elif cmd.name == "slaves":
            self._set_slaves(int(cmd.args[0]))
        elif cmd.name == "pause":
            self.say(actions.pause(ctl.store, state, cmd.args[0] if cmd.args else None))
        elif cmd.name == "resume":
            self.say(actions.resume(ctl.store, state, cmd.args[0] if cmd.args else None))
        elif cmd.name == "retry":
            taskcmd.retry(ctl.store, cmd.args[0])
            self.say(f"{cmd.args[0]} is ready again")
        elif cmd.name == "cancel":
            taskcmd.cancel(ctl.store, cmd.args[0])
            self.say(f"cancelled {cmd.args[0]} (its branch is kept)")
        elif cmd.name == "land":
            self.say("landing… (the gate runs on each task)")
            cfg = ctl.cfg
            self.background("land", lambda: actions.land(cfg, state, list(cmd.args)), self.say)
        elif cmd.name == "plan":
            cfg = ctl.cfg
            split = cmd.args[0] if cmd.args else None
            self.say(taskcmd.request_plan(ctl.store, cfg.planner_agent is not None, bool(cfg.planner_docs), split))
        elif cmd.name == "attach":
            self._attach(cmd.args[0])
        elif cmd.name == "doctor":
            self.say("running the doctor…")
            cfg = ctl.cfg
            self.background("doctor", lambda: actions.doctor_lines(cfg), self._doctor_done)
        elif cmd.name == "help":
            self._help()
        elif cmd.name == "quit":
            ctl.stopping.set()
        self.log_dirty.set()

    def _doctor_done(self, lines: list[str]) -> None:
        self.ui.message = ""
        self._open("doctor", "clanker doctor", lines)

    def _set_slaves(self, n: int) -> None:
        ctl = self.ctl
        before = ctl.cfg.slaves
        ctl.cfg = actions.set_slaves(ctl.cfg, n)
        where = ctl.cfg.path or "clanker.yaml"
        if n < before:
            extra = {f"c{i}" for i in range(n + 1, before + 1)}
            cfg = ctl.cfg
            self.background(
                "slaves",
                lambda: fleet.stop(cfg, ctl.tm, only=extra),
                lambda stopped: self.say(f"stopped {', '.join(sorted(stopped)) or 'nothing'}"),
            )
            self.say(f"slaves {before} → {n} (saved in {where}); stopping {', '.join(sorted(extra))}…")
        else:
            self.say(f"slaves {before} → {n} (saved in {where})")
        self._tick()  # spawn the new ones now


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
