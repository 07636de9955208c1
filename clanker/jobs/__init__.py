"""The jobs a slave runs: work, judge (and, later, plan)."""
