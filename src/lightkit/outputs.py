"""TaskOutputs: what a task's raw net outputs mean, for the code that reads them without knowing the task.

Figures, ``lk.diagnose`` and serving never ask "is this a ClassificationModule?". They ask the
module: every :class:`~lightkit.TaskModule` answers :meth:`~lightkit.TaskModule.task_outputs`
with a :class:`TaskOutputs`, and a user's own task gets the same figures and checks as the
built-in ones by returning the right one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from lightkit._validation import check_choice, check_float, check_int

KINDS = ("multiclass", "binary", "multilabel", "segmentation", "values")


@dataclass(frozen=True)
class TaskOutputs:
    """What a task's raw net outputs (the ``preds`` its steps see) mean.

    Kinds:
        * ``"multiclass"``: ``N×C`` logits, one class per sample;
        * ``"binary"``: ``N`` (or ``N×1``) logits of the positive class;
        * ``"multilabel"``: ``N×L`` logits, each label present or not on its own;
        * ``"segmentation"``: ``N×C×H×W`` logits, one class per pixel;
        * ``"values"``: anything else (regression, your own outputs): no classes.

    Args:
        kind: One of the kinds above.
        num_classes: Classes (multiclass, segmentation), labels (multilabel), 2 for binary;
            None for ``"values"``.
        threshold: Probability above which a binary or multilabel output counts as positive.

    Example:
        >>> class MyTask(lk.TaskModule):
        ...     def task_outputs(self):
        ...         return lk.TaskOutputs("multiclass", num_classes=10)
    """

    kind: str = "values"
    num_classes: int | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        check_choice("TaskOutputs", "kind", self.kind, KINDS)
        if self.kind == "values":
            if self.num_classes is not None:
                raise ValueError(
                    f"TaskOutputs: kind='values' has no classes; num_classes must be None, "
                    f"got {self.num_classes!r}"
                )
        else:
            check_int("TaskOutputs", "num_classes", self.num_classes, minimum=2)
        check_float(
            "TaskOutputs",
            "threshold",
            self.threshold,
            0.0,
            1.0,
            min_inclusive=False,
            max_inclusive=False,
        )

    @property
    def per_sample_class(self) -> bool:
        """Whether each sample gets one class (multiclass, binary): a confusion matrix applies."""
        return self.kind in ("multiclass", "binary")

    def predicted(self, preds: torch.Tensor) -> torch.Tensor | None:
        """Hard predictions from raw outputs: a class per sample (multiclass, binary: 0/1), per
        pixel (segmentation), a 0/1 per label (multilabel); None for ``"values"``."""
        if self.kind == "multiclass":
            return preds.argmax(-1)
        if self.kind == "segmentation":
            return preds.argmax(1)
        if self.kind == "binary":
            logits = preds.squeeze(1) if preds.ndim == 2 and preds.shape[1] == 1 else preds
            return (logits.sigmoid() > self.threshold).long()
        if self.kind == "multilabel":
            return (preds.sigmoid() > self.threshold).long()
        return None


CALIBRATED_KINDS = ("multiclass", "binary", "multilabel")  # kinds a temperature applies to


def scale_logits(described: TaskOutputs, raw: torch.Tensor, temperature: float) -> torch.Tensor:
    """Raw outputs under a temperature (``lk.calibrate``), such that no hard prediction changes.

    Multiclass logits are divided by it (the argmax stays). Binary and multilabel logits are
    scaled around the decision threshold's logit ``b = logit(threshold)``: ``(z - b) / T + b``,
    so a probability stays on its side of the threshold (for the usual 0.5, ``b = 0``: ``z / T``).
    Other kinds have no temperature: ``raw`` is returned as it is.

    Example:
        >>> described = lk.TaskOutputs("multiclass", num_classes=3)
        >>> lk.outputs.scale_logits(described, torch.tensor([[2.0, 0.0, -2.0]]), temperature=2.0)
        tensor([[ 1.,  0., -1.]])
    """
    if described.kind == "multiclass":
        return raw / temperature
    if described.kind in ("binary", "multilabel"):
        bias = math.log(described.threshold / (1 - described.threshold))
        return (raw - bias) / temperature + bias
    return raw


@runtime_checkable
class DescribedTask(Protocol):
    """What lightkit's callbacks and workflows need of a module: every TaskModule has it.

    Example:
        >>> isinstance(module, lk.outputs.DescribedTask)  # a runtime-checkable Protocol
        True
        >>> module.task_outputs()
        TaskOutputs(kind='multiclass', num_classes=3, threshold=0.5)
    """

    def task_outputs(self) -> TaskOutputs: ...

    def unpack_batch(self, batch: Any) -> tuple[Any, Any]: ...


__all__ = ["CALIBRATED_KINDS", "KINDS", "DescribedTask", "TaskOutputs", "scale_logits"]
