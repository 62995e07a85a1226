"""Classification tasks: multiclass (cross-entropy), binary and multilabel (BCE with logits)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)
from torchvision.transforms import v2

from lightkit._validation import check_float
from lightkit.outputs import TaskOutputs
from lightkit.tasks._checks import (
    check_binary_targets,
    check_class_labels,
    check_num_classes,
    check_threshold,
)
from lightkit.tasks._imbalance import (
    LossWeights,
    balanced_class_weights,
    balanced_pos_weights,
    binary_loss,
    check_class_weights,
    check_focal_gamma,
    multiclass_loss,
)
from lightkit.tasks._metrics import MicroAccuracy
from lightkit.tasks.base import OptimizerFactory, SchedulerFactory, TaskModule


class ClassificationModule(TaskModule):
    """Multiclass classification: ``N×C`` logits against ``N`` integer labels in ``[0, C)``.

    Loss: ``CrossEntropyLoss`` (optionally label-smoothed). Metrics: ``acc`` (accuracy) and ``f1``
    (macro F1), logged as ``val/acc``, ``val/f1``, ``test/acc``, ``test/f1``. ``predict_step``
    returns class probabilities. Labels are checked (see ``TaskModule.check_batch``): an
    out-of-range label raises a ``ValueError`` naming the value and the batch instead of an index
    error or a device-side assert from inside torch. Recommended optimizers: Adam (default) or
    SGD with momentum.

    Args:
        net: Any ``nn.Module`` mapping a batch of inputs to ``N×num_classes`` logits.
        num_classes: Number of classes (at least 2).
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        label_smoothing: Cross-entropy label smoothing in ``[0, 1)``.
        train_metrics: Also compute the metrics on training batches.
        compile: Run the net through ``torch.compile``.
        channels_last: Channels-last weights and 4-D inputs.
        gradient_checkpointing: Recompute activations in backward to save memory (these four
            as in :class:`~lightkit.TaskModule`).
        class_weights: For imbalanced classes: ``"balanced"`` (scikit-learn's rule, ``n_samples
            / (num_classes * count)`` per class, counted on the training split of the lightkit
            data module when training starts), one positive weight per class (a list or
            tensor), or None. The loss is the weighted mean, as ``nn.CrossEntropyLoss``'s.
        focal_gamma: Focal loss (Lin et al., 2017): each sample's loss is scaled by ``(1 -
            p_true) ** focal_gamma``, so confidently right samples count less; 0 (default) is
            plain cross-entropy. Metrics are unaffected by both.
        mixup: MixUp's ``alpha`` (torchvision's ``v2.MixUp``; 0.2 to 0.4 are usual), or 0 for
            none. Training image batches are mixed on the device and the loss uses the soft
            targets; metrics and the label checks use the hard labels.
        cutmix: CutMix's ``alpha`` (``v2.CutMix``; 1.0 is usual), or 0. With both, each batch
            gets one of the two at random.

    Example:
        >>> net = lk.models.ConvNet(in_channels=1, num_classes=10)
        >>> module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adam(lr=3e-3))
        >>> rare = lk.ClassificationModule(net, num_classes=10, class_weights="balanced")
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        num_classes: int,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        label_smoothing: float = 0.0,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
        class_weights: str | list[float] | torch.Tensor | None = None,
        focal_gamma: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ) -> None:
        name = type(self).__name__
        check_num_classes(name, num_classes, "num_classes")
        mixup = check_float(name, "mixup", mixup, 0.0, 10.0)
        cutmix = check_float(name, "cutmix", cutmix, 0.0, 10.0)
        check_float(name, "label_smoothing", label_smoothing, 0.0, 1.0, max_inclusive=False)
        class_weights = check_class_weights(name, "class_weights", class_weights, num_classes)
        focal_gamma = check_focal_gamma(name, focal_gamma)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_weights = class_weights
        self.focal_gamma = focal_gamma
        self.mixup, self.cutmix = mixup, cutmix
        self._loss_weights = LossWeights(
            class_weights,
            functools.partial(balanced_class_weights, num_classes=num_classes, owner=name),
            "class_weights",
        )
        super().__init__(
            net,
            optimizer=optimizer,
            scheduler=scheduler,
            train_metrics=train_metrics,
            compile=compile,
            channels_last=channels_last,
            gradient_checkpointing=gradient_checkpointing,
        )
        _set_mixer(self, mixup, cutmix, num_classes)

    def build_metrics(self) -> MetricCollection:
        # validate_args=False: check_batch validates labels; the metric's own checks would sync
        # with the device every step. Both metrics keep the same per-class counts, so the
        # collection updates them once per batch (a torchmetrics compute group).
        kwargs = {"num_classes": self.num_classes, "validate_args": False}
        return MetricCollection(
            {
                "acc": MicroAccuracy(**kwargs),
                "f1": MulticlassF1Score(average="macro", **kwargs),
            }
        )

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.ndim != 2 or preds.shape[1] != self.num_classes:
            raise ValueError(
                f"{self._name}: the net must output logits of shape N×{self.num_classes} "
                f"(num_classes={self.num_classes}), got {tuple(preds.shape)}"
            )
        soft = target.shape == preds.shape and target.is_floating_point()  # MixUp, CutMix
        if target.shape != preds.shape[:1] and not soft:
            raise ValueError(
                f"{self._name}: expected one integer label per sample (shape ({preds.shape[0]},)), "
                f"got target of shape {tuple(target.shape)}"
            )
        if self.class_weights is None and self.focal_gamma == 0:
            return F.cross_entropy(preds, target, label_smoothing=self.label_smoothing)
        weight = self._loss_weights.get(self, preds)
        return multiclass_loss(preds, target, weight, self.focal_gamma, self.label_smoothing)

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        check_class_labels(self._name, target, self.num_classes, stage, batch_idx)

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return preds.softmax(dim=-1)

    def task_outputs(self) -> TaskOutputs:
        return TaskOutputs("multiclass", num_classes=self.num_classes)


