"""The jobs a slave runs, one module per kind; `kinds.KINDS` is their table."""
