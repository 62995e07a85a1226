"""Benchmark scripts run end to end in a tiny mode (their numbers are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts several Python processes

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_parity_benchmark_tiny_and_losses_agree():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "parity.py"), "--workloads", "mlp", "--pairs", "1",
         "--epochs", "2", "--samples", "1000"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.split()}
    assert {"plain", "lightning", "lightkit"} <= set(rows)
    # Same data order, same arithmetic: lightkit's final validation loss equals the plain loop's,
    # both the interleaved one's (checked by the script) and the stand-alone one's.
    assert "final val loss equal to 5 decimals: yes" in out.stdout
    assert rows["plain"][-2] == rows["lightkit"][-2]
    ratio = float(rows["lightkit"][3])  # paired ratio: a positive number, its size not asserted
    assert ratio > 0


def test_gpu_check_tiny():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'precision="auto" picks:' in out.stdout
    rows = [
        line.split()
        for line in out.stdout.splitlines()
        if line.startswith(("plain", "lightkit", "preset"))
    ]
    names = [r[0] for r in rows]
    assert names[:3] == ["plain", "lightkit-32", "preset"]
    assert rows[0][3] == "1.00" and all(float(r[2]) > 0 for r in rows)
