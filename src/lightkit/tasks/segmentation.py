"""Semantic segmentation: per-pixel cross-entropy and/or Dice, with IoU and Dice metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from lightkit._validation import check_choice, check_int
from lightkit.losses import CEDiceLoss, DiceLoss
from lightkit.outputs import TaskOutputs
from lightkit.tasks._checks import check_class_labels, check_num_classes
from lightkit.tasks.base import OptimizerFactory, SchedulerFactory, TaskModule

_LOSSES = ("ce+dice", "ce", "dice")


class SegmentationModule(TaskModule):
    """Semantic segmentation: ``N×C×H×W`` logits against ``N×H×W`` integer masks.

    Loss: ``"ce+dice"`` (cross-entropy plus soft Dice, the default), ``"ce"`` or ``"dice"``.
    Metrics: ``iou`` (mean Jaccard index over classes) and ``dice`` (mean Dice, which is the
    per-pixel macro F1). Mask pixels equal to ``ignore_index`` are left out of the loss and the
    metrics. ``predict_step`` returns per-pixel class probabilities (``N×C×H×W``). Recommended
    optimizer: Adam (default).

    Args:
        net: Any ``nn.Module`` mapping ``N×channels×H×W`` images to ``N×num_classes×H×W`` logits,
            for example ``lk.models.UNet``.
        num_classes: Number of classes, background included (at least 2).
        loss: ``"ce+dice"``, ``"ce"`` or ``"dice"``.
        ignore_index: Mask value to ignore (for example 255), or None.
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        train_metrics: Also compute the metrics on training batches.
        compile: Run the net through ``torch.compile``.
        channels_last: Channels-last weights and 4-D inputs.
        gradient_checkpointing: Recompute activations in backward to save memory (these four
            as in :class:`~lightkit.TaskModule`).

    Example:
        >>> module = lk.SegmentationModule(lk.models.UNet(3, num_classes=3), num_classes=3)
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        num_classes: int,
        loss: str = "ce+dice",
        ignore_index: int | None = None,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        name = type(self).__name__
        check_num_classes(name, num_classes, "num_classes")
        check_choice(name, "loss", loss, _LOSSES)
        if ignore_index is not None:
            check_int(name, "ignore_index", ignore_index)  # TypeError for "255", 1.5, True
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(
                f"{name}: ignore_index must be None or an integer outside [0, {num_classes}), "
                f"got {ignore_index!r}"
            )
        self.num_classes = num_classes
        self.loss = loss
        self.ignore_index = ignore_index
        super().__init__(
            net,
            optimizer=optimizer,
            scheduler=scheduler,
            train_metrics=train_metrics,
            compile=compile,
            channels_last=channels_last,
            gradient_checkpointing=gradient_checkpointing,
        )
        if loss == "ce+dice":
            self.criterion: nn.Module | None = CEDiceLoss(ignore_index=ignore_index)
        elif loss == "dice":
            self.criterion = DiceLoss(ignore_index=ignore_index)
        else:
            self.criterion = None

    def build_metrics(self) -> MetricCollection:
        kwargs = {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "validate_args": False,
            "average": "macro",
        }
        return MetricCollection(
            {"iou": MulticlassJaccardIndex(**kwargs), "dice": MulticlassF1Score(**kwargs)}
        )

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.ndim != 4 or preds.shape[1] != self.num_classes:
            raise ValueError(
                f"{self._name}: the net must output logits of shape N×{self.num_classes}×H×W "
                f"(num_classes={self.num_classes}), got {tuple(preds.shape)}"
            )
        if target.shape != (preds.shape[0], *preds.shape[2:]):
            raise ValueError(
                f"{self._name}: masks must be N×H×W matching the logits "
                f"{tuple(preds.shape)}, i.e. {(preds.shape[0], *preds.shape[2:])}, got masks of "
                f"shape {tuple(target.shape)}"
            )
        if self.criterion is None:
            ignore = -100 if self.ignore_index is None else self.ignore_index
            return F.cross_entropy(preds, target.long(), ignore_index=ignore)
        return self.criterion(preds, target)

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        check_class_labels(
            self._name, target, self.num_classes, stage, batch_idx, "mask values", self.ignore_index
        )

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return preds.softmax(dim=1)

    def task_outputs(self) -> TaskOutputs:
        return TaskOutputs("segmentation", num_classes=self.num_classes)


__all__ = ["SegmentationModule"]
