"""CONTRIBUTING.md's recipes, followed to the letter: a toy task and a toy callback get everything the
built-in ones get (metrics, figures, diagnose, Predictor) without touching any other module."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

import lightkit as lk
from helpers import make_blobs, quiet_trainer, tiny_datamodule, tiny_net
from lightkit._lightning import skip_unused_step_hooks
from lightkit.outputs import DescribedTask


# --- "Adding a task" -------------------------------------------------------------------------------
class FocalClassificationModule(lk.TaskModule):
    """Multiclass classification with the focal loss: ``N×C`` logits against ``N`` labels.

    Args:
        net: Maps a batch to ``N×num_classes`` logits.
        num_classes: Number of classes.
        gamma: Focusing parameter (0 is cross-entropy).
        optimizer: ``params -> Optimizer``.
    """

    def __init__(
        self, net: nn.Module, num_classes: int, gamma: float = 2.0, optimizer: Any = None
    ) -> None:
        super().__init__(net, optimizer=optimizer)
        self.num_classes = num_classes  # after super().__init__(): metrics are built later
        self.gamma = gamma

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.ndim != 2 or preds.shape[1] != self.num_classes:
            raise ValueError(f"expected N×{self.num_classes} logits, got {tuple(preds.shape)}")
        log_p = F.log_softmax(preds, -1).gather(1, target[:, None]).squeeze(1)
        return (-((1 - log_p.exp()) ** self.gamma) * log_p).mean()

    def build_metrics(self) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(self.num_classes, average="micro")})

    def task_outputs(self) -> lk.TaskOutputs:
        return lk.TaskOutputs("multiclass", num_classes=self.num_classes)

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return preds.softmax(-1)


def test_a_task_added_by_the_recipe_gets_metrics_figures_diagnose_and_predictor(tmp_path):
    trainer = quiet_trainer(tmp_path, max_epochs=3)
    module = FocalClassificationModule(tiny_net(), num_classes=3, optimizer=lk.optim.adam(lr=1e-2))
    trainer.fit(module, datamodule=tiny_datamodule())
    assert trainer.callback_metrics["val/acc"] > 0.9
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "val/confusion_matrix" in events.Tags()["images"]  # figures read task_outputs()

    report = lk.diagnose(
        FocalClassificationModule(tiny_net(), num_classes=3),
        tiny_datamodule(),
        overfit_steps=20,
        lr_test=False,
        default_root_dir=tmp_path / "diagnose",
    )
    assert any("label counts" in str(f) for f in report.findings)  # read from task_outputs()

    path = trainer.checkpoint_callback.best_model_path
    predictor = lk.Predictor.from_checkpoint(path, trust=[__name__], net=tiny_net())
    probs = predictor.predict(make_blobs(5).tensors[0])
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5))


# --- "Adding a callback" ---------------------------------------------------------------------------
@skip_unused_step_hooks
class PredictedClassCounts(Callback):
    """Counts the predicted classes of each validation epoch (from the step outputs)."""

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.counts = None

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if not isinstance(pl_module, DescribedTask) or not isinstance(outputs, dict):
            return
        described = pl_module.task_outputs()
        predicted = described.predicted(outputs["preds"])
        if predicted is not None:
            counts = torch.bincount(predicted.flatten(), minlength=described.num_classes)
            self.counts = counts if self.counts is None else self.counts + counts


def test_a_callback_added_by_the_recipe_reads_step_outputs(tmp_path):
    counter = PredictedClassCounts()
    assert counter.on_train_batch_end is None  # skipped by Lightning every step
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False, callbacks=[counter])
    trainer.fit(lk.ClassificationModule(tiny_net(), num_classes=3), datamodule=tiny_datamodule())
    assert counter.counts is not None and int(counter.counts.sum()) == 64  # every val sample
