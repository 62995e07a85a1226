"""The one place lightkit relies on Lightning internals (no public API gives these).

Lightning keeps the fit loop's batch counters in ``trainer.fit_loop.epoch_loop.batch_progress``,
which is not public API. lightkit needs them in three places: a mid-epoch checkpoint knows how far
the epoch got (the task's running loss sum), the in-memory loader resumes at the exact batch, and
``lk.fit``'s out-of-memory retry recounts the batches already trained in the new batch size. All
three go through the functions below. And :func:`skip_unused_step_hooks` relies on how Lightning
dispatches callback hooks. :class:`RunCSVLogger` replaces how Lightning's ``CSVLogger`` opens its
``metrics.csv`` (it deletes an existing one). ``tests/test_lightning_seam.py`` fails by name when
Lightning moves or changes any of these.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

CallbackType = TypeVar("CallbackType", bound=type[Callback])

_COUNTER_FIELDS = ("ready", "started", "processed", "completed")


def _batch_progress(trainer: Any) -> Any:
    return trainer.fit_loop.epoch_loop.batch_progress


def batches_processed(trainer: Any) -> int:
    """Training batches processed in the current epoch (what a checkpoint saved now has seen)."""
    return int(_batch_progress(trainer).current.processed)


def processed_counter(trainer: Any) -> Callable[[], int]:
    """A function returning :func:`batches_processed` of ``trainer``, cheap to call every batch."""
    current = _batch_progress(trainer).current
    return lambda: current.processed


def is_mid_epoch(trainer: Any) -> bool:
    """Whether the running training epoch has batches left (a checkpoint now is mid-epoch)."""
    return batches_processed(trainer) < trainer.num_training_batches


def recount_batches(trainer: Any, old: int, new: int) -> None:
    """Shift the epoch's batch counters from ``old`` to ``new`` batches (a resume that changed
    the batch size), so the epoch ends, validates and steps where a run at the new size would."""
    progress = _batch_progress(trainer)
    for tracker in (progress.current, progress.total):
        for field in _COUNTER_FIELDS:
            setattr(tracker, field, getattr(tracker, field) + new - old)


def has_validation_data(trainer: Any) -> bool:
    """Whether this run validates: ``limit_val_batches`` is not 0 and the datamodule, if it has a
    ``val_dataset`` attribute (every lightkit DataModule does), does not hold None there."""
    if trainer.limit_val_batches == 0:
        return False
    return getattr(trainer.datamodule, "val_dataset", True) is not None


def training_batch_idx(trainer: Any) -> int:
    """The index of the training batch being processed in this epoch."""
    return int(trainer.fit_loop.epoch_loop.batch_idx)


def epoch_save_due(checkpoint: Any, trainer: Any, at_train_epoch_end: bool) -> bool:
    """Whether Lightning's ``ModelCheckpoint`` saves at this epoch-end hook (the train epoch
    end when ``at_train_epoch_end``, else the validation end) and has not saved at this step."""
    if checkpoint._should_skip_saving_checkpoint(trainer):
        return False
    if bool(checkpoint._should_save_on_train_epoch_end(trainer)) != at_train_epoch_end:
        return False
    every = checkpoint._every_n_epochs
    return bool(every >= 1 and (trainer.current_epoch + 1) % every == 0)


def save_last_unless_saved(checkpoint: Any, trainer: Any) -> None:
    """Write ``checkpoint``'s ``last.ckpt`` now unless it saved a checkpoint at this step.

    Lightning 2.6 writes ``last.ckpt`` at an epoch end only when a top-k checkpoint was saved
    there too, so a run whose monitored metric stopped improving kept a stale ``last.ckpt``.
    """
    if checkpoint._last_global_step_saved != trainer.global_step:
        checkpoint._save_last_checkpoint(trainer, checkpoint._monitor_candidates(trainer))


# Callback hooks Lightning calls on every batch, for every callback.
STEP_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)


def skip_unused_step_hooks(cls: CallbackType) -> CallbackType:
    """Mark the per-batch hooks a lightkit callback does not implement, so Lightning skips them.

    Speed, measured by ``benchmarks/step_overhead.py``: Lightning calls every hook of every
    callback on every batch (``trainer/call.py``, ``_call_callback_hooks``), each call wrapped in
    ``profiler.profile()`` with the callback's ``state_key``: about eight Python calls per
    callback and hook even when the hook is ``Callback``'s empty default. Lightning skips a hook
    that is not callable, so each instance sets the hooks its class leaves at that default to
    None, on the instance only: the class keeps them, so a subclass that defines one (calling
    ``super()`` or not) and a mixin that brings one are called as usual.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Callback, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for name in STEP_HOOKS:
            if getattr(type(self), name) is getattr(Callback, name):
                self.__dict__[name] = None

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


# Lightning's loggers: the run's information lines ("GPU available", the seed, "Restoring
# states", tips) go through them at INFO level.
LIGHTNING_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning_fabric",
    "pytorch_lightning",
)
_NOISE = (
    # Lightning 2.6 on torch 2.10+: a deprecation inside Lightning's own code, harmless to users.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # lightkit's InMemoryLoader has no batch sampler to record dataset indices in; it is never
    # shuffled for prediction, so PredictionWriter numbers its samples in order instead.
    r"Couldn't infer the batch indices fetched from your dataloader: `InMemoryLoader`",
    # A lightkit DataModule without validation data returns no loaders (an empty list); its
    # NoValidationFallback already says what that means for early stopping and checkpoints.
    r"Total length of `list` across ranks is zero",
)


def set_verbosity(verbose: bool) -> None:
    """Show Lightning's information lines (``verbose``) or only its warnings and errors.

    Sets the level of Lightning's loggers for the process (they are the process's, not one
    trainer's), and hides warnings from inside Lightning that users can do nothing about.
    """
    level = logging.INFO if verbose else logging.WARNING
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing ``metrics.csv`` is continued, never deleted."""

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the file it finds
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(header)  # new columns rewrite the header, keeping rows


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` for a run folder: ``metrics.csv`` grows across a resumed run.

    Lightning's writer deletes an existing ``metrics.csv`` (with a warning) when it opens the
    folder, which would erase a resumed run's history; this one appends to it.
    """

    @rank_zero_only
    def resume_at(self, step: int) -> None:
        """Drop the rows of steps ``>= step``: a run resumed from the checkpoint of ``step``
        logs them again (TensorBoard likewise hides what a resumed run rewrites)."""
        self.save()
        path = self.experiment.metrics_file_path
        if not os.path.isfile(path):
            return
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            fields, rows = reader.fieldnames or [], list(reader)
        kept = [r for r in rows if not (r.get("step") or "").isdigit() or int(r["step"]) < step]
        if len(kept) == len(rows):
            return
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


__all__ = [
    "RunCSVLogger",
    "batches_processed",
    "epoch_save_due",
    "has_validation_data",
    "is_mid_epoch",
    "processed_counter",
    "recount_batches",
    "save_last_unless_saved",
    "set_verbosity",
    "skip_unused_step_hooks",
    "training_batch_idx",
]
