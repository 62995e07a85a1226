"""Classification tasks: multiclass (cross-entropy) with accuracy and macro F1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from lightkit.tasks.base import OptimizerFactory, SchedulerFactory, TaskModule


class ClassificationModule(TaskModule):
    """Multiclass classification: ``N×C`` logits against ``N`` integer labels in ``[0, C)``.

    Loss: ``CrossEntropyLoss`` (optionally label-smoothed). Metrics: ``acc`` (accuracy) and ``f1``
    (macro F1), logged as ``val/acc``, ``val/f1``, ``test/acc``, ``test/f1``. ``predict_step``
    returns class probabilities. Labels are checked (see ``TaskModule.check_batch``): an
    out-of-range label raises a ``ValueError`` naming the value and the batch instead of an index
    error or a device-side assert from inside torch.

    Args:
        net: Any ``nn.Module`` mapping a batch of inputs to ``N×num_classes`` logits.
        num_classes: Number of classes (at least 2).
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        label_smoothing: Cross-entropy label smoothing in ``[0, 1)``.
        train_metrics: Also compute the metrics on training batches.

    Example:
        >>> net = lk.models.ConvNet(in_channels=1, num_classes=10)
        >>> module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adam(lr=3e-3))
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        num_classes: int,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        label_smoothing: float = 0.0,
        train_metrics: bool = False,
    ) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(
                f"{type(self).__name__}: num_classes must be an integer >= 2, got {num_classes!r}"
                " (use BinaryClassificationModule for a single logit)"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"{type(self).__name__}: label_smoothing must be in [0, 1), got {label_smoothing!r}"
            )
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        super().__init__(net, optimizer=optimizer, scheduler=scheduler, train_metrics=train_metrics)

    def build_metrics(self) -> MetricCollection:
        # validate_args=False: check_batch validates labels; the metric's own
        # checks would sync with the device every step.
        kwargs = {"num_classes": self.num_classes, "validate_args": False}
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(average="micro", **kwargs),
                "f1": MulticlassF1Score(average="macro", **kwargs),
            }
        )

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.ndim != 2 or preds.shape[1] != self.num_classes:
            raise ValueError(
                f"{self._name}: the net must output logits of shape N×{self.num_classes} "
                f"(num_classes={self.num_classes}), got {tuple(preds.shape)}"
            )
        if target.shape != preds.shape[:1]:
            raise ValueError(
                f"{self._name}: expected one integer label per sample (shape ({preds.shape[0]},)), "
                f"got target of shape {tuple(target.shape)}"
            )
        return F.cross_entropy(preds, target, label_smoothing=self.label_smoothing)

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        if not isinstance(target, torch.Tensor):
            raise TypeError(
                f"{self._name}: labels must be a tensor, got {type(target).__name__} "
                f"in {stage} batch {batch_idx}"
            )
        if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
            raise TypeError(
                f"{self._name}: labels must be integer class indices, got dtype {target.dtype} "
                f"in {stage} batch {batch_idx}"
            )
        if target.numel() == 0:
            return
        lo, hi = torch.aminmax(target)
        if lo < 0 or hi >= self.num_classes:
            bad = target[(target < 0) | (target >= self.num_classes)]
            position = int(((target < 0) | (target >= self.num_classes)).nonzero()[0, 0])
            raise ValueError(
                f"{self._name}: label {int(bad[0])} at position {position} of {stage} batch "
                f"{batch_idx} is out of range; expected labels in [0, {self.num_classes}) "
                f"(num_classes={self.num_classes})"
            )

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return preds.softmax(dim=-1)


__all__ = ["ClassificationModule"]
