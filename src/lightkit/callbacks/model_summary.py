"""TorchinfoSummary: a torchinfo model summary for the real input size, printed and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from lightkit._lightning import skip_unused_step_hooks


@skip_unused_step_hooks
class TorchinfoSummary(Callback):
    """Summarize the model with torchinfo at the first training batch, for that batch's shape.

    Layers, output shapes, parameter counts and multiply-adds (MACs) for the real input size,
    printed and saved as ``model_summary.txt`` in the run folder (the trainer's
    ``default_root_dir``: ``runs/version_<n>/`` with ``lk.make_trainer``, which adds this
    callback in place of Lightning's shorter summary). The summary runs the model once in eval
    mode without gradients, so training is not affected.

    Args:
        depth: How many levels of nested modules to show.
        verbose: Print the summary (it is always saved).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.TorchinfoSummary(depth=2)])
    """

    def __init__(self, depth: int = 4, verbose: bool = True) -> None:
        self.depth = depth
        self.verbose = verbose
        self.text: str | None = None
        self._done = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._done = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._done:
            return
        self._done = True
        if trainer.is_global_zero:
            self._summarize(trainer, pl_module, batch)

    @rank_zero_only
    def _summarize(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any) -> None:
        import torchinfo

        unpack = getattr(pl_module, "unpack_batch", None)
        x = (
            unpack(batch)[0]
            if callable(unpack)
            else (batch[0] if isinstance(batch, (list, tuple)) else batch)
        )
        if not isinstance(x, torch.Tensor):
            return
        strategy = type(trainer.strategy).__name__
        if "FSDP" in strategy or "DeepSpeed" in strategy:
            return  # a forward pass on one rank would wait forever for the others' shards
        modes = {m: m.training for m in pl_module.modules()}  # e.g. a frozen backbone in eval
        try:
            with torch.no_grad():
                stats = torchinfo.summary(
                    pl_module,
                    input_data=[x],
                    depth=self.depth,
                    col_names=("output_size", "num_params", "mult_adds"),
                    mode="eval",
                    verbose=0,
                    device=x.device,
                )
        except Exception as err:  # a summary must never stop training
            self.text = f"lightkit: no model summary ({type(err).__name__}: {err})"
            print(self.text)
            return
        finally:
            for module, training in modes.items():
                module.training = training
        self.text = f"input: {tuple(x.shape)} ({x.dtype})\n{stats}"
        path = Path(trainer.default_root_dir) / "model_summary.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text + "\n")
        if self.verbose:
            print(self.text)
            print(f"lightkit: model summary saved to {path}")


__all__ = ["TorchinfoSummary"]
