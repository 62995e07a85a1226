"""KFoldDataModule: one fold of a seeded, optionally stratified k-fold split (cross_validate trains them all)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from lightkit._validation import check_bool, check_int
from lightkit.data._checks import DATASET_EXPECTED, check_dataset
from lightkit.data._splits import fold_indices, group_fold_indices
from lightkit.data.datamodule import DataModule, Transform


class KFoldDataModule(DataModule):
    """Fold ``fold`` of ``k``: that fold validates, the other ``k - 1`` train.

    Folds are seeded, disjoint and cover the dataset; with ``stratify`` each fold keeps the class
    proportions (labels are read from a ``TensorDataset``'s second tensor, a ``targets`` or
    ``labels`` attribute, or the second element of each sample).

    Args:
        dataset: A map-style dataset of ``(input, label)`` samples.
        k: Number of folds (at least 2).
        fold: Which fold validates, in ``[0, k)``.
        stratify: Keep class proportions in each fold.
        batch_size: Samples per batch.
        seed: Seed of the folds and of the shuffle order.
        num_workers: DataLoader workers, or ``"auto"``.
        train_transform: Applied to training inputs.
        eval_transform: Applied to validation inputs.
        groups: One group id per sample (a patient, a site, a recording: any hashable value).
            Group k-fold: every group lies whole in one fold, so no group is on both sides of a
            split; folds are balanced by size (largest groups first, each to the smallest fold),
            not by class (``stratify`` is then not used). Needs at least ``k`` groups.

    Example:
        >>> dm = lk.data.KFoldDataModule(my_dataset, k=4, fold=1, batch_size=32)  # 96 samples
        >>> dm.setup("fit")
        >>> len(dm.train_dataloader()), len(dm.val_dataloader())  # 72 train, 24 validate
        (3, 1)
        >>> patients = [i // 4 for i in range(len(my_dataset))]  # four samples per patient
        >>> dm = lk.data.KFoldDataModule(my_dataset, k=4, fold=1, groups=patients)
    """

    def __init__(
        self,
        dataset: Dataset,
        k: int = 5,
        fold: int = 0,
        stratify: bool = True,
        batch_size: int = 32,
        seed: int = 0,
        num_workers: int | str = "auto",
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        groups: Sequence[Hashable] | None = None,
    ) -> None:
        name = type(self).__name__
        check_dataset(name, "dataset", dataset)
        if dataset is None:
            raise TypeError(f"{name}: dataset must be {DATASET_EXPECTED}, got None")
        k = check_int(name, "k", k, minimum=2)
        fold = check_int(name, "fold", fold, minimum=0, maximum=k - 1)
        check_bool(name, "stratify", stratify)
        super().__init__(
            None,
            val_split=0.0,
            batch_size=batch_size,
            num_workers=num_workers,
            train_transform=train_transform,
            eval_transform=eval_transform,
            seed=seed,
        )
        n = len(dataset)  # type: ignore[arg-type]
        if n < k:
            raise ValueError(f"{name}: {n} samples cannot make k={k} folds")
        self.dataset = dataset
        self.k = k
        self.fold = fold
        self.stratify = stratify
        self.groups = _checked_groups(name, groups, n, k) if groups is not None else None
        if self.groups is not None:
            folds = group_fold_indices(self.groups, k, self.seed)
            self.stratify = False  # group folds balance sizes, not classes
        else:
            folds = fold_indices(n, k, self.seed, _labels(dataset) if stratify else None)
        self.val_indices = folds[fold]
        self.train_indices = sorted(i for j, f in enumerate(folds) if j != fold for i in f)
        self.train = Subset(dataset, self.train_indices)
        self.val = Subset(dataset, self.val_indices)


def _checked_groups(name: str, groups: Any, n: int, k: int) -> list[Hashable]:
    """``groups`` (a list, tuple, numpy array, pandas Series or tensor) as a list of ``n``
    hashable ids, none missing (None or NaN), with at least ``k`` distinct values."""
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__len__"):
        raise TypeError(
            f"{name}: groups must be a sequence with one group id per sample (a list, array or "
            f"Series), got {type(groups).__name__}"
        )
    if getattr(groups, "ndim", 1) != 1:
        raise ValueError(
            f"{name}: groups must be one-dimensional (one id per sample), got shape "
            f"{tuple(groups.shape)}"
        )
    values = groups.tolist() if hasattr(groups, "tolist") else list(groups)
    if len(values) != n:
        raise ValueError(
            f"{name}: groups has {len(values)} ids for {n} samples; give one per sample"
        )
    for i, value in enumerate(values):
        missing = value is None or (value != value)
        if missing or not isinstance(value, Hashable):
            raise TypeError(
                f"{name}: groups[{i}] is {value!r}; group ids must be hashable and not missing "
                "(None or NaN)"
            )
    distinct = len(set(values))
    if distinct < k:
        raise ValueError(f"{name}: {distinct} distinct groups cannot make k={k} group folds")
    return values


def _labels(dataset: Any) -> list[int]:
    """One integer class label per sample, for stratification; a clear error otherwise."""
    values: Any = None
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        values = dataset.tensors[1]
    for attr in ("targets", "labels"):
        if values is None:
            values = getattr(dataset, attr, None)
    if values is None:
        values = [dataset[i][1] for i in range(len(dataset))]
    labels = []
    for i, value in enumerate(values):
        label = value
        if isinstance(value, torch.Tensor):
            label = value.item() if value.numel() == 1 and not value.is_floating_point() else None
        if not isinstance(label, int) or isinstance(label, bool):
            raise ValueError(
                f"KFoldDataModule: stratify=True needs one integer class label per sample, but "
                f"sample {i} has target {value!r}; pass stratify=False for regression, "
                "multilabel or segmentation targets"
            )
        labels.append(label)
    return labels


__all__ = ["KFoldDataModule"]


def __getattr__(name: str) -> Any:
    # Deprecated alias (0.x): cross_validate moved to lightkit.cross_validation (lk.cross_validate).
    if name == "cross_validate":
        import warnings

        warnings.warn(
            "lightkit.data.kfold.cross_validate moved to lightkit.cross_validation; use "
            "lk.cross_validate",
            DeprecationWarning,
            stacklevel=2,
        )
        from lightkit.cross_validation import cross_validate  # layering: deprecated alias

        return cross_validate
    raise AttributeError(f"module 'lightkit.data.kfold' has no attribute {name!r}")
