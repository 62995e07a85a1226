"""NaNGuard: stop at the first non-finite loss, and never checkpoint non-finite weights."""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn

from lightkit._lightning import skip_unused_step_hooks


class NonFiniteError(RuntimeError):
    """Training produced a NaN or Inf loss (or weights) and was stopped.

    Example:
        >>> module = lk.ClassificationModule(net, 3, optimizer=lk.optim.sgd(lr=1e38))  # far too high
        >>> trainer = lk.make_trainer(
        ...     max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
        ... )
        >>> try:
        ...     trainer.fit(module, datamodule=dm)
        ... except lk.callbacks.NonFiniteError as error:
        ...     print(error)
        NaNGuard: the training loss is nan at global step 1 (epoch 0, batch 1); training stopped
        before anything non-finite was checkpointed. ... Try a lower learning rate, ...
    """


@skip_unused_step_hooks
class NaNGuard(Callback):
    """Stop training at a NaN/Inf loss with a message naming the step and the last good checkpoint.

    On the CPU every step's loss is checked before its backward pass, so the weights never see
    its gradients. On an accelerator the check is kept on
    the device and read every ``log_every_n_steps`` batches (no per-step host sync), and always
    before a checkpoint is written. A checkpoint whose weights are not all finite is never
    written: the save is stopped with the same error, so ``best`` and ``last`` stay the good ones.
    ``lk.make_trainer`` adds this callback (``nan_guard=False`` leaves it out).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.NaNGuard()])  # lk.make_trainer adds it
        >>> any(isinstance(c, lk.callbacks.NaNGuard) for c in lk.make_trainer(logger=False).callbacks)
        True
    """

    def __init__(self) -> None:
        self._bad: torch.Tensor | None = None  # device-side flag between host checks
        self._checked_step = 0  # the step of the last host check on an accelerator
        self._batch_idx: int | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        # Before backward: on the CPU a bad loss stops the run before its gradients reach the
        # weights. (Inside the step, trainer.global_step already counts the step in progress.)
        if loss.device.type == "cpu":
            # One read of a scalar loss is cheaper than isfinite().all() and a read of that.
            if loss.numel() == 1:
                finite = math.isfinite(value := loss.item())
            else:
                finite = bool(torch.isfinite(loss.detach()).all())
                value = float(loss.detach().float().mean())
            if not finite:
                self._stop(
                    trainer, f"{value} at global step {trainer.global_step}", self._batch_idx
                )
            return
        finite = torch.isfinite(loss.detach()).all()
        self._bad = ~finite if self._bad is None else self._bad | ~finite

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._bad is not None and (batch_idx + 1) % max(1, trainer.log_every_n_steps) == 0:
            self._check_device_flag(trainer, batch_idx)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Runs while the checkpoint is being assembled, before anything is written.
        self._check_device_flag(trainer, None)
        named = list(pl_module.named_parameters())
        plain = len({p.device for _, p in named}) == 1 and all(
            type(p) in (torch.Tensor, nn.Parameter) for _, p in named
        )
        # One host read for all parameters; the loop below runs only to name a bad one.
        if plain and bool(torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).all()):
            return
        for name, param in named:
            if not bool(torch.isfinite(param.detach()).all()):
                raise NonFiniteError(
                    f"NaNGuard: parameter {name!r} holds NaN or Inf at step {trainer.global_step}; "
                    f"no checkpoint was written. {_advice(trainer)}"
                )

    def _check_device_flag(self, trainer: L.Trainer, batch_idx: int | None) -> None:
        if self._bad is not None and bool(self._bad):
            steps = f"NaN or Inf between steps {self._checked_step} and {trainer.global_step}"
            self._stop(trainer, steps, batch_idx)
        self._checked_step = trainer.global_step

    def _stop(self, trainer: L.Trainer, what: str, batch_idx: int | None) -> None:
        where = f"epoch {trainer.current_epoch}" + (
            f", batch {batch_idx}" if batch_idx is not None else ""
        )
        raise NonFiniteError(
            f"NaNGuard: the training loss is {what} ({where}); training stopped before anything "
            f"non-finite was checkpointed. {_advice(trainer)}"
        )


def _advice(trainer: L.Trainer) -> str:
    paths = []
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            paths += [callback.last_model_path, callback.best_model_path]
    existing = [p for p in paths if p and os.path.isfile(p)]
    last_good = max(existing, key=os.path.getmtime) if existing else None
    where = f"Last good checkpoint: {last_good}." if last_good else "No checkpoint was written yet."
    return (
        f"{where} Try a lower learning rate, gradient clipping (gradient_clip_val=1.0), checking "
        "the inputs and targets for NaN/Inf, or precision='32-true'."
    )
