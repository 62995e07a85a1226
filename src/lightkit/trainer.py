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
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from lightkit.callbacks import NaNGuard, RNGState
from lightkit.checkpointing import AtomicCheckpointIO

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
    checkpoint_every_n_steps: int | None = None,
    nan_guard: bool = True,
    version: int | str | None = None,
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
        * ``seed`` → ``lightning.seed_everything(seed, workers=True)``;
        * crash safety: checkpoints are written atomically (a kill mid-save leaves the previous
          one intact), loaded with ``weights_only=True``, and carry the RNG states and the data
          position, so ``trainer.fit(..., ckpt_path="last")`` in the same run folder (see
          ``version``) continues bit-identically; with ``checkpoint_every_n_steps`` the
          ``last.ckpt`` is also refreshed every N steps for mid-epoch resume;
        * :class:`~lightkit.callbacks.NaNGuard`: a NaN/Inf loss stops training with a message
          naming the step and the last good checkpoint; non-finite weights are never saved.

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
        checkpoint_every_n_steps: Also write ``last.ckpt`` every N optimizer steps.
        nan_guard: Stop at the first non-finite loss (see :class:`~lightkit.callbacks.NaNGuard`).
        version: The run folder: None for a new ``version_<n>``, ``"last"`` for the newest
            existing one (to resume a run), or a number for ``version_<number>``.

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
    if checkpoint_every_n_steps is not None:
        _check_int("checkpoint_every_n_steps", checkpoint_every_n_steps, minimum=1)
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
    run_dir = _run_dir(Path(default_root_dir), version)
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
            enable_version_counter=False,  # best.ckpt and last.ckpt are replaced (atomically)
        )
    ]
    if checkpoint_every_n_steps is not None:
        # Refreshes last.ckpt every N steps (save_top_k=0: no extra files are kept).
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                every_n_train_steps=checkpoint_every_n_steps,
                save_top_k=0,
                save_last=True,
                enable_version_counter=False,  # the same last.ckpt as the epoch-end saves
            )
        )
    callbacks.append(RNGState())
    if nan_guard:
        callbacks.append(NaNGuard())
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
    plugins = trainer_kwargs.pop("plugins", None) or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())

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
        plugins=plugins,
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
    return "bf16-mixed" if native_bf16() else "16-mixed"


def native_bf16() -> bool:
    """Whether the current CUDA GPU runs bf16 natively (Ampere and newer), not by emulation."""
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the argument
        return torch.cuda.get_device_capability()[0] >= 8


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


def _run_dir(root: Path, version: int | str | None) -> Path:
    """``root/version_<n>``: a new one, the newest existing one (``"last"``) or a given one."""
    existing = [
        int(m.group(1))
        for p in (root.iterdir() if root.is_dir() else [])
        if (m := re.fullmatch(r"version_(\d+)", p.name))
    ]
    if version is None or (version == "last" and not existing):
        return root / f"version_{max(existing, default=-1) + 1}"
    if version == "last":
        return root / f"version_{max(existing)}"
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return root / f"version_{version}"
    raise ValueError(
        f"make_trainer: version must be None (a new run folder), 'last' or an integer >= 0, "
        f"got {version!r}"
    )


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    resume: bool = False,
    **make_trainer_kwargs: Any,
) -> L.Trainer:
    """Build a trainer with :func:`make_trainer` and fit; with ``resume``, continue the last run.

    ``resume=True`` reuses the newest ``version_<n>`` folder under ``default_root_dir`` and calls
    ``trainer.fit(..., ckpt_path="last")``: model, optimizer, scheduler, epoch and step, callback
    states, data position and RNG states are restored, so a run killed at any point and resumed
    ends with the same weights as one that was never interrupted. A damaged ``last.ckpt`` is
    skipped for the newest good checkpoint, with a warning. Without a checkpoint, it starts fresh.

    Returns:
        The ``lightning.Trainer`` after fitting.

    Example:
        >>> trainer = lk.fit(module, dm, resume=True, max_epochs=20, checkpoint_every_n_steps=100)
    """
    if resume:
        make_trainer_kwargs.setdefault("version", "last")
    trainer = make_trainer(**make_trainer_kwargs)
    ckpt_path = None
    if resume:
        folder = Path(trainer.default_root_dir) / "checkpoints"
        if any(folder.glob("*.ckpt")):
            ckpt_path = "last"
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"make_trainer: {name} must be an integer >= {minimum}, got {value!r}")


__all__ = ["fit", "make_trainer"]
