"""NoValidationFallback: early stopping and the best checkpoint follow train/loss when a run has no validation."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lightkit._lightning import has_validation_data, skip_unused_step_hooks


@skip_unused_step_hooks
class NoValidationFallback(Callback):
    """Without validation data, monitor ``train/loss`` instead of ``val/loss`` (with a warning).

    A run on a lightkit DataModule with ``val_split=0`` (or with ``limit_val_batches=0``) logs no
    ``val/*``; early stopping and the best checkpoint then follow the training loss. Any other
    ``val/`` monitor cannot be replaced by a training metric: that is an error saying what to do.

    Example:
        >>> trainer = lk.make_trainer(
        ...     max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
        ... )  # adds NoValidationFallback
        >>> trainer.fit(module, datamodule=lk.data.DataModule(my_dataset, val_split=0))
        >>> trainer.checkpoint_callback.monitor
        'train/loss'
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or has_validation_data(trainer):
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

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A monitor that validation never logs (a typo) would silently disable early stopping.
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for callback in trainer.callbacks:
            if (
                isinstance(callback, EarlyStopping)
                and callback.monitor.startswith("val/")
                and callback.monitor not in trainer.callback_metrics
            ):
                logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
                raise ValueError(
                    f"make_trainer: monitor={callback.monitor!r} was not logged by validation; "
                    f"it logged {', '.join(logged) or 'nothing'}"
                )


__all__ = ["NoValidationFallback"]
