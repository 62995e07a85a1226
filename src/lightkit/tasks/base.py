"""TaskModule: the LightningModule that wires a user's net to a loss, metrics, optimizer and scheduler."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import Metric, MetricCollection

from lightkit import optim as lk_optim
from lightkit._lightning import has_validation_data
from lightkit._metadata import MAX_TEMPERATURE, MIN_TEMPERATURE
from lightkit._recompute import run_blocks
from lightkit._spec import (
    from_spec,
    is_spec,
    to_spec,
)
from lightkit._validation import check_bool, check_float
from lightkit.outputs import CALIBRATED_KINDS, TaskOutputs, scale_logits
from lightkit.tasks._bookkeeping import TaskBookkeeping, TaskState
from lightkit.tasks._loading import load_task

# Speed (benchmarks/step_overhead.py): attributes that never hold parameters, buffers or
# submodules and are set on every step. Lightning sets `_current_fx_name` around each of the ~50
# hook calls in a training step, and nn.Module.__setattr__ would look each one up among
# parameters, buffers and submodules; TaskModule.__setattr__ stores these directly.
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "last_preds"})

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class TaskModule(L.LightningModule):
    """A LightningModule around any ``nn.Module``: loss, metrics, optimizer and LR scheduler wired.

    Subclass it for a new task and override the hooks below; the task classes in lightkit
    (:class:`~lightkit.ClassificationModule` and friends) are such subclasses. Set your own
    attributes before or after ``super().__init__()``: metrics are built later, at ``setup``.

    Overridable hooks (the whole list; none needs ``super()``):

    ==================================  ========================================================
    hook                                what it must return
    ==================================  ========================================================
    ``compute_loss(preds, target)``     the scalar loss of one batch (required; check shapes
                                        and raise a ``ValueError`` naming them)
    ``build_metrics()``                 a ``dict`` or ``MetricCollection`` of torchmetrics;
                                        cloned per stage, logged as ``<stage>/<name>`` once
                                        per epoch (built at ``setup``, after your ``__init__``)
    ``task_outputs()``                  a :class:`~lightkit.TaskOutputs` saying what the raw
                                        outputs mean; figures and ``lk.diagnose`` read it
                                        (default ``"values"``: no classes)
    ``predict_output(preds)``           the natural output from raw outputs (probabilities
                                        for classification); ``Predictor``, ``serve`` and
                                        ``predict_step`` use it (default: unchanged)
    ``metric_inputs(preds, target)``    the ``(preds, target)`` the metrics are updated with
    ``check_batch(batch, idx, stage)``  None, or raise a clear error for bad data (every batch
                                        on the CPU; the first epoch of each stage on a GPU)
    ``unpack_batch(batch)``             ``(inputs, target)`` from a batch (default: a pair)
    ``forward(x)``                      the raw outputs (default: ``self.net(x)``)
    ``shared_step(batch, stage)``       the loss of one train/val/test batch, after forward
                                        and the metric update (default: the pipeline above)
    ==================================  ========================================================

    Lightning's own hooks (``training_step``, ``validation_step``, ``on_*_epoch_end``,
    ``setup``, ``on_save_checkpoint``, ...) may be overridden too, without ``super()``:
    lightkit's bookkeeping (``train/loss`` per step, the epoch means of ``train/loss``,
    ``val/loss`` and ``test/loss``, the metrics, the checkpoint's ``"lightkit"`` record) lives in
    :class:`~lightkit.tasks.TaskBookkeeping`, a callback that reads each step's outputs. A
    ``training_step``/``validation_step`` of your own returns the loss (or a dict with
    ``"loss"``, and ``"preds"`` for the figures). If you override ``configure_callbacks`` and
    train with a plain ``lightning.Trainer``, include ``super().configure_callbacks()``
    (``lk.make_trainer`` adds the bookkeeping itself).

    Logging: ``train/loss`` goes to the loggers every ``log_every_n_steps`` batches and, as the
    epoch mean, to ``trainer.callback_metrics``; ``val/loss``, ``test/loss`` and the metrics are
    accumulated on the device and logged once per epoch, so there is no per-step host sync.

    Args:
        net: The network. A ``{"class_path": ..., "init_args": ...}`` spec (as stored in lightkit
            checkpoints) is built on the spot.
        optimizer: ``params -> Optimizer``; default ``lk.optim.adam(lr=1e-3)``.
        scheduler: ``optimizer -> LRScheduler`` or a :mod:`lightkit.optim` scheduler preset, or
            None. A ``ReduceLROnPlateau`` scheduler is stepped on ``val/loss`` automatically.
        train_metrics: Also compute the metrics on training batches (costs time every step).
        compile: Run the net through ``torch.compile`` (checkpoint keys are unchanged, so
            checkpoints move freely between compiled and plain modules).
        channels_last: Store the net's weights and 4-D inputs in channels-last memory format
            (faster convolutions with mixed precision on recent GPUs).
        gradient_checkpointing: Recompute the activations of the net's blocks in backward
            instead of storing them: less memory, same gradients, about one more forward of
            compute. Works for lightkit models, ``nn.Sequential`` nets, and nets with a
            ``gradient_checkpointing`` attribute that their ``forward`` honours.

    Example:
        >>> class MyTask(lk.TaskModule):
        ...     def compute_loss(self, preds, target):
        ...         return torch.nn.functional.smooth_l1_loss(preds, target)
        >>> module = MyTask(net=torch.nn.Linear(4, 1))
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        train_metrics: bool = False,
        compile: bool = False,
        channels_last: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        for flag, value in (
            ("train_metrics", train_metrics),
            ("compile", compile),
            ("channels_last", channels_last),
            ("gradient_checkpointing", gradient_checkpointing),
        ):
            check_bool(self._name, flag, value)
        # Whether the global seed was set before this module (and so, usually, its net) was
        # built: see on_fit_start.
        self.__dict__["_seed_at_init"] = os.environ.get("PL_GLOBAL_SEED")
        self.net = self._build_net(net)
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if gradient_checkpointing:
            if compile and type(self.net) is nn.Sequential:
                raise ValueError(
                    f"{self._name}: compile=True with gradient_checkpointing=True is not supported "
                    "for an nn.Sequential net; use one of the two, or a lightkit model"
                )
            _enable_gradient_checkpointing(self.net, self._name)
        self.gradient_checkpointing = gradient_checkpointing
        # The compiled wrapper is kept out of the module tree, so that state_dict keys (and so
        # checkpoints) are the same with and without compile: never `net._orig_mod.*`.
        self.__dict__["_compiled_net"] = torch.compile(self.net) if compile else None
        self.optimizer_factory = self._build_factory(optimizer, "optimizer") or lk_optim.adam()
        self.scheduler_factory = self._build_factory(scheduler, "scheduler")
        self._save_task_hparams(net=self.net, optimizer=optimizer, scheduler=scheduler)

        self._compute_train_metrics = train_metrics
        # lightkit's bookkeeping (loss sums, checked stages, what checkpoints record), updated by
        # TaskBookkeeping from the step outputs, never by hooks a subclass might override.
        self._task_state = TaskState()
        # Built on first use (at setup), so build_metrics() may use what a subclass sets after
        # super().__init__(): see stage_metrics.
        self.__dict__["_metrics_by_stage"] = None
        # Raw net outputs of the latest step (detached); validation steps hand them to callbacks
        # in their outputs ({"loss": ..., "preds": ...}).
        self.last_preds: torch.Tensor | None = None

    # --- construction helpers --------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _build_net(self, net: Any) -> nn.Module:
        if is_spec(net):
            net = from_spec(net, f"{self._name}(net=...)", kind="net")
        if net is None:
            raise TypeError(
                f"{self._name}: net is required. A checkpoint records how to rebuild its net only "
                "when it is a lightkit model (or records plain-data `init_args`); otherwise pass "
                "it again: `load_from_checkpoint(path, net=MyNet(...))`"
            )
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"{self._name}: net must be a torch.nn.Module, got {type(net).__name__}"
            )
        return net

    def _build_factory(self, value: Any, what: str) -> Any:
        if value is None:
            return None
        if is_spec(value):
            value = from_spec(value, f"{self._name}({what}=...)", kind=what)
        if not callable(value):
            raise TypeError(
                f"{self._name}: {what} must be a callable (for example lk.optim.adam() or "
                f"lk.optim.plateau()), got {value!r}"
            )
        return value

    def _save_task_hparams(self, **objects: Any) -> None:
        """Save init arguments as plain data; net/optimizer/scheduler are stored as class-path specs."""
        params = inspect.signature(type(self).__init__).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        # Arguments of parent __init__s that the user's subclass does not accept are left out, so
        # that `load_from_checkpoint` can call `type(self)(**hparams)`.
        parent_params = {
            name
            for cls in type(self).__mro__
            if issubclass(cls, TaskModule)
            for name in inspect.signature(cls.__init__).parameters
        }
        ignore = set(objects) | {p for p in parent_params if p not in params and not takes_kwargs}
        self.save_hyperparameters(
            ignore=sorted(ignore - {"self"}), frame=inspect.currentframe().f_back
        )
        # A spec given (as load_from_checkpoint and YAML configs do) was checked when it was built:
        # record it as given, so a reloaded module's hparams still say what it was built from.
        specs = {
            name: dict(obj) if is_spec(obj) else to_spec(obj)
            for name, obj in objects.items()
            if name in params or takes_kwargs
        }
        if specs:
            self.save_hyperparameters(specs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def build_metrics(self) -> MetricCollection | dict[str, Metric]:
        """The task's torchmetrics, keyed by short name (``acc``, ``f1``, ...). Default: none.

        Called once, when a trainer first sets the module up (or :meth:`stage_metrics` is first
        asked), not in ``__init__``: it may read attributes a subclass sets after
        ``super().__init__()``.
        """
        return MetricCollection({})

    def task_outputs(self) -> TaskOutputs:
        """What the net's raw outputs mean (see :class:`~lightkit.TaskOutputs`).

        Figures, ``lk.diagnose`` and serving read it instead of asking for a task class, so a
        subclass of ``TaskModule`` that returns, say, ``TaskOutputs("multiclass", 10)`` gets a
        confusion matrix and prediction grids like ``ClassificationModule``. Default:
        ``"values"`` (no classes).
        """
        return TaskOutputs()

    def stage_metrics(self, stage: str) -> MetricCollection | None:
        """The metrics of ``stage`` (``"train"``, ``"val"``, ``"test"``), built on first use.

        ``train`` has metrics only with ``train_metrics=True``. They are also reachable as
        ``train_metrics``, ``val_metrics`` and ``test_metrics``.
        """
        by_stage = self._metrics_by_stage
        if by_stage is None:
            by_stage = self._build_stage_metrics()
        return by_stage.get(stage)

    def _build_stage_metrics(self) -> dict[str, MetricCollection | None]:
        metrics = self.build_metrics()
        if isinstance(metrics, Mapping):
            metrics = MetricCollection(dict(metrics))
        if not isinstance(metrics, MetricCollection):
            raise TypeError(
                f"{self._name}.build_metrics() must return a dict or MetricCollection, "
                f"got {type(metrics).__name__}"
            )
        by_stage: dict[str, MetricCollection | None] = {
            "train": metrics.clone(prefix="train/") if self._compute_train_metrics else None,
            "val": metrics.clone(prefix="val/"),
            "test": metrics.clone(prefix="test/"),
        }
        for stage, collection in by_stage.items():
            if collection is not None:  # registered, so they move with the module
                self._modules[f"{stage}_metrics"] = collection.to(self.device)
        self.__dict__["_metrics_by_stage"] = by_stage
        return by_stage

    @property
    def train_metrics(self) -> MetricCollection | None:
        """The training metrics (None unless ``train_metrics=True``)."""
        return self.stage_metrics("train")

    @property
    def val_metrics(self) -> MetricCollection:
        """The validation metrics, logged as ``val/<name>``."""
        return self.stage_metrics("val")  # type: ignore[return-value]

    @property
    def test_metrics(self) -> MetricCollection:
        """The test metrics, logged as ``test/<name>``."""
        return self.stage_metrics("test")  # type: ignore[return-value]

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one input sample, recorded at the first training batch (and in checkpoints)."""
        return self._task_state.input_shape

    @input_shape.setter
    def input_shape(self, value: tuple[int, ...] | None) -> None:
        self._task_state.input_shape = tuple(value) if value is not None else None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The name of each class (label ``i`` is ``class_names[i]``), when the data module knew
        them (``ImageFolderDataModule``, ``class_names=``); recorded in checkpoints."""
        return self._task_state.class_names

    @property
    def temperature(self) -> float | None:
        """The temperature :func:`lightkit.calibrate` fitted, or None (uncalibrated).

        When set, inference divides the raw outputs by it before the softmax or sigmoid
        (``predict_step``, :meth:`calibrated`, ``lk.Predictor``, ``lightkit serve``); training,
        validation and exports use the raw outputs. Recorded in checkpoints.
        """
        return self._task_state.temperature

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        if value is not None:
            kind = self.task_outputs().kind
            if kind not in CALIBRATED_KINDS:
                raise ValueError(
                    f"{self._name}: a temperature scales classification logits; this task's "
                    f"outputs are {kind!r}"
                )
            try:
                value = check_float(
                    self._name, "temperature", value, MIN_TEMPERATURE, MAX_TEMPERATURE
                )
            except OverflowError:  # an int beyond float range
                raise ValueError(
                    f"{self._name}: temperature must be a number in [{MIN_TEMPERATURE:g}, "
                    f"{MAX_TEMPERATURE:g}], got an integer of {len(str(value))} digits"
                ) from None
        self._task_state.temperature = value

    @property
    def checkpoint_path(self) -> str | None:
        """The checkpoint file this module was loaded from (``load_from_checkpoint``), else None."""
        return self._task_state.loaded_from

    def calibrated(self, preds: torch.Tensor) -> torch.Tensor:
        """Raw outputs under :attr:`temperature` (unchanged when there is none): multiclass
        logits divided by it, binary and multilabel logits scaled around the threshold's logit,
        so no hard prediction changes (:func:`lightkit.outputs.scale_logits`)."""
        temperature = self._task_state.temperature
        if temperature is None:
            return preds
        return scale_logits(self.task_outputs(), preds, temperature)

    def configure_callbacks(self) -> list[Callback]:
        """lightkit's bookkeeping callback (see :class:`~lightkit.tasks.TaskBookkeeping`).

        Override it to add your own callbacks, and return ``super().configure_callbacks() +
        [...]``.
        """
        trainer = self._trainer
        if trainer is not None and any(isinstance(c, TaskBookkeeping) for c in trainer.callbacks):
            return []  # lk.make_trainer added one already
        return [TaskBookkeeping()]

    # --- the step -----------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self.net if self._compiled_net is None else self._compiled_net
        if self.gradient_checkpointing and type(self.net) is nn.Sequential:
            return run_blocks(self.net, x, self.training)
        return net(x)

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss for one batch. Subclasses must implement it."""
        raise NotImplementedError(f"{self._name} must implement compute_loss(preds, target)")

    def predict_output(self, preds: torch.Tensor) -> torch.Tensor:
        """Map raw net outputs to the task's natural output (identity by default)."""
        return preds

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
        """What the metrics are updated with, from detached net outputs and the target."""
        return preds, target

    def unpack_batch(self, batch: Any) -> tuple[Any, Any]:
        """Split a batch into ``(inputs, target)``; accepts ``(x, y)`` tuples and lists."""
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise ValueError(
            f"{self._name}: expected each batch to be an (inputs, target) pair, got "
            f"{type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            + "; override unpack_batch() for other batch layouts"
        )

    def check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        """Validate one batch of ``stage``; raise a clear error for bad data. No checks by default."""

    def shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        """Forward, loss and metric update for one batch of ``stage`` (train, val or test)."""
        x, target = self.unpack_batch(batch)
        loss_target = target
        if self._mixer is not None and stage == "train":  # MixUp / CutMix: soft targets
            x, loss_target = self._mix(x, target)
        preds = self(x)
        self.last_preds = preds.detach() if isinstance(preds, torch.Tensor) else None
        loss = self.compute_loss(preds, loss_target)
        metrics = self.stage_metrics(stage)
        if metrics is not None:
            metrics.update(*self.metric_inputs(preds.detach(), target))
        # For TaskBookkeeping: the batch's size and loss, whatever the step then returns.
        self._task_state.record_step(stage, loss, x)
        return loss

    #: A torchvision batch transform ``(x, target) -> (mixed x, soft targets)`` applied to
    #: training batches (``ClassificationModule(mixup=..., cutmix=...)``); metrics still see the
    #: hard targets. Kept out of the module's submodules (it holds no weights).
    _mixer: Any = None

    def _mix(self, x: Any, target: Any) -> tuple[Any, Any]:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{self._name}: mixup and cutmix mix images (N×C×H×W batches), got inputs of "
                f"shape {shape}; pass mixup=0.0 and cutmix=0.0 for other data"
            )
        if isinstance(target, torch.Tensor) and target.ndim == 2 and not target.is_floating_point():
            target = target.float()  # 0/1 label vectors (multilabel) mix as probabilities
        return self._mixer(x, target)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._maybe_check_batch(batch, batch_idx, "train")
        return self.shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        self._maybe_check_batch(batch, batch_idx, "val")
        return {"loss": self.shared_step(batch, "val"), "preds": self.last_preds}

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        self._maybe_check_batch(batch, batch_idx, "test")
        return {"loss": self.shared_step(batch, "test"), "preds": self.last_preds}

    def _maybe_check_batch(self, batch: Any, batch_idx: int, stage: str) -> None:
        # On the CPU a check is nearly free. On an accelerator it costs a host sync, so there each
        # stage is checked for one full epoch: later epochs see the same samples and labels.
        if self.device.type == "cpu" or stage not in self._task_state.checked_stages:
            self.check_batch(batch, batch_idx, stage)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """The natural output (``predict_output``) for a batch of inputs, or of ``(inputs,
        target)`` pairs split by ``unpack_batch``; calibrated by :attr:`temperature` when set."""
        if isinstance(batch, torch.Tensor):
            x = batch
        else:
            try:
                x = self.unpack_batch(batch)[0]
            except ValueError:  # inputs alone, in a layout unpack_batch does not split
                x = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 1 else batch
        return self.predict_output(self.calibrated(self(x)))

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | os.PathLike[str],
        map_location: Any = None,
        hparams_file: str | os.PathLike[str] | None = None,
        strict: bool | None = None,
        trust: str | list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint``, always with ``weights_only=True``, under lightkit's trust policy.

        The file is untrusted input: a checkpoint that pickles objects other than plain data is
        refused (nothing in it runs), a damaged file raises
        :class:`lightkit.checkpointing.CheckpointError` naming it, and the net, optimizer and
        scheduler it describes are built only when they are on lightkit's allow-list (lightkit
        models and presets, ``torch.nn`` layer and ``torch.optim`` classes) or
        named in ``trust``. A checkpoint written by another task class is refused.

        Args:
            checkpoint_path: The ``.ckpt`` file.
            map_location: As for ``torch.load``.
            hparams_file: A YAML file of hyperparameters to use instead of the checkpoint's.
            strict: Whether the state_dict keys must match exactly.
            trust: Module prefixes or class paths (``"mypkg.nets"``, ``"mypkg.nets.MyNet"``) whose
                classes the checkpoint may name and lightkit may import and call.
            **kwargs: Override stored hyperparameters, e.g. ``net=MyNet()``.

        Example:
            >>> module = lk.ClassificationModule.load_from_checkpoint("runs/version_0/checkpoints/best.ckpt")
            >>> module = MyTask.load_from_checkpoint(path, trust=["mypkg.nets"])
        """
        return load_task(
            cls,
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=strict,
            trust=trust,
            overrides=kwargs,
        )

    # --- optimizers ------------------------------------------------------------------------------

    #: Learning-rate multipliers by parameter-name prefix (``{"net": 0.1, "net.fc": 1.0}``: the
    #: longest matching prefix wins), applied when the optimizer is built. None: one LR for all.
    #: :class:`lightkit.callbacks.FineTuning` sets it (the body at a fraction of the head's LR).
    lr_multipliers: dict[str, float] | None = None

    def parameter_groups(self) -> list[Any]:
        """The trainable parameters as the optimizer gets them: one list, or (with
        :attr:`lr_multipliers`) one param group per multiplier with its own ``"lr"``. Override
        it for groups of your own; lightkit's ``adamw`` and ``sgd`` presets then split each group
        further so that biases and normalisation weights get no weight decay."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        multipliers = self.lr_multipliers
        if not multipliers:
            return [p for _, p in named]
        by_scale: dict[float, list[nn.Parameter]] = {}
        for name, param in named:
            prefixes = [k for k in multipliers if name == k or name.startswith(k + ".")]
            scale = multipliers[max(prefixes, key=len)] if prefixes else 1.0
            by_scale.setdefault(float(scale), []).append(param)
        base = _base_lr(self.optimizer_factory)
        if base is None:
            raise ValueError(
                f"{self._name}: lr_multipliers (discriminative learning rates) need the "
                "optimizer's lr: use a lightkit.optim preset or a class_path optimizer with an "
                "explicit lr"
            )
        return [{"params": ps, "lr": base * scale} for scale, ps in by_scale.items()]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        factory = self.scheduler_factory
        if isinstance(factory, lk_optim.SchedulerPreset):
            total = self.trainer.estimated_stepping_batches if factory.needs_total_steps else None
            if total is not None and total == float("inf"):
                total = None
            scheduler = factory(optimizer, None if total is None else int(total))
            config: dict[str, Any] = {"scheduler": scheduler, "interval": factory.interval}
            monitor = factory.monitor
        else:
            scheduler = factory(optimizer)
            config = {"scheduler": scheduler, "interval": "epoch"}
            monitor = "val/loss"
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = monitor or "val/loss"
            if monitor.startswith("val/") and not has_validation_data(self.trainer):
                rank_zero_warn(
                    f"{self._name}: no validation data, so ReduceLROnPlateau follows train/loss "
                    f"instead of {monitor}"
                )
                monitor = "train/loss"
            config["monitor"] = monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def _base_lr(factory: Any) -> float | None:
    """The learning rate an optimizer factory passes (a lightkit preset or a partial), or None."""
    kwargs = getattr(factory, "kwargs", None)
    if kwargs is None:
        kwargs = getattr(factory, "keywords", None)
    lr = kwargs.get("lr") if isinstance(kwargs, Mapping) else None
    return float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None


def _enable_gradient_checkpointing(net: nn.Module, owner: str) -> None:
    if type(net) is nn.Sequential:
        return  # TaskModule.forward checkpoints each child
    if not hasattr(net, "gradient_checkpointing"):
        raise ValueError(
            f"{owner}: gradient_checkpointing=True needs a net whose blocks lightkit can find: a "
            f"lightkit model, an nn.Sequential, or a net with a `gradient_checkpointing` attribute "
            f"that its forward honours; got {type(net).__name__}"
        )
    net.gradient_checkpointing = True


__all__ = ["TaskModule"]
