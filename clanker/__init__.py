"""clanker: run a fleet of CLI coding agents on one git repository in tmux, keeping main green."""

__version__ = "0.1.0"
