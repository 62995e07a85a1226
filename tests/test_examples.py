"""Examples run end to end (fast mode in the default suite, full quality runs marked slow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, tmp_path, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--root", str(tmp_path / "runs"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\S+)=([-\d.e]+)", last)}


def test_quickstart_fast(tmp_path):
    metrics = _run("quickstart.py", tmp_path, "--fast")
    assert {"test/acc", "test/loss", "test/f1"} <= set(metrics)


@pytest.mark.slow
def test_quickstart_reaches_its_accuracy(tmp_path):
    metrics = _run("quickstart.py", tmp_path)
    assert metrics["test/acc"] >= 0.97
