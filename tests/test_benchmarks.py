"""Benchmark scripts run end to end in a tiny mode (their numbers are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gradient_checkpointing_benchmark_tiny():
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "gradient_checkpointing.py"),
            "--batch",
            "4",
            "--size",
            "32",
            "--repeats",
            "1",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "memory ratio checkpointed/plain:" in out.stdout
    assert "time ratio   checkpointed/plain:" in out.stdout
