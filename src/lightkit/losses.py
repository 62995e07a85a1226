"""Losses that torch does not ship: soft multiclass Dice and Dice combined with cross-entropy."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from lightkit._validation import check_float, check_instance

_IGNORE = "an integer target value to ignore, or None"


class DiceLoss(nn.Module):
    """Soft multiclass Dice loss for segmentation: ``1 - mean_c dice_c``.

    ``logits`` are ``N×C×...`` (any number of spatial dimensions) and ``target`` holds integer
    class indices of shape ``N×...``. Probabilities come from a softmax over ``C``. Pixels equal
    to ``ignore_index`` count for nothing. Classes absent from both the target and the prediction
    score a Dice of 1 thanks to ``smooth``.

    Args:
        ignore_index: Target value to ignore (for example 255 for "void"), or None.
        smooth: Added to numerator and denominator; keeps empty classes finite.

    Example:
        >>> loss = lk.losses.DiceLoss(ignore_index=255)
        >>> target = torch.tensor([[[0, 1], [2, 255]]])  # one 2×2 mask; 255: void
        >>> perfect = nn.functional.one_hot(target.clamp(max=2), 3).movedim(-1, 1) * 20.0
        >>> loss(perfect, target)  # N×C×H×W logits, N×H×W class indices
        tensor(0.)
        >>> loss(torch.zeros(1, 3, 2, 2), target)  # uniform guesses
        tensor(0.4444)
    """

    def __init__(self, ignore_index: int | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        if ignore_index is not None:
            check_instance("DiceLoss", "ignore_index", ignore_index, numbers.Integral, _IGNORE)
        check_float("DiceLoss", "smooth", smooth, minimum=0.0)
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(
                "DiceLoss: expected logits N×C×... and an integer target N×... with the same "
                f"spatial size, got logits {tuple(logits.shape)} and target {tuple(target.shape)}"
            )
        num_classes = logits.shape[1]
        probs = logits.float().softmax(dim=1)
        valid = torch.ones_like(target, dtype=torch.bool)
        if self.ignore_index is not None:
            valid = target != self.ignore_index
            target = target.masked_fill(~valid, 0)
        one_hot = F.one_hot(target.long(), num_classes).movedim(-1, 1).to(probs.dtype)
        mask = valid.unsqueeze(1).to(probs.dtype)
        probs, one_hot = probs * mask, one_hot * mask
        dims = (0, *range(2, logits.ndim))
        intersection = (probs * one_hot).sum(dims)
        total = probs.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (total + self.smooth)
        return 1 - dice.mean()


class CEDiceLoss(nn.Module):
    """Cross-entropy plus soft Dice (equal weights): the usual default for semantic segmentation.

    Example:
        >>> loss = lk.losses.CEDiceLoss(ignore_index=255)
        >>> loss(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16)))
        tensor(...)
        >>> module = lk.SegmentationModule(lk.models.UNet(3, 3), 3, loss="ce+dice")  # the default
    """

    def __init__(self, ignore_index: int | None = None, dice_weight: float = 1.0) -> None:
        super().__init__()
        if ignore_index is not None:
            check_instance("CEDiceLoss", "ignore_index", ignore_index, numbers.Integral, _IGNORE)
        check_float("CEDiceLoss", "dice_weight", dice_weight, minimum=0.0)
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight
        self.dice = DiceLoss(ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ignore = -100 if self.ignore_index is None else self.ignore_index
        ce = F.cross_entropy(logits, target.long(), ignore_index=ignore)
        return ce + self.dice_weight * self.dice(logits, target)


__all__ = ["CEDiceLoss", "DiceLoss"]
