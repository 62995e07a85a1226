"""cross_validate(): train a fresh module on each fold of a k-fold split and report per-fold metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torch.utils.data import Dataset

from lightkit._validation import check_bool, check_instance, check_int, check_seed, short_repr
from lightkit.checkpointing import load_checkpoint
from lightkit.data import KFoldDataModule
from lightkit.data._checks import DATASET_EXPECTED, check_dataset
from lightkit.inference import Predictor
from lightkit.trainer import make_trainer


def cross_validate(
    make_module: Callable[[], L.LightningModule],
    dataset: Dataset,
    k: int = 5,
    batch_size: int = 32,
    trainer_kwargs: dict[str, Any] | None = None,
    stratify: bool = True,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
    return_oof: bool = False,
    return_ensemble: bool = False,
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
        groups: One group id per sample: group k-fold, every group whole in one fold (see
            :class:`~lightkit.data.KFoldDataModule`).
        return_oof: Also return out-of-fold predictions: every sample predicted (the task's
            natural output, ``predict_step``) by the best checkpoint of the one fold model that
            did not train on it, in dataset order.
        return_ensemble: Also return the fold models as one predictor (``"ensemble"``, an
            :class:`~lightkit.inference.EnsemblePredictor`): each fold's best checkpoint, their
            probabilities averaged.

    Returns:
        ``{"folds": [{"val/loss": ..., "val/acc": ...}, ...], "mean": {...}, "std": {...},
        "checkpoints": [<each fold's best checkpoint, or None>, ...]}``,
        and with ``return_oof`` also ``"oof"`` (a tensor, one row per sample in dataset order)
        and ``"oof_fold"`` (the fold that predicted each sample), and with ``return_ensemble``
        ``"ensemble"`` (the same as ``lk.Predictor.ensemble(result["checkpoints"])``).

    Example:
        >>> quick = {"max_epochs": 1, "logger": False, "enable_progress_bar": False,
        ...          "enable_model_summary": False}  # lk.make_trainer arguments
        >>> result = lk.cross_validate(
        ...     lambda: lk.ClassificationModule(lk.models.MLP(8, 3), 3),
        ...     my_dataset, k=2, trainer_kwargs=quick, return_ensemble=True)
        fold       val/acc      val/f1    val/loss
        ...
        mean    ...
        >>> sorted(result["mean"])
        ['val/acc', 'val/f1', 'val/loss']
        >>> result["ensemble"].predict(torch.randn(5, 8)).shape  # the fold models' mean probabilities
        torch.Size([5, 3])
    """
    owner = "cross_validate"
    if not callable(make_module):
        raise TypeError(
            f"{owner}: make_module must be a callable that returns a new module, got "
            f"{short_repr(make_module)} ({type(make_module).__name__})"
        )
    check_dataset(owner, "dataset", dataset)
    if dataset is None:
        raise TypeError(f"{owner}: dataset must be {DATASET_EXPECTED}, got None")
    k = check_int(owner, "k", k, minimum=2)
    check_bool(owner, "stratify", stratify)
    check_bool(owner, "return_oof", return_oof)
    check_bool(owner, "return_ensemble", return_ensemble)
    seed = check_seed(owner, "seed", seed)
    if trainer_kwargs is not None:
        check_instance(
            owner, "trainer_kwargs", trainer_kwargs, Mapping, "a dict of make_trainer keywords"
        )
    if trainer_kwargs is not None and "version" in trainer_kwargs:
        raise ValueError(
            f"{owner}: trainer_kwargs may not set version: every fold trains in its own new run "
            "folder (one version would put all folds, and their best checkpoints, in one)"
        )
    kwargs = {"seed": seed, "enable_progress_bar": False, **(trainer_kwargs or {})}
    folds: list[dict[str, float]] = []
    predicted: list[tuple[list[int], torch.Tensor]] = []
    checkpoints: list[str | None] = []
    for fold in range(k):
        datamodule = KFoldDataModule(
            dataset, k=k, fold=fold, stratify=stratify, batch_size=batch_size, seed=seed,
            groups=groups,
        )  # fmt: skip
        L.seed_everything(kwargs["seed"], verbose=False)  # the same initial weights in every fold
        module = make_module()
        if not isinstance(module, L.LightningModule):
            raise TypeError(
                f"{owner}: make_module() must return a new LightningModule (a lightkit task such "
                f"as lk.ClassificationModule), got {short_repr(module)} ({type(module).__name__})"
            )
        if fold == 1 and "enable_model_summary" not in (trainer_kwargs or {}):
            kwargs["enable_model_summary"] = False  # one summary: the folds' nets are the same
        trainer = make_trainer(**kwargs)
        trainer.fit(module, datamodule=datamodule)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        validated = trainer.validate(
            module, datamodule=datamodule, ckpt_path=best or None, verbose=False
        )
        if not validated:
            raise ValueError(
                f"{owner}: fold {fold} ran no validation (limit_val_batches=0?); cross-validation "
                "scores each fold on its held-out samples"
            )
        results = validated[0]
        folds.append({key: float(v) for key, v in sorted(results.items())})
        checkpoints.append(best or None)
        if return_oof:
            device = trainer.strategy.root_device  # fit and validate leave the module on the CPU
            predicted.append((datamodule.val_indices, _predict(module, datamodule, best, device)))
    keys = sorted(set().union(*folds))
    mean = {key: sum(f[key] for f in folds) / k for key in keys}
    std = {
        key: math.sqrt(sum((f[key] - mean[key]) ** 2 for f in folds) / max(1, k - 1))
        for key in keys
    }
    print(_table(folds, mean, std, keys))
    result: dict[str, Any] = {"folds": folds, "mean": mean, "std": std, "checkpoints": checkpoints}
    if return_oof:
        first = predicted[0][1]
        oof = first.new_zeros((len(dataset), *first.shape[1:]))  # type: ignore[arg-type]
        oof_fold = torch.full((len(dataset),), -1, dtype=torch.long)  # type: ignore[arg-type]
        for fold, (indices, outputs) in enumerate(predicted):
            index = torch.as_tensor(indices, dtype=torch.long)
            oof[index] = outputs
            oof_fold[index] = fold
        result["oof"], result["oof_fold"] = oof, oof_fold
    if return_ensemble:
        result["ensemble"] = _ensemble(owner, module, checkpoints, trainer.strategy.root_device)
    return result


