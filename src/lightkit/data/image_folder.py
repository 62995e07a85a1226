"""ImageFolderDataModule: ``root/<class_name>/*.png|jpg|...`` as stratified, augmented splits."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightkit._validation import check_bool
from lightkit.data._splits import split_indices
from lightkit.data.datamodule import DataModule
from lightkit.data.datasets import (
    BadImageError,
    ImageFileDataset,
    find_image_folder,
    verify_image_files,
)
from lightkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_preset, train_preset


class ImageFolderDataModule(DataModule):
    """Classification data from ``root/<class_name>/*.{png,jpg,jpeg,bmp,webp,tif,tiff}``.

    Classes are the sub-folders sorted by name (``class_names``; label ``i`` is
    ``class_names[i]``). Train, validation and test splits are stratified and seeded. Training
    images get :func:`~lightkit.data.transforms.train_preset` (when ``augment``), evaluation
    images :func:`~lightkit.data.transforms.eval_preset`. The folder is scanned when the module
    is built, so an empty class folder or a root without images is reported before training.

    Args:
        root: The folder holding one sub-folder per class.
        image_size: Side (or ``(height, width)``) of the images the net sees.
        val_split: Fraction of each class held out for validation.
        test_split: Fraction of each class held out for testing.
        batch_size: Samples per batch.
        augment: Random crops, flips, rotation and colour jitter on training images.
        mean: Per-channel normalization mean (ImageNet's for RGB; 0.5 for grayscale).
        std: Per-channel normalization std.
        mode: ``"RGB"`` or ``"L"`` (grayscale).
        num_workers: DataLoader workers, or ``"auto"``.
        seed: Seed of the splits, the shuffle order and the augmentation.
        on_bad_file: ``"error"`` or ``"skip"`` bad images: unreadable, possible decompression
            bombs, values out of range (see :class:`~lightkit.data.ImageFileDataset`). 16-bit
            and float images are scaled by their range (see
            :func:`lightkit.data.datasets.load_image`).
        verify_files: Scan every image's header (no pixels decoded; JPEGs must end with their
            end-of-image marker) at ``setup``, before any training, and raise one
            :class:`~lightkit.data.BadImageError` naming every bad file. Without it, a bad file is
            found when a batch first reads it, inside a DataLoader worker. (With
            ``on_bad_file="skip"`` every file is decoded when the module is built and the bad
            ones are dropped with a warning, so there is nothing left to verify.)
        auto_augment: ``None``, ``"rand"``, ``"trivial"`` or ``"augmix"``: an automatic
            augmentation policy for training images (see
            :func:`~lightkit.data.transforms.train_preset`).
        random_erasing: Probability of random erasing on training images.
        sampler: ``"balanced"``: draw training images with probability 1 / their class's count
            (see :class:`~lightkit.data.DataModule`).

    Example:
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> for name, colour in [("cat", "red"), ("dog", "blue")]:  # pets/cat/0.png, ...
        ...     Path("pets", name).mkdir(parents=True)
        ...     for i in range(5):
        ...         Image.new("RGB", (40, 40), colour).save(f"pets/{name}/{i}.png")
        >>> dm = lk.data.ImageFolderDataModule("pets", image_size=32, val_split=0.2)
        >>> dm.class_names
        ['cat', 'dog']
        >>> net = lk.models.ConvNet(in_channels=3, num_classes=len(dm.class_names))
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | tuple[int, int],
        val_split: float = 0.1,
        test_split: float = 0.0,
        batch_size: int = 32,
        augment: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        mode: str = "RGB",
        num_workers: int | str = "auto",
        seed: int = 0,
        on_bad_file: str = "error",
        verify_files: bool = False,
        auto_augment: str | None = None,
        random_erasing: float = 0.0,
        sampler: str | None = None,
    ) -> None:
        name = type(self).__name__
        check_bool(name, "verify_files", verify_files)
        if not isinstance(test_split, (int, float)) or not 0.0 <= test_split < 1.0:
            raise ValueError(f"{name}: test_split must be a fraction in [0, 1), got {test_split!r}")
        if mode not in ("RGB", "L"):
            raise ValueError(f"{name}: mode must be 'RGB' or 'L', got {mode!r}")
        channels = 3 if mode == "RGB" else 1
        mean = tuple(mean) if mean is not None else (IMAGENET_MEAN if channels == 3 else (0.5,))
        std = tuple(std) if std is not None else (IMAGENET_STD if channels == 3 else (0.5,))
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"{name}: mean and std need {channels} value(s) for mode={mode!r}, got {mean} and {std}"
            )
        if not augment and (auto_augment is not None or random_erasing):
            raise ValueError(
                f"{name}: auto_augment and random_erasing are training augmentations; they need "
                "augment=True"
            )
        train_tf = (
            train_preset(
                image_size, mean, std, auto_augment=auto_augment, random_erasing=random_erasing
            )
            if augment
            else eval_preset(image_size, mean, std)
        )
        super().__init__(
            None,
            val_split=val_split,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            sampler=sampler,
        )
        self.root = root
        self.image_size = image_size
        self.test_split = float(test_split)
        self.mode = mode
        self.class_names, paths, labels = find_image_folder(root)
        test_idx, val_idx, train_idx = split_indices(
            len(paths), [self.test_split, self.val_split], seed, labels
        )
        if not train_idx:
            raise ValueError(f"{name}: the split leaves no training images in {os.fspath(root)!r}")
        eval_tf = eval_preset(image_size, mean, std)

        def dataset(idx: list[int], transform: object) -> ImageFileDataset | None:
            if not idx:
                return None
            return ImageFileDataset(
                [paths[i] for i in idx],
                [labels[i] for i in idx],
                transform=transform,  # type: ignore[arg-type]
                mode=mode,
                on_bad_file=on_bad_file,
            )

        # Each split carries its own transform, so augmentation never reaches evaluation.
        self.train = dataset(train_idx, train_tf)
        self.val = dataset(val_idx, eval_tf)
        self.test = dataset(test_idx, eval_tf)
        self.val_split = 0.0  # split above, stratified
        self.split_indices = {"train": train_idx, "val": val_idx, "test": test_idx}
        self._eval_tf = eval_tf
        self.verify_files = verify_files
        self.on_bad_file = on_bad_file
        # With on_bad_file="skip" every file was decoded above and the bad ones dropped.
        self._verified = not verify_files or on_bad_file == "skip"

    def setup(self, stage: str | None = None) -> None:
        if not self._verified:
            self._verify()
        super().setup(stage)

    def _verify(self) -> None:
        """The eager header scan of ``verify_files=True``, over every split."""
        paths = [p for ds in (self.train, self.val, self.test) if ds is not None for p in ds.paths]
        problems = [f"{path!r}: {why}" for path, why in verify_image_files(paths)]
        if problems:
            shown = "\n  ".join(problems[:20]) + (
                f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            )
            raise BadImageError(
                f"{type(self).__name__}: {len(problems)} bad image file(s) under "
                f"{os.fspath(self.root)!r} (verify_files=True); remove or replace them, or pass "
                f"on_bad_file='skip':\n  {shown}"
            )
        self._verified = True

    def inference_spec(self) -> dict[str, Any] | None:
        """The eval transform and image mode, recorded in checkpoints for ``lk.Predictor``."""
        return {"transform": self._eval_tf.lightkit_spec, "image_mode": self.mode}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


__all__ = ["ImageFolderDataModule"]
