"""SWAWeightAveraging: stochastic weight averaging that validates, saves and exports the average."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from lightkit._lightning import skip_unused_step_hooks
from lightkit._validation import short_repr


def check_swa_start(owner: str, name: str, value: Any) -> int | float:
    """``value`` is an epoch index (int >= 0) or a fraction of ``max_epochs`` (float in (0, 1))."""
    message = (
        f"{owner}: {name} must be the epoch averaging starts at (an int >= 0) or a fraction of "
        f"max_epochs (a float in (0, 1), such as 0.75), got {short_repr(value)}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(message)
    if isinstance(value, int) and value < 0:
        raise ValueError(message)
    if isinstance(value, float) and not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(message)
    return value


@skip_unused_step_hooks
class SWAWeightAveraging(WeightAveraging):
    """Stochastic Weight Averaging (Izmailov et al., 2018): the equal average of the weights at
    the end of every epoch from ``start`` on.

    Built on Lightning's ``WeightAveraging`` (``torch.optim.swa_utils.AveragedModel`` with equal
    weights), with what lightkit promises for a trained model:

    * validation, early stopping and the best checkpoint see the average once it exists (the
      epoch's weights are averaged at its last training batch, before that epoch's validation),
      and the trained weights before it does: epochs before ``start`` are judged as usual;
    * every checkpoint's ``state_dict`` holds the weights validation saw, so
      ``load_from_checkpoint``, ``Predictor``, export and serve use the average with nothing to
      configure; the raw weights and the average's state travel in the checkpoint too, so a
      killed run resumes bit-identically, mid-epoch included;
    * after ``fit`` the module holds the average (or, with a warning, its trained weights when
      the run stopped before averaging started).

    BatchNorm running statistics are averaged with the weights (Lightning's ``use_buffers=True``)
    rather than recomputed with ``torch.optim.swa_utils.update_bn``. SWA pays off with a learning
    rate that stays high while averaging (``scheduler=None``, or ``lk.optim.cosine(min_lr_ratio=
    0.2)``): averaging the end of a schedule that decays to zero is close to the last weights.

    Args:
        start: The first epoch averaged: an epoch index (``0`` averages every epoch) or a
            fraction of ``max_epochs`` (``0.75``: the last quarter of the run).

    Example:
        >>> trainer = lk.make_trainer(max_epochs=40, swa=0.75)  # or callbacks=[SWAWeightAveraging(30)]
    """

    def __init__(self, start: int | float = 0.75) -> None:
        super().__init__(use_buffers=True)
        self.start = check_swa_start("SWAWeightAveraging", "start", start)
        self._start_epoch = 0
        self._swapped = False

    def start_epoch(self, trainer: L.Trainer) -> int:
        """The first epoch averaged in ``trainer``'s run (``start`` resolved against max_epochs)."""
        if isinstance(self.start, int):
            return self.start
        max_epochs = trainer.max_epochs
        if max_epochs is None or max_epochs < 1:
            raise ValueError(
                f"SWAWeightAveraging: start={self.start} is a fraction of max_epochs, but the "
                f"run has max_epochs={max_epochs}; give the epoch to start at (an int) instead"
            )
        return int(self.start * max_epochs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        self._start_epoch = self.start_epoch(trainer)
        max_epochs = trainer.max_epochs
        if max_epochs is not None and max_epochs > 0 and self._start_epoch >= max_epochs:
            rank_zero_warn(
                f"SWAWeightAveraging: averaging starts at epoch {self._start_epoch} but the run "
                f"has max_epochs={max_epochs}, so nothing will be averaged; start earlier"
            )

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Average once per epoch (never per step), from the start epoch on."""
        return epoch_idx is not None and epoch_idx >= self._start_epoch

    def averaging(self) -> bool:
        """Whether the average holds any weights yet."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        # Averaged at the epoch's last batch, so that this epoch's validation sees its weights
        # (Lightning validates before on_train_epoch_end, which still catches loaders of
        # unknown length).
        if batch_idx + 1 >= trainer.num_training_batches:
            self.on_train_epoch_end(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swapped = self.averaging()
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging():
            self._copy_average_to_current(pl_module)
        elif self._average_model is not None:
            rank_zero_warn(
                f"SWAWeightAveraging: the run ended at epoch {trainer.current_epoch}, before "
                f"averaging started (epoch {self._start_epoch}); the module keeps its trained "
                "weights"
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.averaging() or self._average_model is None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        # Nothing averaged yet: the checkpoint's weights are the trained ones (what validation
        # saw); the average's state (n_averaged = 0) still travels for an exact resume.
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["averaging_state"] = {
            name: value
            for name, value in self._average_model.state_dict().items()
            if not name.startswith("module.")
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = int(state_dict.get("latest_update_epoch", -1))


__all__ = ["SWAWeightAveraging"]
