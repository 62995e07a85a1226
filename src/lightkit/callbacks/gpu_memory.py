"""GPUMemoryMonitor: peak CUDA memory per epoch, and advice added to out-of-memory errors."""

from __future__ import annotations

import re

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.memory import is_oom_error

from lightkit._lightning import skip_unused_step_hooks

OOM_ADVICE = """
lightkit: CUDA ran out of memory. What to try, roughly in order:
  * a smaller batch: datamodule batch_size=..., or lk.fit(...) (oom_retry=True), which
    retries the same batch in microbatches, keeping the gradient and the optimizer step;
  * keep the effective batch with accumulation: make_trainer(accumulate_grad_batches=2, ...);
  * mixed precision: make_trainer(precision="bf16-mixed") (or "16-mixed" on GPUs without bf16);
  * gradient checkpointing: gradient_checkpointing=True on the task module (lightkit models);
  * channels_last=True for convolutional nets, and no tensors kept across steps (e.g. appending
    losses without .detach()).
lk.find_batch_size(module, datamodule) finds the largest batch that fits."""


@skip_unused_step_hooks
class GPUMemoryMonitor(Callback):
    """Log peak CUDA memory each epoch; extend CUDA out-of-memory errors with advice.

    On CUDA, ``gpu/peak_allocated_mb`` and ``gpu/peak_reserved_mb`` (the most memory tensors
    held, and the most the caching allocator reserved, during the training epoch) are logged at
    each training epoch end. When training fails with a CUDA out-of-memory error, its message
    gets the highlights of ``torch.cuda.memory_summary()`` and concrete advice appended. On the
    CPU the logging does nothing. ``lk.make_trainer`` adds it.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.GPUMemoryMonitor()])
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != "cuda":
            return
        stats = torch.cuda.memory_stats(pl_module.device)
        mb = 2**20
        pl_module.log("gpu/peak_allocated_mb", stats.get("allocated_bytes.all.peak", 0) / mb)
        pl_module.log("gpu/peak_reserved_mb", stats.get("reserved_bytes.all.peak", 0) / mb)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if is_oom_error(exception) and "lightkit: CUDA ran out" not in str(exception):
            # The Trainer re-raises this same exception object: extend its message in place.
            message = str(exception) + "\n" + memory_highlights() + OOM_ADVICE
            exception.args = (message,)


def memory_highlights() -> str:
    """The allocated / reserved / peak lines of ``torch.cuda.memory_summary()`` ('' without CUDA)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return ""
    wanted = re.compile(
        r"^\|\s*(Allocated memory|Active memory|GPU reserved memory|Non-releasable memory)"
    )
    lines = [line for line in torch.cuda.memory_summary().splitlines() if wanted.match(line)]
    header = "lightkit: CUDA memory (current, peak, allocated in total, freed in total):"
    return "\n".join([header, *lines]) if lines else ""


__all__ = ["GPUMemoryMonitor", "memory_highlights"]
