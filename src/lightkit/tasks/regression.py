"""Regression: MSE, L1 or Huber loss with MAE, MSE and R² metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from lightkit._validation import check_choice, check_float
from lightkit.tasks._checks import first_bad_value
from lightkit.tasks.base import OptimizerFactory, SchedulerFactory, TaskModule

_LOSSES = ("mse", "l1", "huber")


class RegressionModule(TaskModule):
    """Regression: net outputs and targets of the same shape (``N`` or ``N×outputs``).

    Loss: ``"mse"`` (default), ``"l1"`` or ``"huber"``. Metrics: ``mae``, ``mse`` and ``r2``
    (averaged over outputs). Shapes must agree exactly: an ``N`` target against ``N×1`` outputs
    would silently broadcast to an ``N×N`` loss in torch, so here it is an error. NaN or Inf
    targets are reported with their batch and position. Targets are cast to the outputs' dtype.
    Recommended optimizers: Adam (default) or RMSprop.

    Args:
        net: Any ``nn.Module`` mapping a batch to outputs shaped like the targets.
        loss: ``"mse"``, ``"l1"`` or ``"huber"``.
        huber_delta: The Huber loss's switch point between quadratic and linear.
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` preset, or None.
        train_metrics: Also compute the metrics on training batches.
        compile: Run the net through ``torch.compile``.
        channels_last: Channels-last weights and 4-D inputs.
        gradient_checkpointing: Recompute activations in backward to save memory (these four
            as in :class:`~lightkit.TaskModule`).

    Example:
        >>> net = torch.nn.Sequential(lk.models.MLP(10, 1), torch.nn.Flatten(0))  # N outputs
        >>> module = lk.RegressionModule(net, loss="huber", optimizer=lk.optim.rmsprop())
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        loss: str = "mse",
        huber_delta: float = 1.0,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        name = type(self).__name__
        check_choice(name, "loss", loss, _LOSSES)
        check_float(name, "huber_delta", huber_delta, 0.0, min_inclusive=False)
        self.loss = loss
        self.huber_delta = huber_delta
        super().__init__(
            net,
            optimizer=optimizer,
            scheduler=scheduler,
            train_metrics=train_metrics,
            compile=compile,
            channels_last=channels_last,
            gradient_checkpointing=gradient_checkpointing,
        )

    def build_metrics(self) -> MetricCollection:
        return MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.shape != target.shape:
            hint = ""
            if preds.ndim == target.ndim + 1 and preds.shape[-1] == 1:
                hint = (
                    "; the net outputs N×1: squeeze it (for example end the net with "
                    "nn.Flatten(0)) or give targets of shape N×1"
                )
            elif target.ndim == preds.ndim + 1 and target.shape[-1] == 1:
                hint = "; the targets are N×1: give them as N, or make the net output N×1"
            raise ValueError(
                f"{self._name}: net outputs {tuple(preds.shape)} and targets "
                f"{tuple(target.shape)} must have the same shape{hint}"
            )
        target = target.to(preds.dtype)
        if self.loss == "mse":
            return F.mse_loss(preds, target)
        if self.loss == "l1":
            return F.l1_loss(preds, target)
        return F.huber_loss(preds, target, delta=self.huber_delta)

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
        # R2Score wants N or N×outputs; higher-rank outputs count as flattened outputs.
        if preds.ndim > 2:
            preds, target = preds.flatten(1), target.flatten(1)
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds, target = preds.squeeze(1), target.squeeze(1)
        return preds.float(), target.to(torch.float32)

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        _, target = self.unpack_batch(batch)
        if (
            not isinstance(target, torch.Tensor)
            or target.is_complex()
            or target.dtype == torch.bool
        ):
            what = type(target).__name__ if not isinstance(target, torch.Tensor) else target.dtype
            raise TypeError(
                f"{self._name}: targets must be a real-valued tensor, got {what} in {stage} "
                f"batch {batch_idx}"
            )
        if target.is_floating_point():
            error = first_bad_value(
                self._name, target, ~torch.isfinite(target), stage, batch_idx, "finite numbers"
            )
            if error:
                raise error


__all__ = ["RegressionModule"]
