"""lk.diagnose finds planted faults and passes a healthy setup."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _dm(data: TensorDataset) -> lk.data.DataModule:
    return lk.data.DataModule(data, batch_size=32, val_split=0.25)


def _healthy(lr: float = 3e-3) -> lk.ClassificationModule:
    torch.manual_seed(0)
    return lk.ClassificationModule(
        lk.models.MLP(8, 3, hidden=(32,)), 3, optimizer=lk.optim.adam(lr=lr)
    )


def test_the_package_exports_the_public_names():
    """lightkit.diagnosis is a package; its public names stay where they were."""
    import lightkit.diagnosis

    assert lightkit.diagnosis.__all__ == ["Finding", "Report", "diagnose"]
    assert lk.diagnose is lightkit.diagnosis.diagnose
    report = lk.diagnosis.Report([lk.diagnosis.Finding("data", "error", "bad", "fix it")])
    assert not report.ok
    assert str(report) == "lightkit diagnose: 1 error(s)\n[FAIL] data: bad\n       try: fix it"


def test_a_healthy_setup_passes(tmp_path):
    module = _healthy()
    before = [p.detach().clone() for p in module.parameters()]
    report = lk.diagnose(module, _dm(make_blobs(n=256)), default_root_dir=tmp_path)
    assert report.ok, str(report)
    assert not report.problems(), str(report)
    checks = list(dict.fromkeys(f.check for f in report.findings))  # in the order they ran
    assert checks == [
        "data",
        "batch_independence",
        "init_loss",
        "activations",
        "gradients",
        "overfit",
        "learning rate",
    ]
    assert (
        report.suggested_lr is not None and report.lr_plot is not None and report.lr_plot.exists()
    )
    assert str(report).startswith("lightkit diagnose: no errors")
    # The module itself was not trained.
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_nan_inputs_are_found(tmp_path):
    x, y = make_blobs(n=128).tensors
    x[5, 2] = float("nan")
    report = lk.diagnose(_healthy(), lk.data.DataModule(TensorDataset(x, y), batch_size=32, val_split=0),
                         lr_test=False, default_root_dir=tmp_path)  # fmt: skip
    assert not report.ok
    (error,) = [f for f in report.findings if f.severity == "error"]
    assert error.check == "data" and "NaN or Inf in its inputs (1 sample(s))" in error.message


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        return self.linear(x).detach().requires_grad_()  # a classic: the graph is cut


def test_a_detached_loss_is_found(tmp_path):
    module = lk.ClassificationModule(Detached(), 3)
    report = lk.diagnose(module, _dm(make_blobs(n=128)), overfit_steps=30, lr_test=False,
                         default_root_dir=tmp_path)  # fmt: skip
    assert not report.ok
    messages = {f.check: f for f in report.problems()}
    assert "get no gradient: net.linear.weight, net.linear.bias" in messages["gradients"].message
    assert "did not move" in messages["overfit"].message
    assert "detached" in messages["overfit"].advice


def test_a_learning_rate_far_too_high_is_found(tmp_path):
    report = lk.diagnose(_healthy(lr=50.0), _dm(make_blobs(n=256)), default_root_dir=tmp_path)
    (lr,) = [f for f in report.findings if f.check == "learning rate"]
    assert (
        lr.severity == "error"
        and "configured learning rate 50 is far above where the loss stops" in lr.message
    )
    assert "lr=" in lr.advice and not report.ok


def test_constant_features_scale_and_imbalance_are_reported(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g) * 500 + 1000
    x[:, 3] = 7.0
    y = torch.zeros(300, dtype=torch.long)
    y[:12] = 1
    y[12:20] = 2
    report = lk.diagnose(_healthy(), lk.data.DataModule(TensorDataset(x, y), batch_size=32),
                         lr_test=False, overfit_steps=20, default_root_dir=tmp_path)  # fmt: skip
    text = str(report)
    assert "1 input feature(s) never change: 3" in text
    assert "far from standardized" in text
    assert "imbalanced" in text and 'class_weights="balanced"' in text  # the option to use


def _breast_cancer(standardize: bool = False) -> lk.data.TensorDataModule:
    sklearn = pytest.importorskip("sklearn.datasets")
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
