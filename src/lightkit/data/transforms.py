"""torchvision.transforms.v2 presets for training and evaluation, for images and image+mask pairs.

Both presets take a PIL image or tensor (or an ``(image, tv_tensors.Mask)`` pair) and return a
normalized float tensor (and the mask, moved by the same geometric transform, with nearest-
neighbour interpolation and untouched values)::

    train_tf = lk.data.transforms.train_preset(224)
    eval_tf = lk.data.transforms.eval_preset(224)
    image, mask = train_tf(image, tv_tensors.Mask(mask))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

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
) -> v2.Compose:
    """Training augmentation: random resized crop (or resize), flip, rotation, colour jitter.

    Args:
        image_size: Output size (an int for square images, or ``(height, width)``).
        mean: Per-channel mean for normalization (ImageNet's by default; see
            :func:`lightkit.data.compute_mean_std` for your own data).
        std: Per-channel std for normalization.
        hflip: Random horizontal flips.
        rotation: Maximum rotation in degrees (0 disables it).
        color_jitter: Brightness, contrast and saturation jitter strength (0 disables it).
        random_resized_crop: Crop a random 60-100% area and resize it; else resize and centre crop.

    Example:
        >>> tf = lk.data.transforms.train_preset(64, mean=(0.5,), std=(0.25,), rotation=0)
        >>> tf(PIL.Image.new("L", (80, 80))).shape
        torch.Size([1, 64, 64])
    """
    _check_size(image_size)
    ops: list[v2.Transform] = [v2.ToImage()]
    if random_resized_crop:
        ops.append(v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True))
    else:
        ops += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    if rotation:
        ops.append(v2.RandomRotation(rotation))
    if color_jitter:
        ops.append(
            v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter)
        )
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


def eval_preset(
    image_size: int | tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Evaluation transform: resize (shorter side), centre crop, scale to [0, 1], normalize.

    Example:
        >>> tf = lk.data.transforms.eval_preset(224)
    """
    _check_size(image_size)
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(image_size, antialias=True),
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


def _check_size(image_size: object) -> None:
    ok = isinstance(image_size, int) and not isinstance(image_size, bool) and image_size > 0
    if isinstance(image_size, (tuple, list)):
        ok = len(image_size) == 2 and all(isinstance(s, int) and s > 0 for s in image_size)
    if not ok:
        raise ValueError(
            f"image_size must be a positive int or a (height, width) pair, got {image_size!r}"
        )