class BinaryClassificationModule(TaskModule):
    """Binary classification: one logit per sample (``N`` or ``N×1``) against 0/1 targets.

    Loss: ``BCEWithLogitsLoss`` (with ``pos_weight`` for imbalanced data). Metrics: ``acc``, ``f1``
    (at ``threshold``) and ``auroc``. Targets may be integers or floats, but must be 0 or 1.
    ``predict_step`` returns the probability of the positive class (shape ``N``). Recommended
    optimizer: Adam (default).

    Args:
        net: Any ``nn.Module`` mapping a batch to ``N`` or ``N×1`` logits.
        pos_weight: Weight of positive samples in the loss (for example ``n_negative /
            n_positive``), ``"balanced"`` (exactly that, counted on the training split of the
            lightkit data module when training starts), or None.
        threshold: Probability above which a sample is predicted positive (for ``acc``, ``f1``).
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        train_metrics: Also compute the metrics on training batches.
        compile: Run the net through ``torch.compile``.
        channels_last: Channels-last weights and 4-D inputs.
        gradient_checkpointing: Recompute activations in backward to save memory (these four
            as in :class:`~lightkit.TaskModule`).
        focal_gamma: Focal loss: each sample's loss scaled by ``(1 - p_true) ** focal_gamma``
            (0: plain BCE).

    Example:
        >>> module = lk.BinaryClassificationModule(lk.models.MLP(30, 1), pos_weight=2.0)
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        pos_weight: float | None = None,
        threshold: float = 0.5,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
        focal_gamma: float = 0.0,
    ) -> None:
        name = type(self).__name__
        if pos_weight is not None and pos_weight != "balanced":
            if isinstance(pos_weight, str):
                raise TypeError(
                    f"{name}: pos_weight must be a positive number, 'balanced' or None, got "
                    f"{pos_weight!r}"
                )
            check_float(name, "pos_weight", pos_weight, 0.0, min_inclusive=False)
        check_threshold(name, threshold)
        focal_gamma = check_focal_gamma(name, focal_gamma)
        self.threshold = threshold
        self.focal_gamma = focal_gamma
        self.balanced = pos_weight == "balanced"
        super().__init__(
            net,
            optimizer=optimizer,
            scheduler=scheduler,
            train_metrics=train_metrics,
            compile=compile,
            channels_last=channels_last,
            gradient_checkpointing=gradient_checkpointing,
        )
        fixed = pos_weight is not None and not self.balanced
        weight = torch.tensor(float(pos_weight)) if fixed else None  # type: ignore[arg-type]
        self.register_buffer("pos_weight", weight, persistent=False)
        # "balanced": counted from the data (see LossWeights); a given one is a buffer, as before.
        self._balanced_weight = LossWeights(
            "balanced" if self.balanced else None,
            _one_label_pos_weight,
            "pos_weight",
        )

    def build_metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "acc": BinaryAccuracy(threshold=self.threshold, validate_args=False),
                "f1": BinaryF1Score(threshold=self.threshold, validate_args=False),
                "auroc": BinaryAUROC(validate_args=False),
            }
        )

    def _logits(self, preds: torch.Tensor) -> torch.Tensor:
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds.squeeze(1)
        if preds.ndim != 1:
            raise ValueError(
                f"{self._name}: the net must output one logit per sample (shape N or N×1), got "
                f"{tuple(preds.shape)}; for more classes use ClassificationModule or "
                "MultilabelClassificationModule"
            )
        return preds

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self._logits(preds)
        target = _flat_target(self._name, target, logits)
        counted = self._balanced_weight.get(self, logits)
        pos_weight = counted[0] if counted is not None else self.pos_weight
        return binary_loss(logits, target.to(logits.dtype), pos_weight, self.focal_gamma)

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
        logits = self._logits(preds)
        return logits.sigmoid(), _flat_target(self._name, target, logits).long()

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        check_binary_targets(self._name, target, stage, batch_idx)

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return self._logits(preds).sigmoid()

    def task_outputs(self) -> TaskOutputs:
        return TaskOutputs("binary", num_classes=2, threshold=self.threshold)


class MultilabelClassificationModule(TaskModule):
    """Multilabel classification: ``N×L`` logits against ``N×L`` 0/1 targets (labels independent).

    Loss: ``BCEWithLogitsLoss`` over every label. Metrics: ``f1`` (macro over labels), ``acc``
    (macro over labels) and ``map`` (mean average precision). ``predict_step`` returns per-label
    probabilities.

    Args:
        net: Any ``nn.Module`` mapping a batch to ``N×num_labels`` logits.
        num_labels: Number of labels (at least 2).
        threshold: Probability above which a label is predicted present (for ``acc``, ``f1``).
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        train_metrics: Also compute the metrics on training batches.
        compile: Run the net through ``torch.compile``.
        channels_last: Channels-last weights and 4-D inputs.
        gradient_checkpointing: Recompute activations in backward to save memory (these four
            as in :class:`~lightkit.TaskModule`).
        class_weights: The weight of each label's positives in the loss (BCE's ``pos_weight``):
            ``"balanced"`` (``negatives / positives`` per label, counted on the training split
            of the lightkit data module when training starts), one positive weight per label,
            or None.
        focal_gamma: Focal loss: each label's loss scaled by ``(1 - p_true) ** focal_gamma``
            (0: plain BCE).
        mixup: MixUp's ``alpha`` for training image batches (0: none): images and their label
            vectors are mixed alike; metrics and label checks use the original 0/1 labels.
        cutmix: CutMix's ``alpha`` (0: none); the label vectors mix by the pasted area.

    Example:
        >>> module = lk.MultilabelClassificationModule(lk.models.MLP(16, 5), num_labels=5)
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        num_labels: int,
        threshold: float = 0.5,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
        class_weights: str | list[float] | torch.Tensor | None = None,
        focal_gamma: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ) -> None:
        name = type(self).__name__
        mixup = check_float(name, "mixup", mixup, 0.0, 10.0)
        cutmix = check_float(name, "cutmix", cutmix, 0.0, 10.0)
        check_num_classes(name, num_labels, "num_labels")
        check_threshold(name, threshold)
        class_weights = check_class_weights(name, "class_weights", class_weights, num_labels)
        focal_gamma = check_focal_gamma(name, focal_gamma)
        self.num_labels = num_labels
        self.threshold = threshold
        self.class_weights = class_weights
        self.focal_gamma = focal_gamma
        self._loss_weights = LossWeights(class_weights, balanced_pos_weights, "class_weights")
        self.mixup, self.cutmix = mixup, cutmix
        super().__init__(
            net,
            optimizer=optimizer,
            scheduler=scheduler,
            train_metrics=train_metrics,
            compile=compile,
            channels_last=channels_last,
            gradient_checkpointing=gradient_checkpointing,
        )
        _set_mixer(self, mixup, cutmix, None)

    def build_metrics(self) -> MetricCollection:
        kwargs = {"num_labels": self.num_labels, "validate_args": False}
        return MetricCollection(
            {
                "f1": MultilabelF1Score(average="macro", threshold=self.threshold, **kwargs),
                "acc": MultilabelAccuracy(average="macro", threshold=self.threshold, **kwargs),
                "map": MultilabelAveragePrecision(average="macro", **kwargs),
            }
        )

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.ndim != 2 or preds.shape[1] != self.num_labels:
            raise ValueError(
                f"{self._name}: the net must output logits of shape N×{self.num_labels} "
                f"(num_labels={self.num_labels}), got {tuple(preds.shape)}"
            )
        if target.shape != preds.shape:
            raise ValueError(
                f"{self._name}: expected targets of shape N×{self.num_labels} like the logits "
                f"{tuple(preds.shape)}, got {tuple(target.shape)}"
            )
        if self.class_weights is None and self.focal_gamma == 0:
            return F.binary_cross_entropy_with_logits(preds, target.to(preds.dtype))
        weight = self._loss_weights.get(self, preds)
        return binary_loss(preds, target.to(preds.dtype), weight, self.focal_gamma)

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
        return preds.sigmoid(), target.long()

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        check_binary_targets(self._name, target, stage, batch_idx)

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        return preds.sigmoid()

    def task_outputs(self) -> TaskOutputs:
        return TaskOutputs("multilabel", num_classes=self.num_labels, threshold=self.threshold)


def _one_label_pos_weight(targets: torch.Tensor) -> list[float]:
    return balanced_pos_weights(targets.reshape(-1, 1))


def _set_mixer(module: TaskModule, mixup: float, cutmix: float, num_classes: int | None) -> None:
    """torchvision's MixUp / CutMix (one at random when both are on) for training batches;
    ``num_classes=None``: the targets are already label vectors (multilabel), mixed as given."""
    mixers = [
        mix(alpha=alpha, num_classes=num_classes)
        for mix, alpha in ((v2.MixUp, mixup), (v2.CutMix, cutmix))
        if alpha > 0
    ]
    if mixers:
        mixer = mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
        object.__setattr__(module, "_mixer", mixer)  # not a submodule: no weights, no state


def _flat_target(owner: str, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    if target.ndim == 2 and target.shape[1] == 1:
        target = target.squeeze(1)
    if target.shape != logits.shape:
        raise ValueError(
            f"{owner}: expected one 0/1 target per sample (shape ({logits.shape[0]},) or "
            f"({logits.shape[0]}, 1)), got target of shape {tuple(target.shape)}"
        )
    return target


__all__ = [
    "BinaryClassificationModule",
    "ClassificationModule",
    "MultilabelClassificationModule",
]
