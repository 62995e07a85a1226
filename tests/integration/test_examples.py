"""Examples run end to end (fast mode in the default suite, full quality runs marked slow)."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, tmp_path, *args: str) -> dict[str, float]:
    """Run an example as ``python examples/<script> --root ... <args>`` would, in this process
    (the suite's time budget cannot pay a fresh torch import per example)."""
    argv = [str(EXAMPLES / script), "--root", str(tmp_path / "runs"), *args]
    out = io.StringIO()
    saved = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        sys.argv = saved
    last = out.getvalue().strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\S+)=([-\d.e]+)", last)}


# script -> the quality its full run must reach (docs/tasks.md states the measured figures)
QUALITY = {
    "quickstart.py": {"test/acc": 0.97},
    "binary_breast_cancer.py": {"test/acc": 0.93, "test/auroc": 0.97},
    "regression_diabetes.py": {"test/r2": 0.35},
    "multilabel_synthetic.py": {"test/f1": 0.88, "test/map": 0.92},
    "segmentation_shapes.py": {"test/iou": 0.85, "test/dice": 0.9},
    # fine-tuned from a saved state_dict beats the same net from scratch on 50 labels
    "finetune_digits.py": {"test/acc": 0.55, "gain": 0.2},
}


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(QUALITY)


@pytest.mark.parametrize("script", sorted(QUALITY))
def test_example_fast(script, tmp_path):
    metrics = _run(script, tmp_path, "--fast")
    assert "test/loss" in metrics and set(QUALITY[script]) <= set(metrics)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(QUALITY))
def test_example_reaches_its_quality(script, tmp_path):
    metrics = _run(script, tmp_path)
    for name, minimum in QUALITY[script].items():
        assert metrics[name] >= minimum, (name, metrics)
