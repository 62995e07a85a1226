"""TaskBookkeeping: a task module's logging, loss sums and checkpoint records, kept out of its hooks.

A user subclassing a task overrides Lightning hooks (``on_validation_epoch_end``,
``training_step``, ``on_save_checkpoint``, ...) and may forget ``super()``. None of lightkit's
bookkeeping lives in those hooks: this callback, which every :class:`~lightkit.TaskModule`
returns from ``configure_callbacks()`` (and ``lk.make_trainer`` adds too), does it from the
step outputs Lightning hands to callbacks:

* ``train/loss`` to the loggers every ``log_every_n_steps`` optimizer steps, and the epoch means
  of ``train/loss`` (to the loggers as ``train/loss_epoch``), ``val/loss`` and ``test/loss`` with
  the task's metrics at each epoch end;
* the checked stages (see ``TaskModule.check_batch``) and the metrics, built at ``setup``;
* the checkpoint's ``"lightkit"`` section (:class:`~lightkit._metadata.CheckpointMetadata`) and
  the running train-loss sum of an unfinished epoch, so a mid-epoch resume logs the same mean;
* given a run folder (``lk.make_trainer`` gives its own), the run record ``run.json``
  (:class:`~lightkit.tasks._run_record.RunRecorder`): running, then how the fit ended. It lives
  here rather than in a callback of its own because Lightning looks up every step hook of
  every callback on every batch: one more callback costs about 12 calls a step.

The state it updates lives on the module (``module._task_state``), so any instance of this
callback serves any task module, and a module keeps its state across ``fit``/``validate`` calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from lightkit._lightning import RunCSVLogger, is_mid_epoch, skip_unused_step_hooks
from lightkit._metadata import CheckpointMetadata
from lightkit._validation import check_class_names, short_repr
from lightkit.checkpointing import CheckpointError
from lightkit.outputs import CALIBRATED_KINDS
from lightkit.tasks._run_record import RunRecorder

LOSS_SUM_KEY = "lightkit_train_loss_sum"


@dataclass
class TaskState:
    """A task module's bookkeeping between hooks: loss sums per stage, checked stages, records."""

    loss_sums: dict[str, list[Any]] = field(default_factory=dict)  # stage: [tensor sum, count]
    checked_stages: set[str] = field(default_factory=set)
    resumed_loss_sum: list[Any] | None = None
    last_logged_step: int = -1
    # (stage, detached loss, batch size) of the latest shared_step, for the step hooks below
    step: tuple[str, torch.Tensor, int] | None = None
    input_shape: tuple[int, ...] | None = None
    inference: dict[str, Any] | None = None
    class_names: tuple[str, ...] | None = None
    temperature: float | None = None  # fitted by lk.calibrate
    loaded_from: str | None = None  # the checkpoint file load_from_checkpoint read

    def record_step(self, stage: str, loss: torch.Tensor, x: Any) -> None:
        """What ``shared_step`` saw: the callback then needs no second ``unpack_batch``, and
        a step that returns no loss (a user's ``validation_step``) still counts."""
        self.step = (stage, loss.detach(), batch_size_of(x))
        self._note_input_shape(stage, x)

    def take_step(self, stage: str, pl_module: Any, batch: Any) -> tuple[torch.Tensor | None, int]:
        """The recorded step of ``stage`` (loss, batch size), else the batch read again."""
        step, self.step = self.step, None
        if step is not None and step[0] == stage:
            return step[1], step[2]
        x = _inputs(pl_module, batch)
        self._note_input_shape(stage, x)
        return None, batch_size_of(x)

    def _note_input_shape(self, stage: str, x: Any) -> None:
        """One training sample's shape, recorded for ``lk.Predictor`` and ``lightkit serve``."""
        if stage == "train" and self.input_shape is None and _is_batch_tensor(x):
            self.input_shape = tuple(x.shape[1:])

    def accumulate(self, stage: str, loss: torch.Tensor, batch_size: int) -> None:
        loss = loss.detach().float()  # an fp16 sum over an epoch would overflow
        sums = self.loss_sums.get(stage)
        if sums is None:
            self.loss_sums[stage] = [loss * batch_size, batch_size]  # a new tensor: ours to update
        else:
            sums[0].add_(loss, alpha=batch_size)
            sums[1] += batch_size

    def restore(self, checkpoint: Mapping[str, Any], where: str, resuming: bool = True) -> None:
        """Read what a checkpoint recorded for this task (checked: it comes from a file).

        ``resuming``: a trainer continues the run, so the running loss sum of an unfinished
        epoch carries on; a module only loaded (``load_from_checkpoint``) starts afresh (the
        saved sum is checked all the same: the file is untrusted either way).
        """
        saved = checkpoint.get(LOSS_SUM_KEY)
        if saved is not None:
            if not (
                isinstance(saved, (list, tuple))
                and len(saved) == 2
                and isinstance(saved[0], torch.Tensor)
                and saved[0].numel() == 1
                and isinstance(saved[1], int)
                and saved[1] > 0
            ):
                raise CheckpointError(
                    f"{where}: the checkpoint's {LOSS_SUM_KEY!r} is malformed: expected [scalar "
                    f"tensor, positive int], got {short_repr(saved)}"
                )
            self.resumed_loss_sum = list(saved) if resuming else None
        meta = CheckpointMetadata.from_checkpoint(checkpoint, where)
        if meta.input_shape is not None:
            self.input_shape = meta.input_shape
        self.inference = meta.inference
        if meta.class_names is not None:
            self.class_names = meta.class_names
        self.temperature = meta.temperature


