"""make_trainer(): a plain ``lightning.Trainer`` with the presets a well-run project wants.

The Trainer is assembled from small steps, each readable on its own: the argument checks
(``_checks``), hardware and precision (``lightkit._hardware``), the run folder (``_run_dir``), the
profiler (``_profiling``) and the callback groups below.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    EMAWeightAveraging,
    LearningRateMonitor,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.utilities import rank_zero_only

from lightkit._hardware import (
    check_devices,
    check_strategy,
    resolve_hardware,
    resolve_precision,
)
from lightkit._lightning import set_verbosity
from lightkit._validation import check_bool, check_float
from lightkit.callbacks import (
    GPUMemoryMonitor,
    GradientNormMonitor,
    HParamsMetrics,
    ModelCheckpoint,
    NaNGuard,
    NoValidationFallback,
    PlainProgressBar,
    RNGState,
    SWAWeightAveraging,
    TorchinfoSummary,
    ValidationFigures,
)
from lightkit.callbacks.weight_averaging import check_swa_start
from lightkit.checkpointing import AtomicCheckpointIO
from lightkit.tasks import OOMMicrobatching, TaskBookkeeping
from lightkit.trainer._checks import check_arguments
from lightkit.trainer._loggers import build_loggers, check_store_loggers
from lightkit.trainer._profiling import make_profiler
from lightkit.trainer._remote import (
    StagingSync,
    StorePath,
    remove_staging,
    run_root,
    staging_folder,
)
from lightkit.trainer._run_dir import DEFAULT_ROOT, choose_run_dir


def make_trainer(
    max_epochs: int = 10,
    precision: str | int = "auto",
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    monitor: str = "val/loss",
    mode: str = "min",
    early_stopping: bool = True,
    patience: int = 10,
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    gradient_clip_algorithm: str = "norm",
    num_nodes: int = 1,
    profiler: str | Profiler | None = None,
    logger: bool | str | Logger | list[str | Logger] | None = "tensorboard",
    default_root_dir: str | os.PathLike[str] = DEFAULT_ROOT,
    seed: int | None = None,
    checkpoint_every_n_steps: int | None = None,
    nan_guard: bool = True,
    version: int | str | None = None,
    verbose: bool = False,
    ema: float | None = None,
    swa: int | float | None = None,
    oom_retry: bool = False,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Build a ``lightning.Trainer`` with lightkit's presets.

    What you get:
        * precision ``"auto"``: ``32-true`` on CPU, ``bf16-mixed`` on GPUs that support bf16,
          else ``16-mixed``; an explicit precision the hardware cannot run (fp16 AMP on the CPU,
          bf16 on a GPU without it) is an error that says what to use instead;
        * strategy ``"auto"`` is DDP when more than one device (or node) is used; ``"ddp"`` runs
          with ``find_unused_parameters=False`` (``"ddp_find_unused_parameters_true"`` if your
          model has parameters that receive no gradient); ``"ddp_spawn"`` and ``"fsdp"`` too.
          Multi-node runs: set ``num_nodes`` and launch with torchrun or SLURM (Lightning reads
          their environment). Metrics are synced across processes at epoch end, not per step;
        * ``EarlyStopping`` on ``monitor`` (when ``early_stopping``);
        * ``ModelCheckpoint`` keeping ``best.ckpt`` (by ``monitor``) and ``last.ckpt`` in
          ``<default_root_dir>/version_<n>/checkpoints/``; every run gets a new ``version_<n>``
          folder, created with ``os.mkdir`` so that two runs started at the same moment (other
          processes, other machines on a shared disk) never share one, and nothing from an
          earlier run is overwritten; paths read back from a checkpoint's callback state never
          leave that folder (:class:`~lightkit.callbacks.ModelCheckpoint`);
        * a TensorBoard logger in that same folder and a ``LearningRateMonitor`` (``logger=False``
          turns both off; ``logger="mlflow"`` or ``"csv"`` for others, see ``logger``);
        * ``seed`` → ``lightning.seed_everything(seed, workers=True)``;
        * crash safety: checkpoints are written atomically (a kill mid-save leaves the previous
          one intact), loaded with ``weights_only=True``, and carry the RNG states and the data
          position, so ``trainer.fit(..., ckpt_path="last")`` in the same run folder (see
          ``version``) continues bit-identically; with ``checkpoint_every_n_steps`` the
          ``last.ckpt`` is also refreshed every N steps for mid-epoch resume;
        * :class:`~lightkit.callbacks.NaNGuard`: a NaN/Inf loss stops training with a message
          naming the step and the last good checkpoint; non-finite weights are never saved.
        * a run record, ``<run folder>/run.json`` (kept by
          :class:`~lightkit.tasks.TaskBookkeeping`): whether the fit is running, finished,
          stopped early, hit a NaN, failed (and why), was pruned or interrupted, with the best
          monitored value and the epochs done; ``lightkit runs`` lists them.
        * what a run shows: ``train/grad_norm``, a confusion matrix, prediction grids or
          segmentation overlays (TensorBoard, MLflow), hyperparameters with final metrics
          (HPARAMS), a torchinfo summary saved as ``model_summary.txt``
          (``enable_model_summary=True`` for Lightning's instead), Rich's progress bar on a
          terminal and plain lines otherwise, and, when training on a CUDA GPU, peak GPU memory
          per epoch and advice on out-of-memory errors (:mod:`lightkit.callbacks`).

    Any other keyword (``callbacks``, ``max_steps``, ``deterministic``, ``profiler``, ...) is passed
    to ``lightning.Trainer``; your ``callbacks`` are added to lightkit's.

    Args:
        max_epochs: Maximum number of epochs.
        precision: ``"auto"`` or any Lightning precision (``"32-true"``, ``"bf16-mixed"``, ...).
        devices: Devices to use (``"auto"``, a count or a list of indices).
        strategy: ``"auto"`` or a Lightning strategy name (``"ddp"``, ...).
        monitor: Logged metric for early stopping and the best checkpoint.
        mode: ``"min"`` or ``"max"``: whether a lower or higher ``monitor`` is better.
        early_stopping: Stop when ``monitor`` has not improved for ``patience`` epochs.
        patience: Epochs without improvement before early stopping.
        gradient_clip_val: Clip gradients to this value (None: no clipping).
        accumulate_grad_batches: Batches whose gradients are summed per optimizer step (the
            loss is divided by it, so batch 8 × 4 steps like batch 32).
        gradient_clip_algorithm: ``"norm"`` (clip the global gradient norm) or ``"value"``
            (clamp each gradient element).
        num_nodes: Machines taking part (each running ``devices`` processes).
        profiler: ``None`` (no profiling, and none of the per-hook bookkeeping Lightning's
            default does), ``"simple"``, ``"advanced"``, ``"pytorch"`` or a Lightning
            ``Profiler``. Reports go to ``<run folder>/profile/`` and their paths are printed;
            ``"pytorch"`` also writes a Chrome trace (``*.pt.trace.json``, open it in
            ``chrome://tracing`` or https://ui.perfetto.dev).
        logger: A logger by name, ``False``, a Lightning ``Logger`` (``WandbLogger``, your own
            ``MLFlowLogger(...)``...), or a list of them (``["tensorboard", "mlflow"]``; in YAML
            or on the command line ``--trainer.logger=mlflow``, ``[tensorboard, mlflow]``):

            * ``"tensorboard"`` (``True``): event files in the run folder;
            * ``"csv"``: ``<run folder>/metrics.csv`` (one row per logging step, which
              ``pandas.read_csv`` reads) and ``hparams.yaml``; a resumed run appends to it;
            * ``"mlflow"`` (``pip install "lightkit[mlflow]"``; mlflow is imported only then):
              Lightning's ``MLFlowLogger`` (its ``log_dir`` the run folder) with metrics,
              hyperparameters (params) and images. No server needed: the store is
              ``<default_root_dir>/mlflow.db`` (SQLite) with artifacts in
              ``<default_root_dir>/mlartifacts/``, one store for all the runs of that folder
              (``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``); the
              ``MLFLOW_TRACKING_URI`` environment variable sends the runs to a tracking server
              or database instead. The experiment is ``MLFLOW_EXPERIMENT_NAME``, else the
              ``default_root_dir`` folder's name; each MLflow run is named after its run folder
              (``version_<n>``) and tagged ``lightkit.run_dir`` with its path, and an existing
              run folder (``version=``, resuming with ``ckpt_path="last"``) continues its MLflow
              run.

            The validation figures (and ``lk.interpret``'s pictures) go to every logger that
            takes images (TensorBoard and MLflow); the HPARAMS table to TensorBoard.
        default_root_dir: Folder holding one ``version_<n>`` folder per run, or an fsspec URL
            (``"memory://runs"``, ``"s3://bucket/runs"`` with s3fs installed, ...): the
            checkpoints are written there (write-then-commit: a save killed part-way never
            leaves a half-written ``last.ckpt`` or ``best.ckpt``; resume and
            ``Predictor.from_checkpoint`` read them from there), and everything else the run
            writes (TensorBoard or CSV logs, ``run.json``, the model summary, profiles) goes to
            a local staging folder, ``trainer.default_root_dir``
            (``$LIGHTKIT_STAGING_DIR`` or the system's temporary folder), copied to the run
            folder at every checkpoint, at the end of fit/validate/test/predict and on an error,
            and removed after a last copy once the trainer is garbage collected or the process
            exits (kept, with a warning naming it, if that copy failed). Read-only stores
            (``http://``...) are refused, and so is ``memory://`` under torchrun or srun (each
            process has its own). ``logger="mlflow"`` then needs ``MLFLOW_TRACKING_URI``. A ``file://`` URL is the
            local folder it names. In object stores (S3...), which have no folders, two runs
            started at the same instant could claim the same ``version_<n>``: pass ``version=``
            there when runs start together.
        seed: Seed every RNG (torch, numpy, Python, workers) when the trainer is built. Nets
            built before that start from unseeded weights: build the trainer first, or call
            ``lightning.seed_everything(seed)`` before the net, for reproducible runs.
        checkpoint_every_n_steps: Also write ``last.ckpt`` every N optimizer steps.
        nan_guard: Stop at the first non-finite loss (see :class:`~lightkit.callbacks.NaNGuard`).
        version: The run folder: None for a new ``version_<n>`` (claimed atomically: runs
            started at the same moment never share one), ``"last"`` for the newest run that
            holds a checkpoint (a new folder when none does), or a number for
            ``version_<number>`` (created if missing).
        verbose: Show Lightning's information lines ("GPU available", "Seed set to",
            "Restoring states", tips). By default only lightkit's own lines are shown (the model
            summary, one progress line per epoch), with every warning and error. It sets the
            level of Lightning's loggers for the whole process.
        ema: Keep an exponential moving average of the weights with this decay (``0.999`` is
            usual; in (0, 1)), updated after every optimizer step (Lightning's
            ``EMAWeightAveraging``). Validation, early stopping and the best checkpoint use the
            averaged weights, and every checkpoint's ``state_dict`` holds them (so
            ``load_from_checkpoint``, ``Predictor``, export and serve use them); the raw weights
            and the average's state travel in the checkpoint too, so a resumed run continues
            exactly. None: no averaging.
        swa: Stochastic weight averaging: the equal average of the weights at the end of every
            epoch from this one on, an epoch index (int) or a fraction of ``max_epochs`` (``0.75``:
            the last quarter); validation, the best checkpoint, ``Predictor``, export and serve
            use the average once it exists, and a killed run resumes exactly
            (:class:`~lightkit.callbacks.SWAWeightAveraging`). Not together with ``ema``.
        oom_retry: On an out-of-memory error in a step, retry the same batch in microbatches
            (halving until they fit), with the same gradient and optimizer step
            (:class:`~lightkit.tasks.OOMMicrobatching`; ``lk.fit`` turns it on by default).

    Returns:
        A plain ``lightning.Trainer``.

    Example:
        >>> trainer = lk.make_trainer(max_epochs=1, seed=0, enable_model_summary=False)
        >>> trainer.fit(module, datamodule=dm)  # a line per epoch (a Rich bar on a terminal)
        epoch 1/1 done in ... s  train/loss ...  val/loss ...
        >>> trainer.checkpoint_callback.best_model_path  # by monitor="val/loss"
        '...runs/version_0/checkpoints/best.ckpt'
        >>> [(run.run, run.status, run.epochs) for run in lk.runs.list_runs("runs")]  # run.json
        [('version_0', 'finished', 1)]
    """
    check_arguments(
        max_epochs=max_epochs,
        precision=precision,
        devices=devices,
        monitor=monitor,
        mode=mode,
        early_stopping=early_stopping,
        patience=patience,
        gradient_clip_val=gradient_clip_val,
        accumulate_grad_batches=accumulate_grad_batches,
        gradient_clip_algorithm=gradient_clip_algorithm,
        num_nodes=num_nodes,
        profiler=profiler,
        logger=logger,
        default_root_dir=default_root_dir,
        seed=seed,
        checkpoint_every_n_steps=checkpoint_every_n_steps,
        nan_guard=nan_guard,
        version=version,
        verbose=verbose,
        callbacks=trainer_kwargs.get("callbacks"),
    )
    if ema is not None:
        check_float("make_trainer", "ema", ema, 0.0, 1.0, min_inclusive=False, max_inclusive=False)
    check_bool("make_trainer", "oom_retry", oom_retry)
    if swa is not None:
        check_swa_start("make_trainer", "swa", swa)
        if ema is not None:
            raise ValueError(
                "make_trainer: ema and swa are two ways to average the weights; pick one "
                f"(got ema={ema}, swa={swa})"
            )
    set_verbosity(verbose)
    accelerator = trainer_kwargs.pop("accelerator", "auto")
    hardware = resolve_hardware(accelerator)
    check_strategy(strategy)
    check_devices(devices, hardware)
    precision = resolve_precision(precision, hardware)
    if seed is not None:
        L.seed_everything(seed, workers=True, verbose=verbose)

    root = run_root(default_root_dir)
    if isinstance(root, StorePath):
        check_store_loggers(logger, root)
    run_dir, claimed = choose_run_dir(root, version)
    staging = None
    try:
        # A run folder in a store: the run writes to a local staging folder, copied there.
        # Only rank 0 writes there, so only rank 0 stages an existing run's files.
        fresh = claimed or rank_zero_only.rank != 0
        local = run_dir if isinstance(run_dir, Path) else staging_folder(run_dir, new_run=fresh)
        if isinstance(run_dir, StorePath):
            staging = StagingSync(local, run_dir)
        loggers = build_loggers(logger, local, new_run=claimed, verbose=verbose)
        callbacks = [
            # also keeps <run_dir>/run.json; the task's own (configure_callbacks) is left out
            TaskBookkeeping(local),
            *_checkpoint_callbacks(run_dir, monitor, mode, checkpoint_every_n_steps),
            *_safety_callbacks(nan_guard, early_stopping, monitor, mode, patience),
            *_observability_callbacks(loggers is not False, hardware, trainer_kwargs),
            *([EMAWeightAveraging(decay=ema)] if ema is not None else []),
            *([SWAWeightAveraging(start=swa)] if swa is not None else []),
            *([OOMMicrobatching()] if oom_retry else []),
            *_as_list(trainer_kwargs.pop("callbacks", None)),
            *([staging] if staging is not None else []),
        ]
        if trainer_kwargs.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(progress_bar())
        trainer_kwargs.setdefault("log_every_n_steps", 20)
        trainer = L.Trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            precision=precision,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm
            if gradient_clip_val is not None
            else None,
            accumulate_grad_batches=accumulate_grad_batches,
            profiler=make_profiler(profiler, local),
            logger=loggers,
            callbacks=callbacks,
            default_root_dir=str(local),
            plugins=_plugins(trainer_kwargs.pop("plugins", None)),
            **trainer_kwargs,
        )
        if staging is not None:  # removed after a last copy once the trainer is gone
            staging.remove_with(trainer)
        return trainer
    except BaseException:
        if staging is not None:
            remove_staging(staging.local)
        if claimed:  # a trainer that was never built leaves no empty run folder behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise


