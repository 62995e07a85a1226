"""Class imbalance for the classification tasks: class weights ("balanced" or given) and focal loss."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lightkit._validation import check_float, short_repr


def check_class_weights(owner: str, name: str, value: Any, count: int) -> str | list[float] | None:
    """None, ``"balanced"``, or ``count`` finite positive weights (a list, tensor or numpy
    array) as a list."""
    if value is None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, torch.Tensor)):
        value = value.tolist()  # a numpy array
    if isinstance(value, str):
        if value == "balanced":
            return value
        raise ValueError(
            f"{owner}: {name} must be None, 'balanced' or {count} weights, got {value!r}"
        )
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().flatten().tolist()
    if (
        not isinstance(value, (list, tuple))
        or len(value) != count
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in value
        )
    ):
        raise ValueError(
            f"{owner}: {name} must be None, 'balanced' or {count} positive finite weights (one "
            f"per class), got {short_repr(value)}"
        )
    return [float(v) for v in value]


def check_focal_gamma(owner: str, value: Any) -> float:
    return check_float(owner, "focal_gamma", value, 0.0, 10.0)


def training_targets(module: Any, owner: str, name: str) -> torch.Tensor | None:
    """The training targets of the module's lightkit data module (for ``"balanced"`` weights),
    or None (with a warning) when there is none to count: the loss is then unweighted."""
    trainer = getattr(module, "_trainer", None)
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    count = getattr(datamodule, "train_targets", None)
    if not callable(count):
        warnings.warn(
            f"{owner}: {name}='balanced' counts the training labels of a lightkit data module "
            "(trainer.fit(module, datamodule=lk.data.DataModule(...))), and there is none here: "
            "the loss is unweighted. With other data, pass the weights themselves",
            stacklevel=4,
        )
        return None
    return count()


class LossWeights:
    """Per-class (or per-label) loss weights: given ones, or ``"balanced"`` ones counted on the
    training split of each fit's lightkit data module (once per trainer), as a float32 tensor.

    Kept out of the module's buffers: weight averaging and state dicts treat buffers as model
    state, and these are a property of the data.
    """

    def __init__(
        self,
        values: str | list[float] | None,
        count: Callable[[torch.Tensor], list[float]],
        name: str,
    ) -> None:
        self.values = values
        self.count = count  # targets -> weights, for "balanced"
        self.name = name  # the argument, for messages
        self.tensor: torch.Tensor | None = None
        self._counted_for: int | None = None  # id() of the trainer whose data was counted

    def get(self, module: Any, like: torch.Tensor) -> torch.Tensor | None:
        """The weights on ``like``'s device and dtype; None for none (or nothing counted)."""
        if self.values == "balanced":
            if self._counted_for != id(module._trainer):
                self._counted_for = id(module._trainer)
                targets = training_targets(module, module._name, self.name)
                counted = self.count(targets) if targets is not None else None
                self.tensor = torch.tensor(counted, dtype=torch.float32) if counted else None
        elif self.values is not None and self.tensor is None:
            self.tensor = torch.tensor(self.values, dtype=torch.float32)
        if self.tensor is None:
            return None
        return self.tensor.to(device=like.device, dtype=like.dtype)


def balanced_class_weights(targets: torch.Tensor, num_classes: int, owner: str) -> list[float]:
    """scikit-learn's "balanced": ``n_samples / (n_classes * count)`` per class (1 for a class
    with no training sample)."""
    labels = targets.long().flatten()
    if targets.is_floating_point() or targets.ndim != 1:
        raise ValueError(
            f"{owner}: class_weights='balanced' needs one integer label per training sample, "
            f"got targets of shape {tuple(targets.shape)} ({targets.dtype})"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise ValueError(
            f"{owner}: the training split holds label {bad}, outside [0, {num_classes}) "
            f"(num_classes={num_classes})"
        )
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes].double()
    total = float(counts.sum())
    return [total / (num_classes * c) if c > 0 else 1.0 for c in counts.tolist()]


def balanced_pos_weights(targets: torch.Tensor) -> list[float]:
    """Per label (column), ``negatives / positives`` (1 for a label never or always present)."""
    t = targets.reshape(targets.shape[0], -1).double()
    positives, negatives = t.sum(0), (1 - t).sum(0)
    return [
        n / p if p > 0 and n > 0 else 1.0
        for p, n in zip(positives.tolist(), negatives.tolist(), strict=True)
    ]


def multiclass_loss(
    preds: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    gamma: float,
    label_smoothing: float,
) -> torch.Tensor:
    """Cross-entropy, class-weighted (a weighted mean, as ``nn.CrossEntropyLoss``), with the focal
    term ``(1 - p_t) ** gamma`` when ``gamma > 0``."""
    soft = target.is_floating_point()
    if gamma == 0 and not (soft and weight is not None):
        return F.cross_entropy(preds, target, weight=weight, label_smoothing=label_smoothing)
    losses = F.cross_entropy(
        preds, target, weight=weight, label_smoothing=label_smoothing, reduction="none"
    )
    probs = preds.float().softmax(-1)
    if soft:  # soft targets (MixUp, CutMix): the expected p_true and the expected weight
        p_true = (probs * target.float()).sum(1)
        per_sample = target.float() @ weight.float() if weight is not None else None
    else:
        p_true = probs.gather(1, target[:, None]).squeeze(1)
        per_sample = weight[target] if weight is not None else None
    if gamma:
        losses = (1 - p_true).pow(gamma).to(losses.dtype) * losses
    if per_sample is None:
        return losses.mean()
    return losses.sum() / per_sample.sum().to(losses.dtype)


def binary_loss(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None, gamma: float
) -> torch.Tensor:
    """BCE with logits (``pos_weight`` per label), with the focal term when ``gamma > 0``."""
    if gamma == 0:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    losses = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none"
    )
    p = logits.float().sigmoid()
    p_true = p * target + (1 - p) * (1 - target)
    return ((1 - p_true).pow(gamma).to(losses.dtype) * losses).mean()


__all__ = [
    "LossWeights",
    "balanced_class_weights",
    "balanced_pos_weights",
    "binary_loss",
    "check_class_weights",
    "check_focal_gamma",
    "multiclass_loss",
    "training_targets",
]
