"""GradientNormMonitor: the global gradient norm, logged every ``log_every_n_steps``."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightkit._lightning import skip_unused_step_hooks


@skip_unused_step_hooks
class GradientNormMonitor(Callback):
    """Log ``train/grad_norm``, the L2 norm of all gradients together, before each logged step.

    It is measured after the backward pass and before clipping (an exploding norm shows even
    when ``gradient_clip_val`` hides it from the weights), on unscaled gradients under mixed
    precision. Only steps that are logged compute it, so on a GPU there is one host sync per
    ``log_every_n_steps`` steps, not per step. ``lk.make_trainer`` adds it when logging is on.

    Args:
        every_n_steps: Optimizer steps between two logged norms (None: the trainer's
            ``log_every_n_steps``).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.GradientNormMonitor()])
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError(
                f"GradientNormMonitor: every_n_steps must be an integer >= 1 or None, got {every_n_steps!r}"
            )
        self.every_n_steps = every_n_steps

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        every = self.every_n_steps or max(1, trainer.log_every_n_steps)
        if not trainer.loggers or (trainer.global_step + 1) % every != 0:
            return
        norms = [p.grad.detach().norm(2) for p in pl_module.parameters() if p.grad is not None]
        if not norms:
            return
        total = torch.stack([n.float() for n in norms]).norm(2).item()
        for logger in trainer.loggers:
            logger.log_metrics({"train/grad_norm": total}, step=trainer.global_step)


__all__ = ["GradientNormMonitor"]
