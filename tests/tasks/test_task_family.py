"""Every task class: training lowers the loss, checkpoints round-trip, bad input is explained."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import binary_data, make_blobs, regression_data


@dataclass
class Case:
    make_module: Callable[[], lk.TaskModule]
    make_data: Callable[[], TensorDataset]
    metrics: tuple[str, ...]
    epochs: int = 4


def _multilabel_data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    w = torch.randn(8, 4, generator=g)
    return TensorDataset(x, (x @ w > 0).long())


def _segmentation_data() -> TensorDataset:
    return TensorDataset(*lk.data.make_shapes(96, 16, seed=0))


CASES = {
    "classification": Case(
        lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(32,)), 3),
        lambda: make_blobs(n=256),
        ("acc", "f1"),
    ),
    "binary": Case(
        lambda: lk.BinaryClassificationModule(lk.models.MLP(8, 1, hidden=(32,))),
        binary_data,
        ("acc", "f1", "auroc"),
    ),
    "multilabel": Case(
        lambda: lk.MultilabelClassificationModule(lk.models.MLP(8, 4, hidden=(32,)), 4),
        _multilabel_data,
        ("f1", "acc", "map"),
    ),
    "regression": Case(
        lambda: lk.RegressionModule(lk.models.MLP(8, 1, hidden=(32,)), loss="huber"),
        regression_data,
        ("mae", "mse", "r2"),
    ),
    "segmentation": Case(
        lambda: lk.SegmentationModule(lk.models.UNet(3, 3, base=8, depth=2), 3),
        _segmentation_data,
        ("iou", "dice"),
        epochs=10,
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]


def test_training_lowers_the_loss(case, fast_trainer_kwargs):
    dm = lk.data.DataModule(case.make_data(), val_split=0.25, batch_size=16)
    module = case.make_module()
    module.optimizer_factory = lk.optim.adam(lr=1e-2)
    trainer = lk.make_trainer(max_epochs=case.epochs, logger=False, **fast_trainer_kwargs)
    before = trainer.validate(module, datamodule=dm, verbose=False)[0]["val/loss"]
    trainer.fit(module, datamodule=dm)
    after = trainer.callback_metrics["val/loss"]
    assert after < 0.8 * before, (before, after)
    assert {f"val/{m}" for m in case.metrics} <= set(trainer.callback_metrics)
    for m in case.metrics:
        assert math.isfinite(trainer.callback_metrics[f"val/{m}"])


def test_checkpoint_reloads_to_identical_outputs(case, fast_trainer_kwargs):
    dm = lk.data.DataModule(case.make_data(), val_split=0.25, batch_size=32)
    module = case.make_module()
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=dm)
    path = trainer.checkpoint_callback.best_model_path
    torch.load(path, weights_only=True)  # plain-data hyperparameters
    reloaded = type(module).load_from_checkpoint(path).eval()
    x = case.make_data().tensors[0][:8]
    module.eval()
    torch.testing.assert_close(reloaded(x), module(x), rtol=0, atol=0)
    torch.testing.assert_close(reloaded.predict_step(x, 0), module.predict_step(x, 0))


def test_predictions_are_the_natural_output(case):
    module = case.make_module().eval()
    x = case.make_data().tensors[0][:5]
    out = module.predict_step(x, 0)
    if isinstance(module, lk.ClassificationModule | lk.SegmentationModule):
        torch.testing.assert_close(out.sum(dim=1), torch.ones_like(out.sum(dim=1)))
    elif isinstance(module, lk.BinaryClassificationModule):
        assert out.shape == (5,) and ((out >= 0) & (out <= 1)).all()
    elif isinstance(module, lk.MultilabelClassificationModule):
        assert out.shape == (5, 4) and ((out >= 0) & (out <= 1)).all()
    else:
        torch.testing.assert_close(out, module(x))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "preds", "target", "message"),
    [
        (
            lambda: lk.BinaryClassificationModule(nn.Identity()),
            torch.zeros(4, 3),
            torch.zeros(4),
            r"BinaryClassificationModule: the net must output one logit per sample \(shape N or N×1\), got \(4, 3\)",
        ),
        (
            lambda: lk.MultilabelClassificationModule(nn.Identity(), 5),
            torch.zeros(4, 3),
            torch.zeros(4, 3),
            r"logits of shape N×5 \(num_labels=5\), got \(4, 3\)",
        ),
        (
            lambda: lk.RegressionModule(nn.Identity()),
            torch.zeros(4, 1),
            torch.zeros(4),
            r"net outputs \(4, 1\) and targets \(4,\) must have the same shape; the net outputs N×1",
        ),
        (
            lambda: lk.SegmentationModule(nn.Identity(), 3),
            torch.zeros(2, 3, 16, 16),
            torch.zeros(2, 8, 8, dtype=torch.long),
            r"masks must be N×H×W matching the logits \(2, 3, 16, 16\), i.e. \(2, 16, 16\), got masks of shape \(2, 8, 8\)",
        ),
        (
            lambda: lk.SegmentationModule(nn.Identity(), 3),
            torch.zeros(2, 4, 16, 16),
            torch.zeros(2, 16, 16, dtype=torch.long),
            r"logits of shape N×3×H×W \(num_classes=3\), got \(2, 4, 16, 16\)",
        ),
    ],
)
def test_wrong_shapes_are_named(module, preds, target, message):
    with pytest.raises(ValueError, match=message):
        module().compute_loss(preds, target)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: lk.SegmentationModule(nn.Identity(), 1),
            "num_classes must be an integer >= 2, got 1",
        ),
        (
            lambda: lk.MultilabelClassificationModule(nn.Identity(), 1),
            "num_labels must be an integer >= 2",
        ),
        (
            lambda: lk.SegmentationModule(nn.Identity(), 3, loss="focal"),
            "loss must be one of 'ce\\+dice', 'ce', 'dice'",
        ),
        (
            lambda: lk.SegmentationModule(nn.Identity(), 3, ignore_index=1),
            "ignore_index must be None or an integer outside",
        ),
        (
            lambda: lk.RegressionModule(nn.Identity(), loss="mae"),
            "loss must be one of 'mse', 'l1', 'huber', got 'mae'",
        ),
        (
            lambda: lk.BinaryClassificationModule(nn.Identity(), pos_weight=-1),
            r"pos_weight must be a number in \(0, inf\)",
        ),
        (
            lambda: lk.BinaryClassificationModule(nn.Identity(), threshold=1.5),
            r"threshold must be a number in \(0, 1\)",
        ),
    ],
)
def test_bad_task_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()