def _checkpoint_callbacks(
    run_dir: Path | StorePath, monitor: str, mode: str, every_n_steps: int | None
) -> list[Callback]:
    """``best.ckpt`` (by ``monitor``) and ``last.ckpt``; with ``every_n_steps``, a step refresh."""
    folder = run_dir / "checkpoints"
    dirpath = folder if isinstance(folder, Path) else os.fspath(folder)  # a store's: its URL
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,  # best.ckpt and last.ckpt are replaced (atomically)
        )
    ]
    if every_n_steps is not None:
        # Refreshes last.ckpt every N steps (save_top_k=0: no extra files are kept).
        callbacks.append(
            ModelCheckpoint(
                dirpath=dirpath,
                every_n_train_steps=every_n_steps,
                save_top_k=0,
                save_last=True,
                enable_version_counter=False,  # the same last.ckpt as the epoch-end saves
            )
        )
    return callbacks


def _safety_callbacks(
    nan_guard: bool, early_stopping: bool, monitor: str, mode: str, patience: int
) -> list[Callback]:
    """Exact resume (RNG states), the NaN guard, early stopping and the no-validation fallback."""
    callbacks: list[Callback] = [RNGState()]
    if nan_guard:
        callbacks.append(NaNGuard())
    if early_stopping:
        # strict=False: a run that ends before its first validation (max_steps) is no error;
        # NoValidationFallback still reports a monitor that validation never logs.
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience, strict=False))
    callbacks.append(NoValidationFallback())
    return callbacks


