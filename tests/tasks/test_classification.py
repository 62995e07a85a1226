"""ClassificationModule (and BinaryClassificationModule's targets): training, metrics,
predictions, bad labels and arguments. What every task does is in test_task_family.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import binary_data, fit_one_epoch, make_blobs, mlp_task


def test_training_lowers_the_loss_and_logs_metrics(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, val_split=0.25, batch_size=32)
    module = mlp_task(optimizer=lk.optim.adam(lr=1e-2))
    trainer = lk.make_trainer(max_epochs=5, **fast_trainer_kwargs)
    before = trainer.validate(module, datamodule=dm, verbose=False)[0]["val/loss"]
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    assert metrics["val/loss"] < 0.5 * before
    assert metrics["val/acc"] > 0.9
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= set(metrics)


def test_accuracy_and_f1_match_torchmetrics_with_one_update_per_batch():
    from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

    metrics = mlp_task().val_metrics
    acc, f1 = MulticlassAccuracy(3, average="micro"), MulticlassF1Score(3, average="macro")
    g = torch.Generator().manual_seed(0)
    for size in (7, 32, 1):
        preds, target = torch.randn(size, 3, generator=g), torch.randint(0, 3, (size,), generator=g)
        metrics.update(preds, target)
        acc.update(preds, target)
        f1.update(preds, target)
    values = metrics.compute()
    assert values["val/acc"] == pytest.approx(float(acc.compute()), abs=1e-6)
    assert values["val/f1"] == pytest.approx(float(f1.compute()), abs=1e-6)
    assert list(metrics.compute_groups.values()) == [["acc", "f1"]]  # one shared update


def test_predict_returns_probabilities(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, predict=TensorDataset(torch.randn(10, 8)), batch_size=4)
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    probs = torch.cat(trainer.predict(mlp_task(), datamodule=dm))
    assert probs.shape == (10, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(10))


# --- bad input ------------------------------------------------------------------------------


def _fit(module, dataset, fast_trainer_kwargs, **dm_kwargs):
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(dataset, **dm_kwargs))


def test_out_of_range_label_names_value_and_batch(fast_trainer_kwargs):
    ds = make_blobs(n=64)
    ds.tensors[1][37] = 7  # num_classes is 3
    with pytest.raises(ValueError, match=r"label 7 at position \d+ of train batch \d .*\[0, 3\)"):
        _fit(mlp_task(), ds, fast_trainer_kwargs, val_split=0.0, batch_size=32)


def test_negative_label_in_validation(fast_trainer_kwargs):
    train, val = make_blobs(n=64), make_blobs(n=16, seed=1)
    val.tensors[1][0] = -1
    with pytest.raises(ValueError, match=r"label -1 at position 0 of val batch 0"):
        _fit(mlp_task(), train, fast_trainer_kwargs, val=val, batch_size=16)


def test_float_labels_are_rejected(fast_trainer_kwargs):
    ds = make_blobs(n=32)
    ds = TensorDataset(ds.tensors[0], ds.tensors[1].float())
    with pytest.raises(TypeError, match=r"integer class indices, got dtype torch\.float32"):
        _fit(mlp_task(), ds, fast_trainer_kwargs, val_split=0.0)


def test_wrong_logit_shape_is_named():
    module = lk.ClassificationModule(nn.Linear(8, 5), num_classes=3)
    with pytest.raises(ValueError, match=r"logits of shape N×3 .* got \(4, 5\)"):
        module.compute_loss(module(torch.randn(4, 8)), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    ("num_classes", "error"),
    [(1, ValueError), (0, ValueError), (2.5, TypeError), (True, TypeError)],
)
def test_bad_num_classes(num_classes, error):
    with pytest.raises(error, match="num_classes must be an integer"):
        lk.ClassificationModule(nn.Linear(8, 3), num_classes=num_classes)


@pytest.mark.parametrize("bad", [0.5, 2.0, float("nan")])
def test_binary_targets_must_be_zero_or_one(bad, fast_trainer_kwargs):
    x, y = binary_data().tensors
    y = y.clone()
    y[3] = bad
    with pytest.raises(
        ValueError,
        match=rf"target {bad} at position \d+ of train batch \d+ is invalid; expected 0 or 1",
    ):
        fit_one_epoch(
            lk.BinaryClassificationModule(lk.models.MLP(8, 1)),
            TensorDataset(x, y),
            fast_trainer_kwargs,
        )
