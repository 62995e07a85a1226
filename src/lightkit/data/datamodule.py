"""DataModule: wraps map-style Datasets with seeded splits, per-split transforms and loader defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Sized
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split

Transform = Callable[[Any], Any]


class TransformedDataset(Dataset):
    """Applies ``transform`` to the input of each ``(input, target, ...)`` sample of ``dataset``.

    A sample that is not a tuple or list is treated as the input alone.
    """

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        if isinstance(sample, (tuple, list)):
            return (self.transform(sample[0]), *sample[1:])
        return self.transform(sample)


class DataModule(L.LightningDataModule):
    """A LightningDataModule around your own map-style ``Dataset`` objects.

    ``setup()`` splits ``train`` into train and validation (seeded) when no ``val`` is given, and
    wraps each split with its transform: ``train_transform`` for training only, ``eval_transform``
    for validation, test and predict, so a training augmentation never leaks into evaluation.
    Loaders shuffle only the training split, pin memory when CUDA is available and keep workers
    alive between epochs.

    Args:
        train: The training dataset (samples ``(input, target)``).
        val: A validation dataset; when None, ``val_split`` of ``train`` is held out.
        test: An optional test dataset.
        predict: An optional dataset for ``trainer.predict``.
        val_split: Fraction of ``train`` held out for validation when ``val`` is None, in
            ``[0, 1)``; 0 disables validation.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes, or ``"auto"``: none for in-memory tensors
            without a transform, else one per spare CPU core (at most 8).
        train_transform: Applied to each training input.
        eval_transform: Applied to each validation, test and predict input.
        seed: Seed of the train/val split and of the training shuffle order.

    Example:
        >>> dm = lk.data.DataModule(my_dataset, val_split=0.2, batch_size=64)
        >>> trainer.fit(module, datamodule=dm)
    """

    def __init__(
        self,
        train: Dataset | None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        predict: Dataset | None = None,
        val_split: float = 0.1,
        batch_size: int = 32,
        num_workers: int | str = "auto",
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"{name}: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(val_split, (int, float)) or not 0.0 <= val_split < 1.0:
            raise ValueError(f"{name}: val_split must be a fraction in [0, 1), got {val_split!r}")
        if num_workers != "auto" and (
            not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0
        ):
            raise ValueError(
                f"{name}: num_workers must be 'auto' or an integer >= 0, got {num_workers!r}"
            )
        for what, fn in (("train_transform", train_transform), ("eval_transform", eval_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name}: {what} must be callable or None, got {fn!r}")
        self.train = train
        self.val = val
        self.test = test
        self.predict = predict
        self.val_split = float(val_split)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.seed = seed
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Split and wrap the datasets (idempotent; called by the Trainer on every process)."""
        if self.train_dataset is not None:
            return
        train = self.train
        if train is None:
            raise ValueError(f"{type(self).__name__}: no train dataset was given")
        _check_not_empty(type(self).__name__, "train", train)
        val = self.val
        if val is None and self.val_split > 0:
            n_val = round(len(train) * self.val_split)  # type: ignore[arg-type]
            n_train = len(train) - n_val  # type: ignore[arg-type]
            if n_val < 1 or n_train < 1:
                raise ValueError(
                    f"{type(self).__name__}: val_split={self.val_split} of {len(train)} training "  # type: ignore[arg-type]
                    f"samples leaves {n_train} for training and {n_val} for validation; both "
                    "need at least one sample"
                )
            generator = torch.Generator().manual_seed(self.seed)
            train, val = random_split(train, [n_train, n_val], generator=generator)
        for what, ds in (("val", val), ("test", self.test), ("predict", self.predict)):
            if ds is not None:
                _check_not_empty(type(self).__name__, what, ds)
        self.train_dataset = _wrap(train, self.train_transform)
        self.val_dataset = _wrap(val, self.eval_transform)
        self.test_dataset = _wrap(self.test, self.eval_transform)
        self.predict_dataset = _wrap(self.predict, self.eval_transform)

    # --- loaders ---------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None and self.train_dataset is not None:
            return []  # no validation: Lightning skips the loop
        return self._loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, "predict")

    def _loader(self, dataset: Dataset | None, split: str, shuffle: bool = False) -> DataLoader:
        if dataset is None:
            if self.train_dataset is None:
                raise RuntimeError(
                    f"{type(self).__name__}: call setup() (the Trainer does) before asking for loaders"
                )
            raise ValueError(f"{type(self).__name__}: no {split} dataset was given")
        workers = self._resolve_workers(dataset)
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            generator=generator,
        )

    def _resolve_workers(self, dataset: Dataset) -> int:
        if self.num_workers != "auto":
            return int(self.num_workers)
        if _in_memory(dataset):
            return 0
        return min(8, max(0, (os.cpu_count() or 1) - 1))


def _wrap(dataset: Dataset | None, transform: Transform | None) -> Dataset | None:
    if dataset is None or transform is None:
        return dataset
    return TransformedDataset(dataset, transform)


def _in_memory(dataset: Dataset) -> bool:
    """True for tensors already in memory (possibly behind Subset) with no per-sample transform."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, TensorDataset)


def _check_not_empty(owner: str, what: str, dataset: Any) -> None:
    if not isinstance(dataset, Sized):
        raise TypeError(
            f"{owner}: {what} must be a map-style Dataset with __len__ and __getitem__, "
            f"got {type(dataset).__name__}"
        )
    if len(dataset) == 0:
        raise ValueError(f"{owner}: the {what} dataset is empty (0 samples)")


__all__ = ["DataModule", "TransformedDataset"]
