"""The project's own scripts run: benchmarks and the fault campaign are tools people rely on, so
a change that breaks them fails here rather than at the next measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

pytestmark = pytest.mark.e2e


def script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def test_bench_log_measures_a_generated_history_against_its_baseline() -> None:
    proc = script("bench", "log", "--events", "2000", "--reps", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tasks"] == 200 and out["big_warm"]["secs"]["median"] > 0
    assert out["warm_ratio_to_1.2k_events"] > 0 and out["cold_ratio_to_1.2k_events"] > 0


def test_bench_mainline_lands_accepted_tasks_both_ways() -> None:
    proc = script("bench", "mainline", "--k", "2", "--gate", "0.05")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["one_by_one_secs"] > 0 and out["batched_secs"] > 0


def test_bench_overhead_counts_a_fleet_against_the_raw_git_floor() -> None:
    proc = script("bench", "overhead", "--tasks", "2", "--reps", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    fleet, floor = out["processes_per_task"]["clanker"]["median"], out["processes_per_task"]["floor"]["median"]
    assert fleet > floor > 5 and out["git_processes_per_task"]["floor"]["median"] >= 7
    assert out["wall_ratio_to_floor"] > 0


def test_bench_scaling_and_tui_measure_a_busy_fleet() -> None:
    proc = script("bench", "scaling", "--slaves", "2", "--tasks", "2")
    assert proc.returncode == 0, proc.stderr
    eff = json.loads(proc.stdout)["efficiency"]["2"]["median"]
    assert 0 < eff <= 1.05
    proc = script("bench", "tui", "--slaves", "2", "--seconds", "1", "--reps", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["bytes_to_terminal_per_second"]["tui"]["median"] > 0
    assert out["controller_cpu_percent_of_a_core"]["headless"]["median"] >= 0


def test_bench_scheduler_compares_adaptive_and_fixed_concurrency_on_a_simulated_fleet() -> None:
    proc = script("bench", "scheduler", "--slaves", "2,8", "--tasks", "12", "--reps", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["workloads"]
    assert set(out) == {"independent", "overlapping", "conflict-heavy"}
    for rows in out.values():
        for row in rows.values():
            assert row["makespan_ratio"]["median"] > 0 and row["agent_secs_ratio"]["median"] > 0
    heavy, free = out["conflict-heavy"]["8"]["conflicts"]["fixed"], out["independent"]["8"]["conflicts"]["fixed"]
    assert heavy["median"] > free["median"]  # the workloads differ as they say


def test_bench_ssh_times_a_fleet_on_an_ssh_executor_against_local() -> None:
    proc = script("bench", "ssh", "--tasks", "2", "--reps", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    per = out["wall_per_task_secs"]
    assert per["ssh"]["median"] > 0 and per["local"]["median"] > 0 and out["ssh_ratio_to_local"] > 0


def test_chaos_runs_a_faulted_fleet_and_checks_its_invariants(tmp_path: Path) -> None:
    keep = tmp_path / "failures"
    proc = script("chaos", "--runs", "1", "--seed", "3", "--tasks", "3", "--llm-every", "0", "--keep", str(keep))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok  seed    3 fake") and "| 1 | 1 |" in proc.stdout, proc.stdout
    assert not keep.exists(), "no failing run, no evidence kept"
