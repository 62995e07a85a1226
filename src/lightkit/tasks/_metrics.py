"""MicroAccuracy: multiclass accuracy that shares its states with macro F1 (one update for both)."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.classification import MulticlassAccuracy


class MicroAccuracy(MulticlassAccuracy):
    """Multiclass accuracy (the fraction of samples predicted right) kept as per-class counts.

    ``MulticlassAccuracy(average="micro")`` counts hits in one number; this one keeps
    torchmetrics' per-class true positives and false negatives (the states of ``average="macro"``)
    and sums them in :meth:`compute`, which gives the same value. With the same states as
    ``MulticlassF1Score(average="macro")``, a ``MetricCollection`` holding both updates them once
    per batch instead of twice.
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, average="macro", **kwargs)

    def compute(self) -> torch.Tensor:
        hits, total = self.tp.sum(), (self.tp + self.fn).sum()
        return hits / total.clamp(min=1)


__all__ = ["MicroAccuracy"]
