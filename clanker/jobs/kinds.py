"""The table of job kinds: the one place the slave learns how to claim, run and give back a job."""

from __future__ import annotations

from . import health, integrate, judge, plan, preflight, work
from .base import JobKind

KINDS: dict[str, JobKind] = {
    k.name: k for k in (work.KIND, judge.KIND, integrate.KIND, health.KIND, plan.KIND, preflight.KIND)
}
