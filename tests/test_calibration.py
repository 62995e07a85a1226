"""lk.calibrate: temperature scaling on the validation split, recorded in the checkpoint, used at inference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs, quiet_trainer
from lightkit.checkpointing import load_checkpoint


def _noisy_blobs(n: int, seed: int) -> TensorDataset:
    """Overlapping blobs with 15% wrong labels: no model can be sure of every sample."""
    x, y = make_blobs(n, num_classes=3, features=8, seed=0).tensors
    g = torch.Generator().manual_seed(seed)
    x = x + 1.5 * torch.randn(x.shape, generator=g)
    flip = torch.rand(n, generator=g) < 0.15
    y = torch.where(flip, torch.randint(0, 3, (n,), generator=g), y)
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def overconfident(tmp_path_factory):
    """A trained 3-class MLP whose output layer is scaled ×8: right as often, far surer."""
    root = tmp_path_factory.mktemp("calibrate")
    trainer = quiet_trainer(root, max_epochs=30)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(32,)), num_classes=3)
    dm = lk.data.DataModule(_noisy_blobs(600, 1), val=_noisy_blobs(600, 2), batch_size=100)
    trainer.fit(module, datamodule=dm)
    with torch.no_grad():
        last = [m for m in module.net.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(8.0)
        last.bias.mul_(8.0)
    path = root / "overconfident.ckpt"
    trainer.save_checkpoint(path)
    return SimpleNamespace(module=module, dm=dm, trainer=trainer, path=path)


def test_temperature_scaling_lowers_the_ece_and_follows_the_checkpoint(overconfident):
    module, dm, path = overconfident.module, overconfident.dm, overconfident.path
    before = lk.interpret(module, dm, top_k=0, save_dir=None)
    assert before.temperature is None and before.ece_uncalibrated is None

    result = lk.calibrate(module, dm, checkpoint=path)
    assert result.temperature > 2.0  # the ×8 over-confidence is mostly undone
    assert result.ece_after < 0.75 * result.ece_before
    assert result.nll_after < result.nll_before
    assert module.temperature == result.temperature
    assert str(result).startswith("lk.calibrate: temperature")

    after = lk.interpret(module, dm, top_k=0, save_dir=None)
    assert after.temperature == result.temperature
    assert after.ece == pytest.approx(result.ece_after, abs=1e-6)
    assert after.ece_uncalibrated == pytest.approx(before.ece, abs=1e-6)
    assert after.metrics["accuracy"] == before.metrics["accuracy"]  # the same predictions

    # The file now records it; Predictor (and so serve) divide the logits by it.
    assert load_checkpoint(path)["lightkit"]["temperature"] == result.temperature
    predictor = lk.Predictor.from_checkpoint(path, device="cpu")
    x = dm.val.tensors[0][:20]
    with torch.no_grad():
        logits = module.eval()(x)
    probs = predictor.predict(x)
    assert torch.allclose(probs, (logits / result.temperature).softmax(-1), atol=1e-6)
    assert not torch.allclose(probs, logits.softmax(-1), atol=1e-3)
    # trainer.predict too (predict_step), and a plain reload.
    reloaded = lk.ClassificationModule.load_from_checkpoint(path)
    assert reloaded.temperature == result.temperature
    assert torch.allclose(reloaded.predict_step(x, 0), probs, atol=1e-6)


def test_a_calibrated_module_saves_its_temperature_with_the_trainer(overconfident, tmp_path):
    module, trainer = overconfident.module, overconfident.trainer
    module.temperature = 2.5
    path = tmp_path / "saved.ckpt"
    trainer.save_checkpoint(path)
    assert lk.ClassificationModule.load_from_checkpoint(path).temperature == 2.5
    module.temperature = None
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    assert lk.ClassificationModule.load_from_checkpoint(tmp_path / "plain.ckpt").temperature is None


def test_calibrate_refuses_a_checkpoint_of_other_weights(overconfident, tmp_path):
    module, dm, trainer = overconfident.module, overconfident.dm, overconfident.trainer
    other = tmp_path / "other.ckpt"
    trainer.save_checkpoint(other)
    saved = torch.load(other, weights_only=True)
    key = next(k for k in saved["state_dict"] if k.endswith("weight"))
    saved["state_dict"][key] = saved["state_dict"][key] + 1
    torch.save(saved, other)
    before = other.read_bytes()
    with pytest.raises(ValueError, match="holds other weights than the module"):
        lk.calibrate(module, dm, checkpoint=other)
    assert other.read_bytes() == before  # untouched


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
def test_binary_and_multilabel_outputs_calibrate_too(tmp_path, kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    noisy = x[:, :2] + 0.8 * torch.randn(400, 2, generator=g)
    if kind == "binary":
        module = lk.BinaryClassificationModule(lk.models.MLP(4, 1, hidden=(8,)))
        y = (noisy[:, 0] > 0).float()
    else:
        module = lk.MultilabelClassificationModule(lk.models.MLP(4, 2, hidden=(8,)), num_labels=2)
        y = (noisy > 0).float()
    dm = lk.data.TensorDataModule(x, y, val_split=0.5, batch_size=25)
    quiet_trainer(tmp_path, max_epochs=15, logger=False).fit(module, datamodule=dm)
    first = lk.calibrate(module, dm)
    with torch.no_grad():  # the same model, six times as sure of itself: logits ×6
        last = [m for m in module.net.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(6.0)
        last.bias.mul_(6.0)
    result = lk.calibrate(module, dm)
    assert result.samples == 200
    assert result.temperature == pytest.approx(6.0 * first.temperature, rel=1e-3)
    assert result.nll_after == pytest.approx(first.nll_after, rel=1e-4)
    assert result.nll_after < result.nll_before and result.ece_after < result.ece_before


def test_calibrate_checks_its_arguments(overconfident, tmp_path):
    module, dm = overconfident.module, overconfident.dm
    regression = lk.RegressionModule(lk.models.MLP(8, 1))
    with pytest.raises(ValueError, match="for classification"):
        lk.calibrate(regression, dm)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.calibrate(module, dm, checkpoint=tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="split must be one of"):
        lk.calibrate(module, dm, split="train")
    with pytest.raises(TypeError, match="max_iter"):
        lk.calibrate(module, dm, max_iter=True)
    with pytest.raises(TypeError, match="datamodule"):
        lk.calibrate(module, dm.val)
    for bad in (0.0, -1.0, float("nan"), "2"):
        with pytest.raises((TypeError, ValueError), match="temperature"):
            module.temperature = bad


def test_only_classification_outputs_take_a_temperature(tmp_path):
    regression = lk.RegressionModule(lk.models.MLP(8, 1))
    with pytest.raises(ValueError, match="classification logits; this task's outputs are 'values'"):
        regression.temperature = 2.0
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    x = torch.randn(64, 8)
    trainer.fit(regression, datamodule=lk.data.TensorDataModule(x, x[:, :1], batch_size=32))
    path = tmp_path / "r.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    saved["lightkit"]["temperature"] = 1000.0  # a file that would divide every value by 1000
    torch.save(saved, path)
    with pytest.raises(lk.checkpointing.CheckpointError, match=r"temperature .* 'values' outputs"):
        lk.RegressionModule.load_from_checkpoint(path)
    with pytest.raises(lk.checkpointing.CheckpointError, match="temperature"):
        lk.Predictor.from_checkpoint(path, device="cpu")
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    with pytest.raises(ValueError, match="integer of 401 digits"):
        module.temperature = 10**400


def test_training_drops_a_temperature_fitted_for_the_old_weights(tmp_path):
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    module.temperature = 2.0
    with pytest.warns(UserWarning, match=r"temperature \(2, from lk\.calibrate\).* is dropped"):
        trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), batch_size=32))
    assert module.temperature is None
    trainer.save_checkpoint(tmp_path / "after.ckpt")
    assert load_checkpoint(tmp_path / "after.ckpt")["lightkit"]["temperature"] is None


def test_a_threshold_other_than_half_keeps_every_binary_prediction(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    y = ((x[:, 0] + 0.8 * torch.randn(400, generator=g)) > 0).float()
    module = lk.BinaryClassificationModule(lk.models.MLP(4, 1, hidden=(8,)), threshold=0.3)
    dm = lk.data.TensorDataModule(x, y, val_split=0.5, batch_size=50)
    quiet_trainer(tmp_path, max_epochs=3, logger=False).fit(module, datamodule=dm)
    predictor = lk.Predictor(module, device="cpu")
    _, before = predictor.predict_batch(x, labels=True)
    result = lk.calibrate(module, dm)
    assert abs(result.temperature - 1.0) > 0.01  # it moved
    probs, after = predictor.predict_batch(x, labels=True)
    assert torch.equal(before, after)  # scaled around logit(0.3): no label flips
    with torch.no_grad():
        logits = module(x).view(-1)
    bias = torch.logit(torch.tensor(0.3))
    expected = ((logits - bias) / result.temperature + bias).sigmoid()
    torch.testing.assert_close(probs.view(-1), expected)


def test_degenerate_fits_are_said_and_a_failed_calibrate_changes_nothing(overconfident, tmp_path):
    module, dm = overconfident.module, overconfident.dm
    module.temperature = None
    x = dm.val.tensors[0]
    with torch.no_grad():
        predicted = module(x).argmax(-1)
    clean = lk.data.DataModule(dm.train, val=TensorDataset(x, predicted), batch_size=100)
    with pytest.warns(UserWarning, match="makes no mistake on the val split"):
        lk.calibrate(module, clean)
    module.temperature = None
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(lk.checkpointing.CheckpointError):
        lk.calibrate(module, dm, checkpoint=damaged)
    assert module.temperature is None  # refused before anything was fitted or set
