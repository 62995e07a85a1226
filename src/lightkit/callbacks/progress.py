"""PlainProgressBar: periodic one-line progress for logs (CI, files, pipes), no redraws."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

from lightkit._lightning import skip_unused_step_hooks


@skip_unused_step_hooks
class PlainProgressBar(ProgressBar):
    """Print one line every ``interval`` seconds of training and one per finished epoch.

    For output that is not a terminal (CI logs, files, pipes), where redrawn progress bars turn
    into walls of control characters. ``lk.make_trainer`` picks Lightning's ``RichProgressBar``
    on a terminal and this one otherwise. Lines look like::

        epoch 3/20  step 120/400 (30%)  12.1 s  train/loss 0.231
        epoch 3/20 done  train/loss 0.228  val/loss 0.204  val/acc 0.951

    Args:
        interval: Seconds between two progress lines within an epoch.
        stream: Where to write (default: standard output).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.PlainProgressBar(interval=30)])
    """

    def __init__(self, interval: float = 10.0, stream: Any = None) -> None:
        super().__init__()
        if not isinstance(interval, (int, float)) or interval < 0:
            raise ValueError(
                f"PlainProgressBar: interval must be a number of seconds >= 0, got {interval!r}"
            )
        self.interval = float(interval)
        self.stream = stream
        self._enabled = True
        self._last = 0.0
        self._start = 0.0
        self._since = ""  # what the epoch's time counts from, when not its start
        self._finished: tuple[str, str] | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=self.stream or sys.stdout, flush=True)

    def _epoch(self, trainer: L.Trainer) -> str:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        return f"epoch {trainer.current_epoch + 1}/{total}"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed mid-epoch starts here: Lightning skips on_train_epoch_start then.
        self._start = self._last = time.monotonic()
        self._since = "since the resume"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report_finished(trainer)
        self._start = self._last = time.monotonic()
        self._since = ""

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        total = self.total_train_batches
        done = batch_idx + 1
        share = f" ({100 * done / total:.0f}%)" if isinstance(total, int) and total else ""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_text = f"  train/loss {float(loss):.4g}" if loss is not None else ""
        self._print(
            trainer,
            f"{self._epoch(trainer)}  step {done}/{total}{share}  {now - self._start:.1f} s{loss_text}",
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Callbacks run before the module's own epoch-end logging: report the epoch when the
        # next one starts (or training ends), with its final train/ and val/ values.
        took = f"{time.monotonic() - self._start:.1f} s" + (
            f" {self._since}" if self._since else ""
        )
        self._finished = (self._epoch(trainer), took)

    def _report_finished(self, trainer: L.Trainer) -> None:
        if self._finished is None:
            return
        epoch, took = self._finished
        self._finished = None
        metrics = {
            k: float(v)
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(("train/", "val/"))
            and not k.endswith("_epoch")  # the loggers' copy of an epoch mean shown already
            and getattr(v, "numel", lambda: 1)() == 1
        }
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self._print(trainer, f"{epoch} done in {took}  {shown}".rstrip())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report_finished(trainer)


__all__ = ["PlainProgressBar"]
