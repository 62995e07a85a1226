"""K-fold cross-validation: KFoldDataModule for one fold and cross_validate() over all of them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from lightkit._validation import check_bool, check_instance, check_int, check_seed, short_repr
from lightkit.data._splits import fold_indices
from lightkit.data.datamodule import _DATASET, DataModule, Transform, _check_dataset


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

    Example:
        >>> dm = lk.data.KFoldDataModule(dataset, k=5, fold=2)
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
    ) -> None:
        name = type(self).__name__
        _check_dataset(name, "dataset", dataset)
        if dataset is None:
            raise TypeError(f"{name}: dataset must be {_DATASET}, got None")
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
        folds = fold_indices(n, k, self.seed, _labels(dataset) if stratify else None)
        self.val_indices = folds[fold]
        self.train_indices = sorted(i for j, f in enumerate(folds) if j != fold for i in f)
        self.train = Subset(dataset, self.train_indices)
        self.val = Subset(dataset, self.val_indices)


def cross_validate(
    make_module: Callable[[], L.LightningModule],
    dataset: Dataset,
    k: int = 5,
    batch_size: int = 32,
    trainer_kwargs: dict[str, Any] | None = None,
    stratify: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a fresh module on each of ``k`` folds and report validation metrics per fold.

    Each fold builds its module with ``make_module()``, trains it with
    ``lk.make_trainer(**trainer_kwargs)`` and validates its best checkpoint. A table of the folds,
    their mean and their standard deviation is printed.

    Args:
        make_module: Returns a new, untrained module (called once per fold).
        dataset: A map-style dataset of ``(input, label)`` samples.
        k: Number of folds.
        batch_size: Samples per batch.
        trainer_kwargs: Keywords for :func:`lightkit.make_trainer` (``max_epochs``, ...).
        stratify: Keep class proportions in each fold.
        seed: Seed of the folds (and, unless ``trainer_kwargs`` has one, of training).

    Returns:
        ``{"folds": [{"val/loss": ..., "val/acc": ...}, ...], "mean": {...}, "std": {...}}``.

    Example:
        >>> result = lk.cross_validate(
        ...     lambda: lk.ClassificationModule(lk.models.MLP(64, 10), 10),
        ...     dataset, k=5, trainer_kwargs={"max_epochs": 10})
        >>> result["mean"]["val/acc"]
    """
    from lightkit.trainer import make_trainer

    owner = "cross_validate"
    if not callable(make_module):
        raise TypeError(
            f"{owner}: make_module must be a callable that returns a new module, got "
            f"{short_repr(make_module)} ({type(make_module).__name__})"
        )
    _check_dataset(owner, "dataset", dataset)
    if dataset is None:
        raise TypeError(f"{owner}: dataset must be {_DATASET}, got None")
    k = check_int(owner, "k", k, minimum=2)
    check_bool(owner, "stratify", stratify)
    seed = check_seed(owner, "seed", seed)
    if trainer_kwargs is not None:
        check_instance(
            owner, "trainer_kwargs", trainer_kwargs, Mapping, "a dict of make_trainer keywords"
        )
    kwargs = {"seed": seed, "enable_progress_bar": False, **(trainer_kwargs or {})}
    folds: list[dict[str, float]] = []
    for fold in range(k):
        datamodule = KFoldDataModule(
            dataset, k=k, fold=fold, stratify=stratify, batch_size=batch_size, seed=seed
        )
        L.seed_everything(kwargs["seed"], verbose=False)  # the same initial weights in every fold
        module = make_module()
        if not isinstance(module, L.LightningModule):
            raise TypeError(
                f"{owner}: make_module() must return a new LightningModule (a lightkit task such "
                f"as lk.ClassificationModule), got {short_repr(module)} ({type(module).__name__})"
            )
        trainer = make_trainer(**kwargs)
        trainer.fit(module, datamodule=datamodule)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.validate(
            module, datamodule=datamodule, ckpt_path=best or None, verbose=False
        )[0]
        folds.append({key: float(v) for key, v in sorted(results.items())})
    keys = sorted(set().union(*folds))
    mean = {key: sum(f[key] for f in folds) / k for key in keys}
    std = {
        key: math.sqrt(sum((f[key] - mean[key]) ** 2 for f in folds) / max(1, k - 1))
        for key in keys
    }
    print(_table(folds, mean, std, keys))
    return {"folds": folds, "mean": mean, "std": std}


def _table(folds: list[dict[str, float]], mean: dict, std: dict, keys: list[str]) -> str:
    width = max(10, *(len(key) for key in keys)) + 2
    lines = ["fold".ljust(6) + "".join(key.rjust(width) for key in keys)]
    for i, fold in enumerate(folds):
        lines.append(str(i).ljust(6) + "".join(f"{fold[key]:.4f}".rjust(width) for key in keys))
    lines.append("mean".ljust(6) + "".join(f"{mean[key]:.4f}".rjust(width) for key in keys))
    lines.append("std".ljust(6) + "".join(f"{std[key]:.4f}".rjust(width) for key in keys))
    return "\n".join(lines)


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


__all__ = ["KFoldDataModule", "cross_validate"]