def _ensemble(
    owner: str, module: L.LightningModule, checkpoints: list[str | None], device: torch.device
) -> Predictor:
    """The fold models as one :class:`~lightkit.inference.EnsemblePredictor`: the checkpoints
    this call wrote, each loaded into a copy of the folds' (identical) architecture."""
    missing = [fold for fold, path in enumerate(checkpoints) if not path]
    if missing:
        raise ValueError(
            f"{owner}: return_ensemble needs each fold's best checkpoint, but fold(s) {missing} "
            "kept none (no checkpoint callback recorded a best model)"
        )
    net = getattr(module, "net", None)
    return Predictor.ensemble(
        [p for p in checkpoints if p],
        device=device,
        net=net if isinstance(net, torch.nn.Module) else None,
        task=type(module),
    )


def _predict(
    module: L.LightningModule, datamodule: KFoldDataModule, best: str, device: torch.device
) -> torch.Tensor:
    """``predict_step`` outputs for the fold's validation samples, in their order, on the CPU,
    from the fold's best checkpoint (loaded here: after an EMA or SWA fit, ``validate`` leaves
    the raw weights in the module)."""
    if best:
        module.load_state_dict(load_checkpoint(best)["state_dict"])
    module.to(device)
    outputs = []
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for batch_idx, batch in enumerate(datamodule.val_dataloader()):
                batch = move_data_to_device(batch, module.device)
                outputs.append(module.predict_step(batch, batch_idx).float().cpu())
    finally:
        module.train(was_training)
    return torch.cat(outputs)


def _table(folds: list[dict[str, float]], mean: dict, std: dict, keys: list[str]) -> str:
    width = max(10, *(len(key) for key in keys)) + 2
    lines = ["fold".ljust(6) + "".join(key.rjust(width) for key in keys)]
    for i, fold in enumerate(folds):
        lines.append(str(i).ljust(6) + "".join(f"{fold[key]:.4f}".rjust(width) for key in keys))
    lines.append("mean".ljust(6) + "".join(f"{mean[key]:.4f}".rjust(width) for key in keys))
    lines.append("std".ljust(6) + "".join(f"{std[key]:.4f}".rjust(width) for key in keys))
    return "\n".join(lines)


__all__ = ["cross_validate"]