@skip_unused_step_hooks
class TaskBookkeeping(Callback):
    """lightkit's bookkeeping for any :class:`~lightkit.TaskModule` (see the module docstring).

    Added for you: ``TaskModule.configure_callbacks()`` returns one, and ``lk.make_trainer``
    adds one too, with its run folder (the task's own is then left out). If you override
    ``configure_callbacks``, include ``super().configure_callbacks()`` when you train with a
    plain ``lightning.Trainer``.

    Args:
        run_dir: Keep the run record ``<run_dir>/run.json`` (status, best value, epochs; what
            ``lightkit runs`` lists) for every fit, of any LightningModule. None: no record.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.tasks.TaskBookkeeping()])  # added for you anyway
    """

    state_key = "TaskBookkeeping"

    def __init__(self, run_dir: str | os.PathLike[str] | None = None) -> None:
        self.run_record = RunRecorder(run_dir) if run_dir is not None else None

    @staticmethod
    def _state(pl_module: L.LightningModule) -> TaskState | None:
        return getattr(pl_module, "_task_state", None)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        state = self._state(pl_module)
        if state is None:
            return
        pl_module.stage_metrics("val")  # built now, before Lightning moves the module to its device
        # New data may come with each fit/validate/test call: check a full epoch of it again.
        state.checked_stages.clear()
        names = _class_names(trainer.datamodule, pl_module)
        if names is not None:
            state.class_names = names

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run_record is not None:
            self.run_record.on_fit_start(trainer, pl_module)
        seed = os.environ.get("PL_GLOBAL_SEED")
        seeded_at_init = getattr(pl_module, "_seed_at_init", "") is not None
        if self._state(pl_module) and seed and not seeded_at_init and trainer.global_step == 0:
            rank_zero_warn(
                f"lightkit: this run is seeded (seed={seed}), but {type(pl_module).__name__} was "
                "built before the seed was set, so its net starts from different random weights "
                "on every run. For a reproducible run, set the seed before building the net: call "
                f"`lightning.seed_everything({seed})` first, or build the net after "
                f"`lk.make_trainer(seed={seed})`."
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run_record is not None:
            self.run_record.on_train_start(trainer, pl_module)
        if trainer.global_step > 0:  # resumed: the steps after the checkpoint are logged again
            for logger in trainer.loggers:
                if isinstance(logger, RunCSVLogger):
                    logger.resume_at(trainer.global_step)
        # After any checkpoint was restored: training changes the weights, so a temperature
        # fitted for the old ones (lk.calibrate) no longer fits them.
        state = self._state(pl_module)
        if state is not None and state.temperature is not None:
            rank_zero_warn(
                f"lightkit: {type(pl_module).__name__} had a temperature ({state.temperature:.4g}, "
                "from lk.calibrate) fitted for its weights before this training; it is dropped, "
                "since training changes them. Calibrate again after training: "
                "lk.calibrate(module, datamodule)."
            )
            state.temperature = None

    # --- epochs: metric states are reset when a stage starts (a reset inside one loop's
    # inference_mode would leave inference tensors the next loop, under no_grad, cannot update)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = self._state(pl_module)
        if state is None:
            return
        _start_epoch(pl_module, state, "train")
        _continue_resumed_sum(pl_module, state)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (state := self._state(pl_module)) is not None:
            _start_epoch(pl_module, state, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (state := self._state(pl_module)) is not None:
            _start_epoch(pl_module, state, "test")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (state := self._state(pl_module)) is not None:
            # The epoch mean for callbacks and the progress bar; steps already went to loggers.
            _log_epoch(pl_module, state, "train")
            state.checked_stages.add("train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (state := self._state(pl_module)) is not None:
            _log_epoch(pl_module, state, "val")
            if not trainer.sanity_checking:
                state.checked_stages.add("val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (state := self._state(pl_module)) is not None:
            _log_epoch(pl_module, state, "test")
            state.checked_stages.add("test")

    # --- steps: the loss comes from the step's output, whoever wrote the step

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        state = self._state(pl_module)
        if state is None:
            return
        recorded, size = state.take_step("train", pl_module, batch)
        loss = _loss(outputs)
        if loss is not None and trainer.accumulate_grad_batches > 1:
            loss = loss * trainer.accumulate_grad_batches  # Lightning hands on loss / accumulation
        loss = loss if loss is not None else recorded  # what the step optimized, else shared_step's
        if loss is None:
            return
        # A mid-epoch resume starts with a batch, not with on_train_epoch_start (Lightning skips
        # it when it restarts mid-epoch): continue the saved running sum here.
        _continue_resumed_sum(pl_module, state)
        state.accumulate("train", loss, size)
        # Every log_every_n_steps optimizer steps, counted over the run (not restarting each
        # epoch, so short epochs log too), at the step's index: where GradientNormMonitor logs.
        step = trainer.global_step
        every = max(1, trainer.log_every_n_steps)
        if step != state.last_logged_step and step % every == 0 and step and trainer.loggers:
            state.last_logged_step = step
            value = loss.float().item()
            for logger in trainer.loggers:
                logger.log_metrics({"train/loss": value}, step=step - 1)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        _evaluation_step(self._state(pl_module), "val", pl_module, outputs, batch)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        _evaluation_step(self._state(pl_module), "test", pl_module, outputs, batch)

    # --- checkpoints

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.run_record is not None:
            self.run_record.on_save_checkpoint(trainer, pl_module, checkpoint)
        state = self._state(pl_module)
        if state is None:
            return
        sums = state.loss_sums.get("train")
        if sums is not None and is_mid_epoch(trainer):
            # A copy: the running sum is updated in place by the next steps.
            checkpoint[LOSS_SUM_KEY] = [sums[0].detach().to("cpu", copy=True), sums[1]]
        describe = getattr(trainer.datamodule, "inference_spec", None)
        if callable(describe):
            state.inference = describe()
        cls = type(pl_module)
        checkpoint[CheckpointMetadata.KEY] = CheckpointMetadata(
            task=f"{cls.__module__}.{cls.__qualname__}",
            input_shape=state.input_shape,
            inference=state.inference,
            class_names=state.class_names,
            temperature=state.temperature,
        ).to_dict()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if (state := self._state(pl_module)) is not None:
            state.restore(checkpoint, type(pl_module).__name__)
            check_recorded_temperature(pl_module, state, type(pl_module).__name__)

    # --- the end of a fit: the run record

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self.run_record is not None:
            self.run_record.on_exception(trainer, pl_module, exception)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run_record is not None:
            self.run_record.on_fit_end(trainer, pl_module)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.run_record is not None:
            self.run_record.teardown(trainer, pl_module, stage)


def check_recorded_temperature(pl_module: Any, state: TaskState, where: str) -> None:
    """A temperature read from a checkpoint belongs to a classification task: a file that gives
    one to a regression or segmentation task would silently scale its outputs."""
    described = pl_module.task_outputs()
    if state.temperature is not None and described.kind not in CALIBRATED_KINDS:
        raise CheckpointError(
            f"{where}: the checkpoint records a temperature ({state.temperature:g}) for a task "
            f"with {described.kind!r} outputs; only classification outputs are calibrated"
        )


def _evaluation_step(
    state: TaskState | None, stage: str, pl_module: Any, outputs: Any, batch: Any
) -> None:
    """Count a validation or test batch: its returned loss, else the one shared_step computed."""
    if state is None:
        return
    recorded, size = state.take_step(stage, pl_module, batch)
    loss = _loss(outputs)
    loss = loss if loss is not None else recorded
    if loss is not None:
        state.accumulate(stage, loss, size)


def _class_names(datamodule: Any, pl_module: Any) -> tuple[str, ...] | None:
    """The datamodule's class names, checked against the number of classes the task outputs.

    A lightkit data module's names were given to lightkit (``class_names=``, image folders):
    a count that does not match the task is an error. Any other data module's ``class_names``
    attribute is only borrowed: when it is not a list of distinct names matching the task, it
    is left out of the checkpoint with a warning, and training goes on.
    """
    names = getattr(datamodule, "class_names", None)
    if names is None:
        return None
    owner = type(datamodule).__name__
    ours = any(c.__module__.startswith("lightkit.data") for c in type(datamodule).__mro__)
    described = pl_module.task_outputs()
    try:
        names = check_class_names(owner, "class_names", names)
        if described.num_classes is not None and len(names) != described.num_classes:
            raise ValueError(
                f"{owner} names {len(names)} classes ({short_repr(list(names))}), but "
                f"{type(pl_module).__name__} outputs {described.num_classes} "
                f"({described.kind}); give the task num_classes={len(names)}, or the data "
                "module the names of the task's classes"
            )
    except (TypeError, ValueError) as err:
        if ours:
            raise
        rank_zero_warn(f"lightkit: the class names are not recorded in checkpoints: {err}")
        return None
    return names


def _continue_resumed_sum(pl_module: Any, state: TaskState) -> None:
    saved, state.resumed_loss_sum = state.resumed_loss_sum, None
    if saved is not None:
        state.loss_sums["train"] = [saved[0].to(pl_module.device), saved[1]]


def _start_epoch(pl_module: Any, state: TaskState, stage: str) -> None:
    state.loss_sums.pop(stage, None)
    metrics = pl_module.stage_metrics(stage)
    if metrics is not None:
        metrics.reset()


def _log_epoch(pl_module: Any, state: TaskState, stage: str) -> None:
    sums = state.loss_sums.pop(stage, None)
    if sums is not None:
        _log_loss(pl_module, stage, *sums)
    metrics = pl_module.stage_metrics(stage)
    if metrics is not None and any(m.update_called for m in metrics.values(copy_state=False)):
        # Metric.compute() syncs across processes itself, so every rank holds the same values
        # (sync_dist then averages equal numbers, once per epoch, and keeps Lightning quiet).
        # No reset here: your own epoch-end hooks and callbacks may still read the metrics;
        # they are reset when the next epoch of the stage starts.
        pl_module.log_dict(metrics.compute(), sync_dist=True)


def _log_loss(pl_module: Any, stage: str, total: torch.Tensor, count: int) -> None:
    if stage == "train":
        # The epoch mean: for monitors and the progress bar as train/loss; for the loggers as
        # train/loss_epoch, beside the per-step train/loss curve.
        pl_module.log("train/loss", total / count, sync_dist=True, logger=False)
        pl_module.log("train/loss_epoch", total / count, sync_dist=True)
    else:
        pl_module.log(f"{stage}/loss", total / count, sync_dist=True)


def _loss(outputs: Any) -> torch.Tensor | None:
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    return loss.detach() if isinstance(loss, torch.Tensor) else None


def _is_batch_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.ndim > 1


def _inputs(pl_module: Any, batch: Any) -> Any:
    try:
        return pl_module.unpack_batch(batch)[0]
    except Exception:  # a layout only the user's own step knows: count the batch as it is
        return batch


def batch_size_of(x: Any) -> int:
    """The number of samples in a batch's inputs (a tensor, or the first of a tuple or dict)."""
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.ndim else 1
    if isinstance(x, (tuple, list)) and x:
        return batch_size_of(x[0])
    if isinstance(x, Mapping) and x:
        return batch_size_of(next(iter(x.values())))
    return 1


__all__ = ["TaskBookkeeping", "TaskState", "batch_size_of", "check_recorded_temperature"]
