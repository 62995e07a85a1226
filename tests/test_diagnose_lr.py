"""lk.diagnose's learning-rate check catches a configured rate that does not train (README's [FAIL])."""

from __future__ import annotations

import lightning as L
import pytest
import torch

import lightkit as lk

sklearn = pytest.importorskip("sklearn.datasets")


def _breast_cancer(standardize: bool = False) -> lk.data.TensorDataModule:
    x, y = sklearn.load_breast_cancer(return_X_y=True)  # unstandardized: features up to ~4000
    x = torch.tensor(x, dtype=torch.float32)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return lk.data.TensorDataModule(x, torch.tensor(y, dtype=torch.float32), batch_size=32)


def test_sgd_at_lr_10_on_unstandardized_data_fails(tmp_path):
    L.seed_everything(0)
    module = lk.BinaryClassificationModule(lk.models.MLP(30, 1), optimizer=lk.optim.sgd(lr=10))
    report = lk.diagnose(module, _breast_cancer(), overfit_steps=30, default_root_dir=tmp_path)
    (lr,) = [f for f in report.findings if f.check == "learning rate"]
    assert lr.severity == "error" and not report.ok
    assert "configured optimizer (lr=10) is unstable" in lr.message
    assert "standardize the inputs" in lr.advice


def test_a_sensible_rate_on_the_same_data_standardized_passes(tmp_path):
    L.seed_everything(0)
    dm = _breast_cancer(standardize=True)
    module = lk.BinaryClassificationModule(lk.models.MLP(30, 1), optimizer=lk.optim.adam(lr=1e-3))
    report = lk.diagnose(module, dm, overfit_steps=30, default_root_dir=tmp_path)
    (lr,) = [f for f in report.findings if f.check == "learning rate"]
    assert lr.severity == "ok", lr
    assert "configured optimizer (lr=0.001) lowers the loss" in lr.message
