"""torchvision.transforms.v2 presets for training and evaluation, for images and image+mask pairs.

Both presets take a PIL image or tensor (or an ``(image, tv_tensors.Mask)`` pair) and return a
normalized float tensor (and the mask, moved by the same geometric transform, with nearest-
neighbour interpolation and untouched values)::

    train_tf = lk.data.transforms.train_preset(224)
    eval_tf = lk.data.transforms.eval_preset(224)
    image, mask = train_tf(image, tv_tensors.Mask(mask))
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from lightkit._validation import check_bool, check_float, check_sequence, short_repr

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "eval_preset", "train_preset"]


def train_preset(
    image_size: int | tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    hflip: bool = True,
    rotation: float = 15,
    color_jitter: float = 0.2,
    random_resized_crop: bool = True,
    auto_augment: str | None = None,
    random_erasing: float = 0.0,
) -> v2.Compose:
    """Training augmentation: random resized crop (or resize), flip, rotation, colour jitter,
    and optionally an automatic augmentation policy and random erasing.

    Args:
        image_size: Output size (an int for square images, or ``(height, width)``).
        mean: Per-channel mean for normalization (ImageNet's by default; see
            :func:`lightkit.data.compute_mean_std` for your own data).
        std: Per-channel std for normalization.
        hflip: Random horizontal flips.
        rotation: Maximum rotation in degrees (0 disables it).
        color_jitter: Brightness, contrast and saturation jitter strength (0 disables it).
        random_resized_crop: Crop a random 60-100% area and resize it; else resize and centre crop.
        auto_augment: An automatic augmentation policy from torchvision, applied after the
            colour jitter on the 8-bit image: ``"rand"`` (``RandAugment``), ``"trivial"``
            (``TrivialAugmentWide``), ``"augmix"`` (``AugMix``; for classification only: it mixes
            augmented copies, which a segmentation mask cannot follow), or None.
        random_erasing: Probability of erasing a random rectangle of the normalized image
            (``RandomErasing``, as in timm's recipes), in ``[0, 1]``; 0 disables it.

    Example:
        >>> from PIL import Image
        >>> tf = lk.data.transforms.train_preset(64, mean=(0.5,), std=(0.25,), rotation=0)
        >>> tf(Image.new("L", (80, 80))).shape
        torch.Size([1, 64, 64])
    """
    owner = "train_preset"
    image_size = _check_size(owner, image_size)
    mean, std = _check_mean_std(owner, mean, std)
    check_bool(owner, "hflip", hflip)
    rotation = check_float(owner, "rotation", rotation, 0.0, 180.0)
    color_jitter = check_float(owner, "color_jitter", color_jitter, minimum=0.0)
    check_bool(owner, "random_resized_crop", random_resized_crop)
    if auto_augment is not None and auto_augment not in _AUTO_AUGMENT:
        raise ValueError(
            f"{owner}: auto_augment must be None or one of {sorted(_AUTO_AUGMENT)}, got "
            f"{short_repr(auto_augment)}"
        )
    random_erasing = check_float(owner, "random_erasing", random_erasing, 0.0, 1.0)
    ops: list[v2.Transform] = [v2.ToImage()]
    if random_resized_crop:
        ops.append(v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True))
    else:
        ops += [
            v2.Resize(image_size, antialias=True, max_size=_max_side(image_size)),
            v2.CenterCrop(image_size),
        ]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    if rotation:
        ops.append(v2.RandomRotation(rotation))
    if color_jitter:
        ops.append(
            v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter)
        )
    if auto_augment is not None:
        ops.append(_AUTO_AUGMENT[auto_augment]())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if random_erasing:
        ops.append(v2.RandomErasing(p=random_erasing))
    return v2.Compose(ops)


_AUTO_AUGMENT = {"rand": v2.RandAugment, "trivial": v2.TrivialAugmentWide, "augmix": v2.AugMix}


def eval_preset(
    image_size: int | tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Evaluation transform: resize (shorter side), centre crop, scale to [0, 1], normalize.

    Example:
        >>> from PIL import Image
        >>> tf = lk.data.transforms.eval_preset(32)
        >>> tf(Image.new("RGB", (80, 60))).shape  # resized, centre-cropped, normalized
        torch.Size([3, 32, 32])
    """
    image_size = _check_size("eval_preset", image_size)
    mean, std = _check_mean_std("eval_preset", mean, std)
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(image_size, antialias=True, max_size=_max_side(image_size)),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    # Plain data that rebuilds this transform: checkpoints record it for lk.Predictor.
    transform.lightkit_spec = {  # type: ignore[attr-defined]
        "class_path": "lightkit.data.transforms.eval_preset",
        "init_args": {
            "image_size": list(image_size) if isinstance(image_size, (tuple, list)) else image_size,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
        },
    }
    return transform


def _check_size(owner: str, image_size: object) -> int | tuple[int, int]:
    expected = "a positive int or a (height, width) pair of them"
    pair = isinstance(image_size, (tuple, list))
    values = list(image_size) if pair else [image_size]  # type: ignore[arg-type]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise TypeError(
            f"{owner}: image_size must be {expected}, got {short_repr(image_size)} "
            f"({type(image_size).__name__})"
        )
    if (pair and len(values) != 2) or any(v < 1 for v in values):
        raise ValueError(f"{owner}: image_size must be {expected}, got {image_size!r}")
    return (int(values[0]), int(values[1])) if pair else int(values[0])


def _check_mean_std(
    owner: str, mean: object, std: object
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel normalization statistics: finite means, finite positive stds, as many of each."""
    mean = check_sequence(owner, "mean", mean, check_float, min_length=1)
    positive = functools.partial(check_float, minimum=0.0, min_inclusive=False)
    std = check_sequence(owner, "std", std, positive, min_length=1)
    if len(mean) != len(std):
        raise ValueError(
            f"{owner}: mean and std need one value per channel each, got mean={mean!r} "
            f"({len(mean)}) and std={std!r} ({len(std)})"
        )
    return mean, std


def _max_side(image_size: int | Sequence[int]) -> int | None:
    """Resizing the shorter side of a very long image (a 50000×1 strip) must not blow up its
    longer side: past 8× the target, the longer side is bounded (``Resize(max_size=...)``)."""
    return 8 * image_size if isinstance(image_size, int) else None
