"""Datasets over files: labelled image files, image/mask pairs for segmentation, and image folders."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_MODES = ("RGB", "L")
_BAD_FILE = ("error", "skip")

PathLike = str | os.PathLike[str]


class BadImageError(ValueError):
    """An image or mask file that cannot be decoded (truncated, corrupt or not an image)."""


def load_image(path: PathLike, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image file, converted to ``mode`` (``"RGB"`` or ``"L"``).

    Raises:
        BadImageError: naming the file, when it is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode) if mode and img.mode != mode else img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot read image file {os.fspath(path)!r}: {err}") from err


def _check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def _drop_bad_files(owner: str, columns: list[list[Any]], path_columns: Sequence[int], mode: str):
    """Decode every file up front; drop the rows with a bad file and warn with the first paths."""
    bad: list[str] = []
    keep = []
    for row in zip(*columns, strict=True):
        try:
            for c in path_columns:
                load_image(row[c], mode if c == path_columns[0] else "")
        except BadImageError:
            bad.append(os.fspath(row[path_columns[0]]))
            continue
        keep.append(row)
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        warnings.warn(
            f"{owner}: skipped {len(bad)} unreadable file(s) (on_bad_file='skip'): {shown}",
            stacklevel=3,
        )
    return [list(col) for col in zip(*keep, strict=True)] if keep else [[] for _ in columns]


class ImageFileDataset(Dataset):
    """Images loaded from files with PIL, with optional integer labels.

    A sample is ``(image, label)`` (or the image alone when ``labels`` is None). Without a
    ``transform`` the image is a float tensor ``C×H×W`` in ``[0, 1]``; with one, it is whatever
    the transform returns for a PIL image (the presets in :mod:`lightkit.data.transforms` return
    normalized tensors).

    Args:
        paths: Image file paths.
        labels: One integer label per path, or None.
        transform: Applied to each PIL image.
        mode: ``"RGB"`` (3 channels) or ``"L"`` (grayscale, 1 channel).
        on_bad_file: ``"error"`` (default): reading a truncated or non-image file raises an error
            naming it. ``"skip"``: every file is decoded once up front and unreadable ones are
            dropped, with a warning giving their count and the first few paths.

    Example:
        >>> ds = lk.data.ImageFileDataset(["a.png", "b.jpg"], [0, 1], mode="L")
        >>> image, label = ds[0]
    """

    def __init__(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int] | None = None,
        transform: Callable[[Any], Any] | None = None,
        mode: str = "RGB",
        on_bad_file: str = "error",
    ) -> None:
        _check_choice("ImageFileDataset", "mode", mode, _MODES)
        _check_choice("ImageFileDataset", "on_bad_file", on_bad_file, _BAD_FILE)
        paths = list(paths)
        if labels is not None:
            labels = [int(label) for label in labels]
            if len(labels) != len(paths):
                raise ValueError(
                    f"ImageFileDataset: got {len(paths)} paths but {len(labels)} labels; "
                    "expected one label per path"
                )
        if on_bad_file == "skip":
            columns = [paths, labels] if labels is not None else [paths]
            kept = _drop_bad_files("ImageFileDataset", columns, [0], mode)
            paths = kept[0]
            labels = kept[1] if labels is not None else None
        self.paths = paths
        self.labels = labels
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        image = load_image(self.paths[index], self.mode)
        sample = self.transform(image) if self.transform else _to_float_tensor(image)
        if self.labels is None:
            return sample
        return sample, self.labels[index]


class SegmentationDataset(Dataset):
    """Paired image and mask files for semantic segmentation.

    Masks are single-channel images whose pixel values are class indices (PNG in mode ``"L"``
    or ``"P"``). A sample is ``(image, mask)``: with no ``transform``, a float ``C×H×W`` tensor in
    ``[0, 1]`` and a long ``H×W`` tensor. A ``transform`` is called as ``transform(image, mask)``
    with a ``tv_tensors.Image`` and a ``tv_tensors.Mask``, so torchvision v2 applies the same
    geometric transform to both (masks with nearest-neighbour interpolation) and colour
    transforms to the image only; the presets in :mod:`lightkit.data.transforms` work as they are.

    Image and mask sizes are compared when the dataset is built (from the file headers, which is
    cheap), so a mismatched pair is reported before training starts, naming both files.

    Args:
        images: Image file paths.
        masks: Mask file paths, one per image.
        transform: ``(image, mask) -> (image, mask)``.
        mode: ``"RGB"`` or ``"L"`` for the images.
        on_bad_file: ``"error"`` or ``"skip"`` (see :class:`ImageFileDataset`).

    Example:
        >>> ds = lk.data.SegmentationDataset(images, masks, lk.data.transforms.train_preset(128))
    """

    def __init__(
        self,
        images: Sequence[PathLike],
        masks: Sequence[PathLike],
        transform: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        mode: str = "RGB",
        on_bad_file: str = "error",
    ) -> None:
        _check_choice("SegmentationDataset", "mode", mode, _MODES)
        _check_choice("SegmentationDataset", "on_bad_file", on_bad_file, _BAD_FILE)
        images, masks = list(images), list(masks)
        if len(images) != len(masks):
            raise ValueError(
                f"SegmentationDataset: got {len(images)} images but {len(masks)} masks; "
                "expected one mask per image"
            )
        if on_bad_file == "skip":
            images, masks = _drop_bad_files("SegmentationDataset", [images, masks], [0, 1], mode)
        for image_path, mask_path in zip(images, masks, strict=True):
            image_size, mask_size = _header_size(image_path), _header_size(mask_path)
            if image_size != mask_size:
                raise ValueError(
                    f"SegmentationDataset: mask {os.fspath(mask_path)!r} is {mask_size[0]}×"
                    f"{mask_size[1]} but its image {os.fspath(image_path)!r} is {image_size[0]}×"
                    f"{image_size[1]} (width×height); they must match"
                )
        self.images = images
        self.masks = masks
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = tv_tensors.Image(TF.pil_to_tensor(load_image(self.images[index], self.mode)))
        mask_img = load_image(self.masks[index], "")
        if mask_img.mode not in ("L", "P", "I", "I;16"):
            raise BadImageError(
                f"mask file {os.fspath(self.masks[index])!r} is a {mask_img.mode} image; expected "
                "one channel of class indices (PNG mode L, P or I). Convert colour-coded masks to "
                "class indices first"
            )
        mask = tv_tensors.Mask(torch.from_numpy(np.array(mask_img, dtype=np.int64)))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        else:
            image = TF.to_dtype(image, torch.float32, scale=True)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def find_image_folder(root: PathLike) -> tuple[list[str], list[Path], list[int]]:
    """Scan ``root/<class_name>/*.{png,jpg,jpeg,bmp,webp}``.

    Returns:
        ``(class_names, paths, labels)`` with classes sorted by name and labels indexing them.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class folders, an empty class folder, or no images at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder root {os.fspath(root)!r} does not exist or is not a folder"
        )
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ValueError(
            f"image folder {os.fspath(root)!r} has no class folders; expected "
            f"root/<class_name>/*{{{','.join(IMAGE_EXTENSIONS)}}}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise ValueError(
                f"class folder {os.fspath(class_dir)!r} has no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images"
            )
        paths += files
        labels += [label] * len(files)
    return [d.name for d in class_dirs], paths, labels


def compute_mean_std(
    dataset: Dataset, max_samples: int | None = None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a dataset's images (``C×H×W`` tensors, or ``(image, ...)``).

    Use it on the training split, without normalization in its transform, and pass the result
    to the presets in :mod:`lightkit.data.transforms`.

    Args:
        dataset: A map-style dataset of image tensors or ``(image, target)`` samples.
        max_samples: Use only the first ``max_samples`` samples (None: all).

    Example:
        >>> mean, std = lk.data.compute_mean_std(lk.data.ImageFileDataset(paths))
        >>> tf = lk.data.transforms.train_preset(64, mean=mean, std=std)
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("compute_mean_std: the dataset is empty")
    total = total_sq = None
    count = 0
    for i in range(n if max_samples is None else min(n, max_samples)):
        sample = dataset[i]
        image = sample[0] if isinstance(sample, (tuple, list)) else sample
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            raise TypeError(
                f"compute_mean_std: sample {i} is not a C×H×W tensor (got "
                f"{type(image).__name__}{'' if not isinstance(image, torch.Tensor) else tuple(image.shape)})"
            )
        pixels = image.double().flatten(1)
        total = pixels.sum(1) if total is None else total + pixels.sum(1)
        total_sq = (pixels**2).sum(1) if total_sq is None else total_sq + (pixels**2).sum(1)
        count += pixels.shape[1]
    assert total is not None and total_sq is not None
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def _header_size(path: PathLike) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot read image file {os.fspath(path)!r}: {err}") from err


def _to_float_tensor(image: Image.Image) -> torch.Tensor:
    return TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)


__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "ImageFileDataset",
    "SegmentationDataset",
    "compute_mean_std",
    "find_image_folder",
    "load_image",
]
