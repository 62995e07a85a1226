"""Input checks shared by the task modules: each error names the task, the value and the batch."""

from __future__ import annotations

from typing import Any

import torch

from lightkit._validation import check_float, check_int


def first_bad_value(
    owner: str, target: torch.Tensor, bad: torch.Tensor, stage: str, batch_idx: int, expected: str
) -> ValueError | None:
    """A ValueError naming the first ``target`` element where ``bad`` holds, or None if none does."""
    if not bool(bad.any()):
        return None
    position = bad.nonzero()[0]
    where = int(position[0]) if position.numel() == 1 else tuple(position.tolist())
    value = target[tuple(position.tolist())].item()
    what = "label" if not target.is_floating_point() else "target"
    return ValueError(
        f"{owner}: {what} {value} at position {where} of {stage} batch {batch_idx} is invalid; "
        f"expected {expected}"
    )


def check_num_classes(owner: str, value: Any, name: str) -> None:
    check_int(owner, name, value)  # a TypeError for a non-integer (a str, a float, a bool)
    if value < 2:
        hint = (
            " (use BinaryClassificationModule for a single logit)" if name == "num_classes" else ""
        )
        raise ValueError(f"{owner}: {name} must be an integer >= 2, got {value!r}{hint}")


def check_threshold(owner: str, threshold: Any) -> None:
    check_float(owner, "threshold", threshold, 0.0, 1.0, min_inclusive=False, max_inclusive=False)


def check_integer_labels(owner: str, target: Any, stage: str, batch_idx: int) -> None:
    if not isinstance(target, torch.Tensor):
        raise TypeError(
            f"{owner}: labels must be a tensor, got {type(target).__name__} in {stage} batch {batch_idx}"
        )
    if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"{owner}: labels must be integer class indices, got dtype {target.dtype} "
            f"in {stage} batch {batch_idx}"
        )


def check_binary_targets(owner: str, target: Any, stage: str, batch_idx: int) -> None:
    if not isinstance(target, torch.Tensor):
        raise TypeError(
            f"{owner}: targets must be a tensor, got {type(target).__name__} in {stage} batch "
            f"{batch_idx}"
        )
    if target.is_complex():
        raise TypeError(f"{owner}: targets must be 0 or 1, got dtype {target.dtype}")
    error = first_bad_value(
        owner, target, (target != 0) & (target != 1), stage, batch_idx, "0 or 1 (int or float)"
    )
    if error:
        raise error


def check_class_labels(
    owner: str,
    target: Any,
    num_classes: int,
    stage: str,
    batch_idx: int,
    what: str = "labels",
    ignore_index: int | None = None,
) -> None:
    """Integer class labels in ``[0, num_classes)`` (or ``ignore_index``), else a clear error."""
    check_integer_labels(owner, target, stage, batch_idx)
    if labels_in_range(target, num_classes):
        return
    bad = (target < 0) | (target >= num_classes)
    expected = f"{what} in [0, {num_classes}) (num_classes={num_classes})"
    if ignore_index is not None:
        bad &= target != ignore_index
        expected += f" or ignore_index={ignore_index}"
    error = first_bad_value(owner, target, bad, stage, batch_idx, expected)
    if error:
        raise error


def labels_in_range(target: torch.Tensor, num_classes: int) -> bool:
    """Fast check that every label is in ``[0, num_classes)``: one reduction, two scalars."""
    if target.numel() == 0:
        return True
    low, high = torch.aminmax(target)
    return int(low) >= 0 and int(high) < num_classes
