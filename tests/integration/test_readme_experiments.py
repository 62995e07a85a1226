"""The README's "Sweeps and experiments" and logging examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def _run(block: str, folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)  # its runs/ folder goes here
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_the_mlflow_example_reads_the_metrics_back(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    ns = _run(_block("MlflowClient(tracking_uri"), tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "version_0 0.9" in out  # the run's name and its val/acc, as the comment shows
    history = ns["client"].get_metric_history(ns["run"].info.run_id, "val/loss")
    assert len(history) == 3  # one value per epoch
    assert (tmp_path / "runs" / "mlflow.db").is_file()


@pytest.mark.slow
def test_the_kfold_example_gives_oof_rows_and_an_ensemble(tmp_path, monkeypatch, capsys):
    ns = _run(_block("return_ensemble=True"), tmp_path, monkeypatch)
    result = ns["result"]
    assert result["oof"].shape == torch.Size([1500, 10])
    assert sorted(result["oof_fold"].unique().tolist()) == [0, 1, 2]
    accuracy = float((ns["probs"].argmax(1) == ns["y_test"]).float().mean())
    assert accuracy > 0.85
    assert f"ensemble {accuracy:.3f}" in capsys.readouterr().out
