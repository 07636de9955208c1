"""What each key does, in the three places a key can land: the `/` prompt, an overlay, or the
main screen. Nothing a key does may take the screen down: errors become the bottom line."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from blessed.keyboard import Keystroke

from ..errors import ClankerError
from . import palette, prompt

if TYPE_CHECKING:
    from .app import App


def press(app: App, key: Keystroke) -> None:
    try:
        if app.ui.prompt is not None:
            _prompt(app, key)
        elif app.ui.overlay is not None:
            _overlay(app, key)
        else:
            _main(app, key)
    except ClankerError as e:
        app.say(str(e), "red")
    except Exception as e:  # noqa: BLE001 - a bug in one command must not take the screen down
        app.say(f"error: {type(e).__name__}: {e}", "red")


def _main(app: App, key: Keystroke) -> None:
    name, ch = key.name or "", str(key)
    ui = app.ui
    if name in ("KEY_UP", "KEY_DOWN"):
        app.select(-1 if name == "KEY_UP" else 1)
    elif name == "KEY_ENTER":
        app.show_details()
    elif ch == "?":
        app.show_help()
    elif ch == "/":
        ui.prompt, ui.hint, ui.history_at = "", prompt.hint(""), len(ui.history)
    elif ch == "a":
        palette.attach(app, ui.selected)
    elif ch == "l":
        app.show_log()
    elif ch == "p":
        palette.toggle_pause(app, ui.selected)
    elif ch == "P":
        palette.toggle_pause(app, None)
    elif ch == "t":
        palette.take_over(app, ui.selected)
    elif ch == "q":
        app.ctl.stopping.set()
    elif name == "KEY_ESCAPE":
        ui.message = ""


def _overlay(app: App, key: Keystroke) -> None:
    name, ch = key.name or "", str(key)
    o = app.ui.overlay
    assert o is not None
    page = max(1, app.term.height - 4)  # the overlay box's body (see layout.overlay_box)
    if name == "KEY_ESCAPE" or ch == "q" or (ch == "?" and app.ui.overlay_kind == "help"):
        app.ui.overlay, app.ui.overlay_kind = None, ""
        return
    top = o.scroll if o.scroll or not o.follow else max(0, len(o.lines) - page)
    moves = {"KEY_UP": -1, "KEY_DOWN": 1, "KEY_PGUP": -page, "KEY_PGDOWN": page}
    if name in moves:
        top = max(0, min(len(o.lines) - 1, top + moves[name]))
        app.ui.overlay = dataclasses.replace(o, scroll=top, follow=o.follow and top >= len(o.lines) - page)
    elif name == "KEY_HOME":
        app.ui.overlay = dataclasses.replace(o, scroll=0, follow=False)
    elif name == "KEY_END":
        app.ui.overlay = dataclasses.replace(o, scroll=0, follow=True)


def _prompt(app: App, key: Keystroke) -> None:
    name, ch = key.name or "", str(key)
    ui = app.ui
    text = ui.prompt or ""
    if name == "KEY_ESCAPE":
        ui.prompt, ui.hint = None, ""
        return
    if name == "KEY_ENTER":
        ui.prompt, ui.hint = None, ""
        if text.strip():
            ui.history.append(text)
            palette.execute(app, text)
        return
    if name in ("KEY_BACKSPACE", "KEY_DELETE"):
        if not text:
            ui.prompt, ui.hint = None, ""
            return
        text = text[:-1]
    elif name == "KEY_TAB":
        done = prompt.complete(text, app.ids())
        text = done.line
        if len(done.options) > 1:
            ui.prompt, ui.hint = text, "  ".join(done.options)
            return
    elif name in ("KEY_UP", "KEY_DOWN") and ui.history:
        step = -1 if name == "KEY_UP" else 1
        ui.history_at = max(0, min(len(ui.history), ui.history_at + step))
        text = ui.history[ui.history_at] if ui.history_at < len(ui.history) else ""
    elif ch == "\x15":  # Ctrl-U clears the line, as in a shell
        text = ""
    elif ch and not key.is_sequence and ch.isprintable():
        text += ch
    ui.prompt, ui.hint = text, prompt.hint(text)
