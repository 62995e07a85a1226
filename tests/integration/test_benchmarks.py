"""Benchmark scripts run end to end in a tiny mode (their numbers are not asserted).

Most start several Python processes and are marked slow; the data-loading one is quick enough for
the default suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
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
    assert "check: final val loss of plain and lightkit equal to 5 decimals: yes" in out.stdout
    assert rows["plain"][-2] == rows["lightkit"][-2]
    ratio = float(rows["lightkit"][3])  # paired ratio: a positive number, its size not asserted
    assert ratio > 0


@pytest.mark.slow
def test_gpu_check_tiny(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # its runs/gpu_check folder goes here, not into the repository
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


@pytest.mark.slow
def test_lightkit_adds_few_python_calls_per_step_over_bare_lightning():
    # A count, not a time: exact and repeatable on a loaded machine. Before the overhead work of
    # issue 9 lightkit made 1.65x bare Lightning's calls per step (3105 vs 1878); now about 0.97x.
    import importlib.util

    spec = importlib.util.spec_from_file_location("step_overhead", BENCHMARKS / "step_overhead.py")
    step_overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_overhead)
    lightning = step_overhead.calls_per_step("lightning")
    lightkit = step_overhead.calls_per_step("lightkit")
    assert step_overhead.calls_per_step("plain") < lightning
    assert lightkit < 1.25 * lightning, (lightkit, lightning)


@pytest.mark.slow
def test_checkpoint_load_benchmark_tiny():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "checkpoint_load.py"), "--mb", "4", "--rounds", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    ratios = [line.split()[-1] for line in out.stdout.splitlines() if line.endswith("x")]
    assert len(ratios) == 4 and ratios[0] == ratios[2] == "1.00x"


@pytest.mark.slow
def test_data_loading_benchmark_tiny():
    script = BENCHMARKS / "data_loading.py"
    out = subprocess.run(
        [sys.executable, str(script), "--samples", "1000", "--pairs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("speed-up InMemoryLoader / DataLoader:") == 2


def test_figures_benchmark_runs(monkeypatch, capsys):
    import runpy

    # In this process (lightning is already imported): a subprocess would spend its time importing.
    monkeypatch.setattr(sys, "argv", ["figures.py", "--rounds", "1", "--calls", "2"])
    runpy.run_path(str(BENCHMARKS / "figures.py"), run_name="__main__")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 2 and all(float(r[-1]) > 0 for r in rows)