def _observability_callbacks(
    logging: bool, hardware: str, trainer_kwargs: dict[str, Any]
) -> list[Callback]:
    """What a run shows: LR, gradient norm, figures, HPARAMS, GPU memory and a torchinfo summary."""
    callbacks: list[Callback] = []
    if logging:
        callbacks += [
            LearningRateMonitor(logging_interval="epoch"),
            GradientNormMonitor(),
            ValidationFigures(),
            HParamsMetrics(),
        ]
    if hardware == "cuda":
        callbacks.append(GPUMemoryMonitor())
    if trainer_kwargs.get("enable_model_summary") is None:
        # torchinfo's summary (real input size, MACs, saved to model_summary.txt) replaces
        # Lightning's; enable_model_summary=True asks for Lightning's, False for none.
        trainer_kwargs["enable_model_summary"] = False
        callbacks.append(TorchinfoSummary())
    return callbacks


def _as_list(callbacks: Callback | list[Callback] | None) -> list[Callback]:
    if callbacks is None:
        return []
    return [callbacks] if isinstance(callbacks, Callback) else list(callbacks)


def progress_bar() -> ProgressBar:
    """Rich's live progress bar on a terminal; plain periodic lines in logs, files and pipes."""
    if sys.stdout.isatty() and importlib.util.find_spec("rich") is not None:
        return RichProgressBar()
    return PlainProgressBar()


def _plugins(plugins: Any) -> list[Any]:
    """The user's plugins, plus atomic checkpoint writes unless they bring their own CheckpointIO."""
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins] if plugins else []
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


__all__ = ["make_trainer", "progress_bar"]
