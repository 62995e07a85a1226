"""make_trainer(): a plain ``lightning.Trainer`` with the presets a well-run project wants."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

PRECISIONS = (
    "auto",
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
)
_PRECISION_ALIASES = ("32", "16", "bf16", "64", 32, 16, 64)


def make_trainer(
    max_epochs: int = 10,
    precision: str | int = "auto",
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    monitor: str = "val/loss",
    mode: str = "min",
    early_stopping: bool = True,
    patience: int = 10,
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    logger: str | bool | Logger = "tensorboard",
    default_root_dir: str | os.PathLike[str] = "runs",
    seed: int | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Build a ``lightning.Trainer`` with lightkit's presets.

    What you get:
        * precision ``"auto"``: ``32-true`` on CPU, ``bf16-mixed`` on GPUs that support bf16,
          else ``16-mixed``;
        * ``EarlyStopping`` on ``monitor`` (when ``early_stopping``);
        * ``ModelCheckpoint`` keeping ``best.ckpt`` (by ``monitor``) and ``last.ckpt`` in
          ``<default_root_dir>/version_<n>/checkpoints/``; every run gets a new ``version_<n>``
          folder, so nothing from an earlier run is overwritten;
        * a TensorBoard logger in that same folder and a ``LearningRateMonitor`` (``logger=False``
          turns both off);
        * ``seed`` → ``lightning.seed_everything(seed, workers=True)``.

    Any other keyword (``callbacks``, ``max_steps``, ``deterministic``, ``profiler``, ...) is passed
    to ``lightning.Trainer``; your ``callbacks`` are added to lightkit's.

    Args:
        max_epochs: Maximum number of epochs.
        precision: ``"auto"`` or any Lightning precision (``"32-true"``, ``"bf16-mixed"``, ...).
        devices: Devices to use (``"auto"``, a count or a list of indices).
        strategy: ``"auto"`` or a Lightning strategy name (``"ddp"``, ...).
        monitor: Logged metric for early stopping and the best checkpoint.
        mode: ``"min"`` or ``"max"``: whether a lower or higher ``monitor`` is better.
        early_stopping: Stop when ``monitor`` has not improved for ``patience`` epochs.
        patience: Epochs without improvement before early stopping.
        gradient_clip_val: Clip gradients to this norm (None: no clipping).
        accumulate_grad_batches: Batches whose gradients are summed per optimizer step.
        logger: ``"tensorboard"``, ``False``, or a Lightning ``Logger``.
        default_root_dir: Folder holding one ``version_<n>`` folder per run.
        seed: Seed every RNG (torch, numpy, Python, workers) before building anything.

    Returns:
        A plain ``lightning.Trainer``.

    Example:
        >>> trainer = lk.make_trainer(max_epochs=20, seed=0)
        >>> trainer.fit(module, datamodule=dm)
        >>> trainer.checkpoint_callback.best_model_path
    """
    _check_int("max_epochs", max_epochs, minimum=-1)
    _check_int("patience", patience, minimum=0)
    _check_int("accumulate_grad_batches", accumulate_grad_batches, minimum=1)
    if mode not in ("min", "max"):
        raise ValueError(f"make_trainer: mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"make_trainer: monitor must be a logged metric name, got {monitor!r}")
    if precision not in PRECISIONS and precision not in _PRECISION_ALIASES:
        raise ValueError(
            f"make_trainer: unknown precision {precision!r}; expected one of "
            + ", ".join(repr(p) for p in PRECISIONS)
        )
    if gradient_clip_val is not None and (
        not isinstance(gradient_clip_val, (int, float)) or gradient_clip_val <= 0
    ):
        raise ValueError(
            f"make_trainer: gradient_clip_val must be a number > 0 or None, got {gradient_clip_val!r}"
        )
    if seed is not None:
        L.seed_everything(seed, workers=True)

    accelerator = trainer_kwargs.pop("accelerator", "auto")
    run_dir = _next_run_dir(Path(default_root_dir))
    if rank_zero_only.rank == 0:
        # Claim the folder now, so that a second trainer built before this one runs gets the next.
        run_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
        )
    ]
    if early_stopping:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    callbacks.append(_NoValidationFallback())
    loggers = _make_logger(logger, run_dir)
    if loggers is not False:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    user_callbacks = trainer_kwargs.pop("callbacks", None) or []
    if isinstance(user_callbacks, Callback):
        user_callbacks = [user_callbacks]
    callbacks.extend(user_callbacks)
    trainer_kwargs.setdefault("log_every_n_steps", 20)

    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        precision=_resolve_precision(precision, accelerator),
        devices=devices,
        strategy=strategy,
        gradient_clip_val=gradient_clip_val,
        accumulate_grad_batches=accumulate_grad_batches,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        **trainer_kwargs,
    )


class _NoValidationFallback(Callback):
    """Without validation data, monitor ``train/loss`` instead of ``val/loss`` (with a warning).

    A run on a lightkit DataModule with ``val_split=0`` (or with ``limit_val_batches=0``) logs no
    ``val/*``; early stopping and the best checkpoint then follow the training loss. Any other
    ``val/`` monitor cannot be replaced by a training metric: that is an error saying what to do.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not _has_no_validation(trainer):
            return
        monitored = [
            c
            for c in trainer.callbacks
            if isinstance(c, (EarlyStopping, ModelCheckpoint)) and c.monitor
        ]
        for callback in monitored:
            if not callback.monitor.startswith("val/"):
                continue
            if callback.monitor != "val/loss":
                raise ValueError(
                    f"make_trainer: monitor={callback.monitor!r} needs validation data, and this run "
                    "has none; pass validation data (for example val_split=0.1 on the DataModule), "
                    "monitor a training metric, or set early_stopping=False"
                )
            callback.monitor = "train/loss"
        if monitored:
            rank_zero_warn(
                "lightkit: this run has no validation data, so early stopping and the best "
                "checkpoint follow train/loss instead of val/loss"
            )


def _has_no_validation(trainer: L.Trainer) -> bool:
    from lightkit.data.datamodule import DataModule

    if trainer.limit_val_batches == 0:
        return True
    datamodule = trainer.datamodule
    return isinstance(datamodule, DataModule) and datamodule.val_dataset is None


def _resolve_precision(precision: str | int, accelerator: Any) -> str | int:
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def _make_logger(logger: str | bool | Logger, run_dir: Path) -> Logger | bool:
    if logger is False or logger is None:
        return False
    if logger is True or logger == "tensorboard":
        return TensorBoardLogger(
            save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
        )
    if isinstance(logger, Logger):
        return logger
    raise ValueError(
        f"make_trainer: logger must be 'tensorboard', False or a lightning Logger, got {logger!r}"
    )


def _next_run_dir(root: Path) -> Path:
    """``root/version_<n>`` with ``n`` one past the highest existing version."""
    existing = [
        int(m.group(1))
        for p in (root.iterdir() if root.is_dir() else [])
        if (m := re.fullmatch(r"version_(\d+)", p.name))
    ]
    return root / f"version_{max(existing, default=-1) + 1}"


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"make_trainer: {name} must be an integer >= {minimum}, got {value!r}")


__all__ = ["make_trainer"]
