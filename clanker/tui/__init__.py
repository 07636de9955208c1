"""The controller's TUI (blessed): pure formatter, layout and command parser, and the app loop."""
