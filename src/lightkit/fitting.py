"""fit(): make_trainer and fit in one call, continuing the newest run and surviving out-of-memory."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightkit._validation import check_bool, check_int
from lightkit.callbacks.finetuning import FineTuning
from lightkit.checkpointing import is_url
from lightkit.trainer import make_trainer
from lightkit.trainer._run_dir import resume_into


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    resume: bool = False,
    oom_retry: bool = True,
    **make_trainer_kwargs: Any,
) -> L.Trainer:
    """Build a trainer with :func:`make_trainer` and fit; continue a run; survive CUDA OOM.

    ``resume=True`` continues the newest run under ``default_root_dir`` that has a usable
    checkpoint: its ``last.ckpt``, or, when that is damaged, the newest of its other checkpoints
    that loads (with a warning naming both). Model, optimizer, scheduler, epoch and step,
    callback states, data position and RNG states are restored, so a run killed at any point and
    resumed ends with the same weights as one that was never interrupted. Newer run folders
    without any checkpoint (an evaluation script's, a run killed before its first save) are
    skipped with a warning naming them. A run whose checkpoints all fail to load is an error
    (:class:`~lightkit.checkpointing.CheckpointError` naming each file): lightkit never starts
    over while a run's progress exists. Only when no run has a checkpoint at all does it start a
    new run, with a warning saying what it found. ``version=<n>`` resumes that run folder only.
    The run and file it resumes are logged.

    ``oom_retry``: when a training, validation or test step runs out of memory (CUDA's, or the
    CPU allocator's), the same batch is retried in place in microbatches of half its rows,
    halving until they fit (:class:`~lightkit.tasks.OOMMicrobatching`): the gradient, the
    optimizer step, the effective batch and the learning-rate schedule are the whole batch's,
    no completed step is computed twice, and under DDP a rank that runs out of memory alone
    recovers alone. The microbatch size is kept for the rest of the run and in its checkpoints.
    At one row the error is raised with advice.

    Args:
        module: The LightningModule to train.
        datamodule: Its data.
        resume: Continue the newest run under ``default_root_dir`` that has a usable checkpoint.
        oom_retry: Retry a step that ran out of memory in microbatches (see above).
        **make_trainer_kwargs: Passed to :func:`make_trainer`.

    Returns:
        The ``lightning.Trainer`` after fitting (the last one, after retries).

    Raises:
        CheckpointError: ``resume=True`` and the run to continue has checkpoints, none of which
            loads.

    Example:
        >>> quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
        >>> trainer = lk.fit(module, dm, resume=True, max_epochs=1, **quiet)  # no run: a new one
        >>> trainer.default_root_dir, trainer.current_epoch
        ('runs/version_0', 1)
        >>> trainer = lk.fit(module, dm, resume=True, max_epochs=2, **quiet)  # the script again
        lightkit: resuming runs/version_0 from runs/version_0/checkpoints/last.ckpt (saved at epoch
        0, global step 3)
        >>> trainer.current_epoch  # the first epoch was not trained again
        2
    """
    if not isinstance(module, L.LightningModule):
        raise TypeError(
            f"fit: module must be a lightning LightningModule (a lightkit task such as "
            f"lk.ClassificationModule), got {module!r} ({type(module).__name__})"
        )
    if not isinstance(datamodule, L.LightningDataModule):
        raise TypeError(
            f"fit: datamodule must be a lightning LightningDataModule (a lightkit DataModule "
            f"such as lk.data.DataModule), got {datamodule!r} ({type(datamodule).__name__})"
        )
    check_bool("fit", "resume", resume)
    check_bool("fit", "oom_retry", oom_retry)
    ckpt_path: str | None = None
    fresh_note = ""
    if resume:
        ckpt_path, fresh_note = resume_into(make_trainer_kwargs)
    make_trainer_kwargs["oom_retry"] = oom_retry
    trainer = make_trainer(**make_trainer_kwargs)
    if fresh_note:
        rank_zero_warn(f"{fresh_note}; starting a new run in {_run_folder(trainer)}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


def _run_folder(trainer: L.Trainer) -> str:
    """The run folder to name: in a store, its URL (the trainer's folder is a local stand-in)."""
    dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
    if is_url(dirpath):
        return str(dirpath).rstrip("/").rsplit("/", 1)[0]
    return str(trainer.default_root_dir)


def fine_tune(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    epochs: int = 5,
    freeze_epochs: int = 1,
    body_lr_ratio: float = 0.1,
    head: str | None = None,
    train_bn: bool = True,
    layer_decay: float | None = None,
    **make_trainer_kwargs: Any,
) -> L.Trainer:
    """Fine-tune a pretrained net: the new head alone for ``freeze_epochs``, then everything,
    the body at ``body_lr_ratio`` times the head's learning rate (fastai's ``fine_tune``).

    :func:`fit` with a :class:`~lightkit.callbacks.FineTuning` callback and ``max_epochs=epochs``
    (so ``resume=True``, OOM retries and every :func:`make_trainer` option work as there). Start
    from pretrained weights with ``lk.models.backbone(name, num_classes, weights=...)``: a
    torchvision weights name (from the local torch hub cache) or a ``state_dict`` file. A
    multi-device DDP run needs DDP's ``find_unused_parameters`` (frozen parameters get no
    gradient): ``"ddp"``, ``"ddp_spawn"`` and ``"ddp_notebook"``, and ``"auto"`` on several
    devices or nodes, become their ``_find_unused_parameters_true`` variants.

    Args:
        module: A task module whose ``net`` is the pretrained network with its new head.
        datamodule: The data to fine-tune on.
        epochs: Epochs in all (``freeze_epochs`` of them with the body frozen).
        freeze_epochs: Epochs that train only the head.
        body_lr_ratio: The body's learning rate as a fraction of the head's (the optimizer's).
        head: The head's name inside the net; default: its last ``nn.Linear``.
        train_bn: Keep normalisation layers training while the body is frozen (see
            :class:`~lightkit.callbacks.FineTuning`).
        layer_decay: Layer-wise learning-rate decay in (0, 1]: each block of the body learns
            this many times slower than the one above it (see
            :class:`~lightkit.callbacks.FineTuning`); None: one rate for the whole body.
        **make_trainer_kwargs: Passed to :func:`fit` and :func:`make_trainer` (``callbacks``
            are added to the fine-tuning one).

    Example:
        >>> # Usually: net = lk.models.backbone("resnet50", num_classes=37, weights="DEFAULT").
        >>> # Here a small MLP stands in, its weights pretrained by an earlier run:
        >>> net = lk.models.MLP(8, 3, hidden=(16,))
        >>> state = lk.checkpointing.load_checkpoint(checkpoint)["state_dict"]
        >>> net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
        <All keys matched successfully>
        >>> trainer = lk.fine_tune(
        ...     lk.ClassificationModule(net, num_classes=3), dm, epochs=2, freeze_epochs=1,
        ...     logger=False, enable_progress_bar=False, enable_model_summary=False,
        ... )
        >>> [group["lr"] for group in trainer.optimizers[0].param_groups]  # body, head
        [0.0001, 0.001]
    """
    check_int("fine_tune", "epochs", epochs, minimum=1)
    tuning = FineTuning(freeze_epochs, body_lr_ratio, head, train_bn, layer_decay)
    if freeze_epochs >= epochs:
        raise ValueError(
            f"fine_tune: freeze_epochs={freeze_epochs} leaves no epoch of the {epochs} to train "
            "the whole net; use fewer freeze_epochs or more epochs"
        )
    if "max_epochs" in make_trainer_kwargs:
        raise TypeError("fine_tune: give the number of epochs as epochs=, not max_epochs=")
    tuning.head_name(module)  # a net without a head lightkit can find fails here, before training
    callbacks = make_trainer_kwargs.pop("callbacks", None) or []
    if not isinstance(callbacks, list):
        callbacks = [callbacks]
    make_trainer_kwargs["strategy"] = _with_unused_parameters(make_trainer_kwargs)
    return fit(
        module, datamodule, max_epochs=epochs, callbacks=[tuning, *callbacks], **make_trainer_kwargs
    )


def _with_unused_parameters(kwargs: dict[str, Any]) -> Any:
    """The strategy for fine-tuning: DDP variants that allow parameters without gradients."""
    strategy = kwargs.get("strategy", "auto")
    if strategy in ("ddp", "ddp_spawn", "ddp_notebook"):
        return f"{strategy}_find_unused_parameters_true"
    if strategy == "auto":
        devices, nodes = kwargs.get("devices", "auto"), kwargs.get("num_nodes", 1)
        several = (
            (isinstance(devices, int) and (devices > 1 or devices == -1))
            or (isinstance(devices, (list, tuple)) and len(devices) > 1)
            or (devices in ("auto", "-1") and torch.cuda.device_count() > 1)
            or (isinstance(nodes, int) and nodes > 1)
        )
        return "ddp_find_unused_parameters_true" if several else strategy
    return strategy


__all__ = ["fine_tune", "fit"]
