"""HParamsMetrics: hyperparameters with the run's final metrics, for TensorBoard's HPARAMS tab."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from lightkit._lightning import skip_unused_step_hooks


@skip_unused_step_hooks
class HParamsMetrics(Callback):
    """At the end of fitting, write the hyperparameters with the final ``val/*`` metrics.

    TensorBoard's HPARAMS tab lists a run only with metrics attached; Lightning writes the
    hyperparameters at the start, before any exist. This writes them again at the end with the
    last metrics under ``hp/`` (``hp/val/loss``, ..., and the best ``monitor`` value of the
    checkpoint callback as ``hp/best``), so runs can be compared side by side. ``lk.make_trainer`` adds it with its
    TensorBoard logger.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.HParamsMetrics()])
    """

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("val/", "train/")) and getattr(v, "numel", lambda: 1)() == 1
        }
        checkpoint = trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_score", None)
        if best is not None:
            metrics["best"] = float(best)
        if not metrics:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Own "hp/" tags: these are also written as step-0 scalars, which must not add a
                # point to the training curves.
                hp_metrics = {f"hp/{k}": v for k, v in metrics.items()}
                logger.log_hyperparams(pl_module.hparams, metrics=hp_metrics)


__all__ = ["HParamsMetrics"]
