"""lk.cross_validate."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk
from helpers import make_blobs


def test_cross_validate(tmp_path, capsys):
    calls = []

    def make_module():
        calls.append(1)
        return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)

    result = lk.cross_validate(
        make_module,
        make_blobs(120),
        k=3,
        batch_size=16,
        trainer_kwargs={"max_epochs": 3, "default_root_dir": tmp_path, "logger": False},
    )
    assert len(calls) == 3 and len(result["folds"]) == 3  # a fresh module per fold
    assert {"val/loss", "val/acc", "val/f1"} <= set(result["mean"])
    accs = [f["val/acc"] for f in result["folds"]]
    assert result["mean"]["val/acc"] == pytest.approx(sum(accs) / 3)
    assert result["std"]["val/acc"] == pytest.approx(float(torch.tensor(accs).std()))
    table = capsys.readouterr().out
    assert "mean" in table and "std" in table and "val/acc" in table


def test_cross_validate_is_reproducible(tmp_path, capsys):
    def run():
        return lk.cross_validate(
            lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3),
            make_blobs(64),
            k=2,
            trainer_kwargs={"max_epochs": 1, "default_root_dir": tmp_path, "logger": False},
        )

    torch.manual_seed(1)
    first = run()
    torch.manual_seed(2)  # the caller's RNG state does not matter
    assert run()["folds"] == first["folds"]
