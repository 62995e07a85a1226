"""make_trainer(): a plain ``lightning.Trainer`` with the presets a well-run project wants."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.profilers import (
    AdvancedProfiler,
    PassThroughProfiler,
    Profiler,
    PyTorchProfiler,
    SimpleProfiler,
)
from lightning.pytorch.strategies import Strategy, StrategyRegistry
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from lightning.pytorch.utilities.memory import is_oom_error

from lightkit._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path,
    check_seed,
)
from lightkit.callbacks import (
    GPUMemoryMonitor,
    GradientNormMonitor,
    HParamsMetrics,
    NaNGuard,
    PlainProgressBar,
    RNGState,
    TorchinfoSummary,
    ValidationFigures,
)
from lightkit.callbacks import ModelCheckpoint as SafeModelCheckpoint
from lightkit.checkpointing import AtomicCheckpointIO, CheckpointError, load_checkpoint

PRECISIONS = (
    "auto",
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
)
_RUN_DIR_ENV = "LIGHTKIT_RUN_DIR"
_DEFAULT_ROOT = "runs"
_PRECISION_ALIASES = ("32", "16", "bf16", "64", 32, 16, 64)


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
    logger: str | bool | Logger = "tensorboard",
    default_root_dir: str | os.PathLike[str] = _DEFAULT_ROOT,
    seed: int | None = None,
    checkpoint_every_n_steps: int | None = None,
    nan_guard: bool = True,
    version: int | str | None = None,
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
          turns both off);
        * ``seed`` → ``lightning.seed_everything(seed, workers=True)``;
        * crash safety: checkpoints are written atomically (a kill mid-save leaves the previous
          one intact), loaded with ``weights_only=True``, and carry the RNG states and the data
          position, so ``trainer.fit(..., ckpt_path="last")`` in the same run folder (see
          ``version``) continues bit-identically; with ``checkpoint_every_n_steps`` the
          ``last.ckpt`` is also refreshed every N steps for mid-epoch resume;
        * :class:`~lightkit.callbacks.NaNGuard`: a NaN/Inf loss stops training with a message
          naming the step and the last good checkpoint; non-finite weights are never saved.
        * what a run shows: ``train/grad_norm``, a confusion matrix, prediction grids or
          segmentation overlays in TensorBoard, hyperparameters with final metrics (HPARAMS), a
          torchinfo summary saved as ``model_summary.txt`` (``enable_model_summary=True`` for
          Lightning's instead), Rich's progress bar on a terminal and plain lines otherwise,
          and, when training on a CUDA GPU, peak GPU memory per epoch and advice on
          out-of-memory errors (:mod:`lightkit.callbacks`).

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
        logger: ``"tensorboard"``, ``False``, or a Lightning ``Logger``.
        default_root_dir: Folder holding one ``version_<n>`` folder per run.
        seed: Seed every RNG (torch, numpy, Python, workers) when the trainer is built. Nets
            built before that start from unseeded weights: build the trainer first, or call
            ``lightning.seed_everything(seed)`` before the net, for reproducible runs.
        checkpoint_every_n_steps: Also write ``last.ckpt`` every N optimizer steps.
        nan_guard: Stop at the first non-finite loss (see :class:`~lightkit.callbacks.NaNGuard`).
        version: The run folder: None for a new ``version_<n>`` (claimed atomically: runs
            started at the same moment never share one), ``"last"`` for the newest run that
            holds a checkpoint (a new folder when none does), or a number for
            ``version_<number>`` (created if missing).

    Returns:
        A plain ``lightning.Trainer``.

    Example:
        >>> trainer = lk.make_trainer(max_epochs=20, seed=0)
        >>> trainer.fit(module, datamodule=dm)
        >>> trainer.checkpoint_callback.best_model_path
    """
    _check_arguments(
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
        callbacks=trainer_kwargs.get("callbacks"),
    )
    accelerator = trainer_kwargs.pop("accelerator", "auto")
    hardware = _hardware(accelerator)
    _check_strategy(strategy)
    _check_devices(devices, hardware)
    precision = _resolve_precision(precision, hardware)
    if seed is not None:
        L.seed_everything(seed, workers=True)

    run_dir, claimed = _choose_run_dir(Path(default_root_dir), version)
    try:
        callbacks: list[Callback] = [
            SafeModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="best",
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                save_last=True,
                enable_version_counter=False,  # best.ckpt and last.ckpt are replaced (atomically)
            )
        ]
        if checkpoint_every_n_steps is not None:
            # Refreshes last.ckpt every N steps (save_top_k=0: no extra files are kept).
            callbacks.append(
                SafeModelCheckpoint(
                    dirpath=run_dir / "checkpoints",
                    every_n_train_steps=checkpoint_every_n_steps,
                    save_top_k=0,
                    save_last=True,
                    enable_version_counter=False,  # the same last.ckpt as the epoch-end saves
                )
            )
        callbacks.append(RNGState())
        if nan_guard:
            callbacks.append(NaNGuard())
        if early_stopping:
            # strict=False: a run that ends before its first validation (max_steps) is no error;
            # _NoValidationFallback still reports a monitor that validation never logs.
            callbacks.append(
                EarlyStopping(monitor=monitor, mode=mode, patience=patience, strict=False)
            )
        callbacks.append(_NoValidationFallback())
        profiler = _make_profiler(profiler, run_dir)
        loggers = _make_logger(logger, run_dir)
        if loggers is not False:
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
            callbacks += [GradientNormMonitor(), ValidationFigures(), HParamsMetrics()]
        if hardware == "cuda":
            callbacks.append(GPUMemoryMonitor())
        if trainer_kwargs.get("enable_model_summary") is None:
            # torchinfo's summary (real input size, MACs, saved to model_summary.txt) replaces
            # Lightning's; enable_model_summary=True asks for Lightning's, False for none.
            trainer_kwargs["enable_model_summary"] = False
            callbacks.append(TorchinfoSummary())
        user_callbacks = trainer_kwargs.pop("callbacks", None) or []
        if isinstance(user_callbacks, Callback):
            user_callbacks = [user_callbacks]
        callbacks.extend(user_callbacks)
        if trainer_kwargs.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(_progress_bar())
        trainer_kwargs.setdefault("log_every_n_steps", 20)
        plugins = trainer_kwargs.pop("plugins", None) or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())

        return L.Trainer(
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
            profiler=profiler,
            logger=loggers,
            callbacks=callbacks,
            default_root_dir=str(run_dir),
            plugins=plugins,
            **trainer_kwargs,
        )
    except BaseException:
        if claimed:  # a trainer that was never built leaves no empty run folder behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise


class _NoValidationFallback(Callback):
    """Without validation data, monitor ``train/loss`` instead of ``val/loss`` (with a warning).

    A run on a lightkit DataModule with ``val_split=0`` (or with ``limit_val_batches=0``) logs no
    ``val/*``; early stopping and the best checkpoint then follow the training loss. Any other
    ``val/`` monitor cannot be replaced by a training metric: that is an error saying what to do.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not _has_no_validation(trainer):
            return
        monitored = [
            c
            for c in trainer.callbacks
            if isinstance(c, (EarlyStopping, ModelCheckpoint)) and c.monitor
        ]
        for callback in monitored:
            if not callback.monitor.startswith("val/"):
                continue
            if callback.monitor != "val/loss":
                raise ValueError(
                    f"make_trainer: monitor={callback.monitor!r} needs validation data, and this run "
                    "has none; pass validation data (for example val_split=0.1 on the DataModule), "
                    "monitor a training metric, or set early_stopping=False"
                )
            callback.monitor = "train/loss"
        if monitored:
            rank_zero_warn(
                "lightkit: this run has no validation data, so early stopping and the best "
                "checkpoint follow train/loss instead of val/loss"
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A monitor that validation never logs (a typo) would silently disable early stopping.
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for callback in trainer.callbacks:
            if (
                isinstance(callback, EarlyStopping)
                and callback.monitor.startswith("val/")
                and callback.monitor not in trainer.callback_metrics
            ):
                logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
                raise ValueError(
                    f"make_trainer: monitor={callback.monitor!r} was not logged by validation; "
                    f"it logged {', '.join(logged) or 'nothing'}"
                )


PROFILERS = ("simple", "advanced", "pytorch")


_NO_OP = contextlib.nullcontext()


class _NoProfiler(PassThroughProfiler):
    """Lightning's "no profiler", minus the cost of a generator per hook call.

    Lightning wraps every hook call (each callback's included: about a hundred per training step
    with lightkit's callbacks) in ``profiler.profile(name)``; the base class makes that a
    ``@contextmanager`` generator that calls ``start`` and ``stop``, which do nothing here. This
    one hands back one shared no-op context instead.
    """

    def profile(self, action_name: str) -> contextlib.nullcontext[None]:  # type: ignore[override]
        return _NO_OP


def _make_profiler(profiler: str | Profiler | None, run_dir: Path) -> Profiler:
    """A Lightning profiler writing into ``<run_dir>/profile/``, announcing its files when done."""
    if profiler is None:
        return _NoProfiler()
    if isinstance(profiler, Profiler):
        return profiler
    folder = run_dir / "profile"
    if profiler == "simple":
        made: Profiler = SimpleProfiler(dirpath=folder, filename="report")
    elif profiler == "advanced":
        made = AdvancedProfiler(dirpath=folder, filename="report")
    elif profiler == "pytorch":
        made = PyTorchProfiler(dirpath=folder, filename="report", export_to_chrome=True)
    else:
        raise ValueError(
            f"make_trainer: unknown profiler {profiler!r}; expected None, "
            + ", ".join(repr(p) for p in PROFILERS)
            + " or a lightning Profiler"
        )
    describe = made.describe

    def describe_and_announce() -> None:
        # The Trainer calls describe() last, after every callback, once the reports are written.
        describe()
        files = sorted(folder.glob("*")) if folder.is_dir() else []
        if files and rank_zero_only.rank == 0:
            for f in files:
                if f.suffix == ".txt":
                    print(f"lightkit: profiler report {f}")
            for f in (f for f in files if f.suffix == ".json"):
                print(f"lightkit: Chrome trace {f} (open in chrome://tracing or ui.perfetto.dev)")

    made.describe = describe_and_announce  # type: ignore[method-assign]
    return made


def _has_no_validation(trainer: L.Trainer) -> bool:
    from lightkit.data.datamodule import DataModule

    if trainer.limit_val_batches == 0:
        return True
    datamodule = trainer.datamodule
    return isinstance(datamodule, DataModule) and datamodule.val_dataset is None


def _progress_bar() -> ProgressBar:
    """Rich's live progress bar on a terminal; plain periodic lines in logs, files and pipes."""
    if sys.stdout.isatty() and importlib.util.find_spec("rich") is not None:
        return RichProgressBar()
    return PlainProgressBar()


def _hardware(accelerator: Any) -> str:
    """What the run will train on: ``"cuda"``, ``"cpu"``, ``"mps"`` or another accelerator name."""
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    return accelerator if isinstance(accelerator, str) else type(accelerator).__name__


def _resolve_precision(precision: str | int, hardware: str) -> str | int:
    if precision not in PRECISIONS and precision not in _PRECISION_ALIASES:
        raise ValueError(
            f"make_trainer: unknown precision {precision!r}; expected one of "
            + ", ".join(repr(p) for p in PRECISIONS)
        )
    if precision == "auto":
        if hardware != "cuda":
            return "32-true"
        return "bf16-mixed" if native_bf16() else "16-mixed"
    name = str(precision)
    if hardware == "cpu" and name in ("16", "16-mixed"):
        raise ValueError(
            f"make_trainer: precision={precision!r} (fp16 mixed precision) needs a GPU; on the CPU "
            "use '32-true', or 'bf16-mixed' where the CPU has fast bf16 (precision='auto' picks "
            "for you)"
        )
    if hardware == "cuda" and name.startswith("bf16") and not native_bf16():
        device = torch.cuda.get_device_name()
        major, minor = torch.cuda.get_device_capability()
        raise ValueError(
            f"make_trainer: precision={precision!r} needs a GPU with native bf16 (compute "
            f"capability 8.0 or newer); {device} has {major}.{minor}. Use '16-mixed' (with "
            "loss scaling) or precision='auto'"
        )
    if (
        name.startswith("transformer-engine")
        and importlib.util.find_spec("transformer_engine") is None
    ):
        raise ValueError(
            f"make_trainer: precision={precision!r} needs NVIDIA's transformer_engine package, "
            "which is not installed; use 'bf16-mixed' or precision='auto'"
        )
    return precision


# Strategy names lightkit documents; any other name in Lightning's registry works too.
STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")


def _check_strategy(strategy: Any) -> None:
    if not isinstance(strategy, str):
        if isinstance(strategy, Strategy):
            return
        raise TypeError(
            f"make_trainer: strategy must be a name or a lightning Strategy, got {strategy!r}"
        )
    if strategy == "auto" or strategy in StrategyRegistry.available_strategies():
        return
    if strategy in ("dp", "ddp2", "data_parallel"):
        raise ValueError(
            f"make_trainer: strategy={strategy!r}: Lightning 2 has no DataParallel; use 'ddp' "
            "(one process per GPU, faster and what PyTorch recommends)"
        )
    others = sorted(set(StrategyRegistry.available_strategies()) - set(STRATEGIES))
    raise ValueError(
        f"make_trainer: unknown strategy {strategy!r}; expected one of "
        + ", ".join(repr(s) for s in STRATEGIES)
        + " (or another Lightning strategy: "
        + ", ".join(others)
        + ")"
    )


def _check_devices(devices: Any, hardware: str) -> None:
    if devices == "auto" or devices == -1 or devices == "-1":
        return
    if hardware == "cuda":
        available = torch.cuda.device_count()
        what = f"this machine has {available} CUDA GPU(s)"
    elif hardware == "cpu":
        available = os.cpu_count() or 1
        what = f"this machine has {available} CPU core(s), one process per device"
    else:
        return  # Lightning checks other accelerators itself
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1:
            raise ValueError(
                f"make_trainer: devices must be 'auto', -1, a positive count or a list of "
                f"indices, got {devices!r}"
            )
        if devices > available:
            raise ValueError(
                f"make_trainer: devices={devices} but {what}; use at most {available}, or "
                "devices='auto'"
            )
    elif isinstance(devices, (list, tuple)) and hardware == "cuda":
        bad = [d for d in devices if not isinstance(d, int) or not 0 <= d < available]
        if bad:
            raise ValueError(
                f"make_trainer: devices={list(devices)} names GPU(s) {bad}, but {what} "
                f"(indices 0..{available - 1})"
            )


def native_bf16() -> bool:
    """Whether the current CUDA GPU runs bf16 natively (Ampere and newer), not by emulation."""
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the argument
        return torch.cuda.get_device_capability()[0] >= 8


def _make_logger(logger: str | bool | Logger, run_dir: Path) -> Logger | bool:
    if logger is False or logger is None:
        return False
    if logger is True or logger == "tensorboard":
        return TensorBoardLogger(
            save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
        )
    if isinstance(logger, Logger):
        return logger
    raise ValueError(
        f"make_trainer: logger must be 'tensorboard', False or a lightning Logger, got {logger!r}"
    )


# --- run folders -------------------------------------------------------------------------------

_VERSION = re.compile(r"version_(\d+)")


def _versions(root: Path) -> list[int]:
    """The numbers of the ``version_<n>`` entries under ``root``, ascending."""
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for name in names if (m := _VERSION.fullmatch(name)))


def _make_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            f"make_trainer: default_root_dir={os.fspath(root)!r} is a file; it must be a folder "
            "(one version_<n> folder per run goes inside)"
        ) from None


def _claim_run_dir(root: Path) -> Path:
    """Create a new ``root/version_<n>`` folder that no other run holds, and return it.

    ``os.mkdir`` fails when the folder already exists, so of runs that start at the same moment
    (threads, processes, or machines sharing the file system) each gets a folder of its own: a
    run that loses the race for a number takes the next one. The listing only picks where to
    start counting.
    """
    _make_root(root)
    number = max(_versions(root), default=-1) + 1
    while True:
        path = root / f"version_{number}"
        try:
            os.mkdir(path)
        except FileExistsError:
            number += 1
            continue
        return path


def _checkpoint_files(run_dir: Path) -> list[Path]:
    """The run's ``.ckpt`` files, in the order a resume tries them: ``last.ckpt``, then newest."""
    files = []
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        try:  # a file removed meanwhile is no candidate
            if path.is_file():
                files.append((path.name != "last.ckpt", -path.stat().st_mtime, path.name, path))
        except OSError:
            continue
    return [entry[-1] for entry in sorted(files)]


def _newest_run_with_checkpoint(root: Path) -> Path | None:
    for number in reversed(_versions(root)):
        if _checkpoint_files(root / f"version_{number}"):
            return root / f"version_{number}"
    return None


def _choose_run_dir(root: Path, version: int | str | None) -> tuple[Path, bool]:
    """The run folder for ``version`` and whether this call created it (claimed a new one).

    Only rank 0 creates folders. The DDP workers Lightning starts by re-running the script
    inherit rank 0's folder through an environment variable; choosing again would pick the next.
    """
    inherited = os.environ.get(_RUN_DIR_ENV)
    if rank_zero_only.rank != 0:
        if version is None and inherited:
            return Path(inherited), False
        if isinstance(version, int):
            return root / f"version_{version}", False
        newest = _newest_run_with_checkpoint(root) if version == "last" else None
        return newest or root / f"version_{max(_versions(root), default=-1) + 1}", False
    claimed = False
    if isinstance(version, int):
        path = root / f"version_{version}"
        _make_root(root)
        try:
            os.mkdir(path)
            claimed = True
        except FileExistsError:
            if not path.is_dir():
                raise NotADirectoryError(
                    f"make_trainer: {os.fspath(path)!r} exists and is not a folder"
                ) from None
    else:
        found = _newest_run_with_checkpoint(root) if version == "last" else None
        path, claimed = (found, False) if found is not None else (_claim_run_dir(root), True)
    os.environ[_RUN_DIR_ENV] = str(path)  # inherited by the processes DDP launches
    return path, claimed


# --- fit ---------------------------------------------------------------------------------------


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

    ``oom_retry``: when training runs out of memory (CUDA's, or the CPU allocator's), the
    datamodule's ``batch_size`` is halved and ``accumulate_grad_batches`` doubled, so the
    effective batch (and the learning-rate schedule) stays the same (for an odd batch size, one
    sample smaller). Training then resumes from the run's ``last.ckpt`` (or starts over from the
    initial weights when there is none yet). Each retry is reported with the new sizes; after
    batch size 1 the error is raised. The datamodule needs a ``batch_size`` attribute (every
    lightkit DataModule has one). Runs on several processes re-raise at once: their ranks would
    have to agree on the retry.

    Args:
        module: The LightningModule to train.
        datamodule: Its data.
        resume: Continue the newest run under ``default_root_dir`` that has a usable checkpoint.
        oom_retry: Retry with half the batch size after CUDA out-of-memory errors.
        **make_trainer_kwargs: Passed to :func:`make_trainer`.

    Returns:
        The ``lightning.Trainer`` after fitting (the last one, after retries).

    Raises:
        CheckpointError: ``resume=True`` and the run to continue has checkpoints, none of which
            loads.

    Example:
        >>> trainer = lk.fit(module, dm, resume=True, max_epochs=20, checkpoint_every_n_steps=100)
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
        root = make_trainer_kwargs.get("default_root_dir", _DEFAULT_ROOT)
        _check_root_dir("fit", root)
        version = make_trainer_kwargs.get("version")
        _check_version("fit", version)
        found, fresh_note = _resume_point(Path(root), version)
        if found is not None:
            make_trainer_kwargs["version"] = int(found.parent.parent.name.removeprefix("version_"))
            ckpt_path = str(found)
        elif version == "last":
            make_trainer_kwargs["version"] = None  # nothing to continue: a new run folder
    trainer = make_trainer(**make_trainer_kwargs)
    if fresh_note:
        rank_zero_warn(f"{fresh_note}; starting a new run in {trainer.default_root_dir}")
    initial_weights = (
        {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        if oom_retry and ckpt_path is None
        else None
    )
    while True:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            return trainer
        except RuntimeError as err:
            if not is_oom_error(err) or not oom_retry or trainer.world_size > 1:
                raise
            batch_size = getattr(datamodule, "batch_size", None)
            if not isinstance(batch_size, int):
                raise torch.cuda.OutOfMemoryError(
                    f"{err}\nlightkit: cannot retry with a smaller batch: "
                    f"{type(datamodule).__name__} has no integer `batch_size` attribute"
                ) from err
            if batch_size <= 1:
                raise torch.cuda.OutOfMemoryError(
                    f"{err}\nlightkit: out of memory even at batch size 1; use a smaller model, "
                    "mixed precision (precision='bf16-mixed' or '16-mixed'), gradient "
                    "checkpointing (gradient_checkpointing=True on lightkit models), or a GPU "
                    "with more memory"
                ) from err
            accumulate = trainer.accumulate_grad_batches * 2
            datamodule.batch_size = batch_size // 2
            run_version = int(Path(trainer.default_root_dir).name.removeprefix("version_"))
            make_trainer_kwargs.update(accumulate_grad_batches=accumulate, version=run_version)
            del trainer
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            trainer = make_trainer(**make_trainer_kwargs)
            ckpt_path = "last" if _has_checkpoint(trainer) else None
            if ckpt_path is None and initial_weights is not None:
                module.load_state_dict(initial_weights)
            memory = "CPU" if "DefaultCPUAllocator" in str(err) else "CUDA"
            rank_zero_warn(
                f"lightkit: {memory} out of memory at batch size {batch_size}; retrying with "
                f"batch_size={batch_size // 2} and accumulate_grad_batches={accumulate} "
                f"(effective batch {batch_size // 2 * accumulate}), "
                + ("resuming from last.ckpt" if ckpt_path else "starting over")
            )


def _resume_point(root: Path, version: int | str | None) -> tuple[Path | None, str]:
    """The checkpoint ``resume=True`` continues from, or None and what was found instead.

    Runs are tried newest first (``version`` given: that one only). A run without checkpoint
    files is skipped; in the first run that has some, ``last.ckpt`` is tried, then the others,
    newest first; the first that loads is the answer. If none loads, that run's progress cannot
    be continued and must not be silently dropped: a ``CheckpointError`` names every file.
    """
    numbers = [version] if isinstance(version, int) else list(reversed(_versions(root)))
    skipped: list[str] = []
    for number in numbers:
        run_dir = root / f"version_{number}"
        files = _checkpoint_files(run_dir)
        if not files:
            if run_dir.is_dir():
                skipped.append(run_dir.name)
            continue
        damaged: list[str] = []
        for path in files:
            try:
                checkpoint = load_checkpoint(path)
            except CheckpointError as err:
                damaged.append(str(err))
                continue
            where = f"saved at epoch {checkpoint.get('epoch', '?')}, global step "
            where += f"{checkpoint.get('global_step', '?')}"
            if damaged:
                rank_zero_warn(
                    f"lightkit: {os.fspath(files[0])!r} is damaged or unsafe to load; "
                    f"resuming from the newest good checkpoint instead: {os.fspath(path)!r} "
                    f"({where}). Details: {'; '.join(damaged)}"
                )
            if skipped:
                rank_zero_warn(
                    f"lightkit: resume=True continues {os.fspath(run_dir)} from {path.name} "
                    f"({where}); the newer run folder(s) {', '.join(skipped)} hold no checkpoint "
                    "and were skipped"
                )
            rank_zero_info(f"lightkit: resuming {os.fspath(run_dir)} from {path} ({where})")
            return path, ""
        raise CheckpointError(
            f"fit: resume=True cannot continue {os.fspath(run_dir)}: it has checkpoints, but none "
            f"of them loads ({'; '.join(damaged)}). Nothing was started. Move the damaged files "
            "away to resume an older run, or pass resume=False to start a new run folder"
        )
    if isinstance(version, int):
        return None, (
            f"lightkit: resume=True with version={version}: {os.fspath(root / f'version_{version}')}"
            " has no checkpoint to continue"
        )
    found = f"run folders without a checkpoint: {', '.join(skipped)}" if skipped else "no run"
    return (
        None,
        f"lightkit: resume=True found nothing to resume under {os.fspath(root)!r} ({found})",
    )


def _has_checkpoint(trainer: L.Trainer) -> bool:
    return any((Path(trainer.default_root_dir) / "checkpoints").glob("*.ckpt"))


# --- argument checks ---------------------------------------------------------------------------


def _check_arguments(
    *,
    max_epochs: Any,
    precision: Any,
    devices: Any,
    monitor: Any,
    mode: Any,
    early_stopping: Any,
    patience: Any,
    gradient_clip_val: Any,
    accumulate_grad_batches: Any,
    gradient_clip_algorithm: Any,
    num_nodes: Any,
    profiler: Any,
    logger: Any,
    default_root_dir: Any,
    seed: Any,
    checkpoint_every_n_steps: Any,
    nan_guard: Any,
    version: Any,
    callbacks: Any,
) -> None:
    """Every make_trainer argument, before anything is created: name, value and what is expected."""
    owner = "make_trainer"
    check_int(owner, "max_epochs", max_epochs, minimum=-1)
    if isinstance(precision, bool) or not isinstance(precision, (str, int)):
        raise TypeError(
            f"{owner}: precision must be a string such as 'auto' or 'bf16-mixed', got "
            f"{precision!r} ({type(precision).__name__})"
        )
    _check_devices_type(devices)
    if not isinstance(monitor, str) or not monitor.strip():
        raise (ValueError if isinstance(monitor, str) else TypeError)(
            f"{owner}: monitor must be the name of a logged metric (such as 'val/loss'), got "
            f"{monitor!r}"
        )
    check_choice(owner, "mode", mode, ("min", "max"))
    check_bool(owner, "early_stopping", early_stopping)
    check_int(owner, "patience", patience, minimum=0)
    if gradient_clip_val is not None:
        check_float(owner, "gradient_clip_val", gradient_clip_val, minimum=0, min_inclusive=False)
    check_int(owner, "accumulate_grad_batches", accumulate_grad_batches, minimum=1)
    check_choice(owner, "gradient_clip_algorithm", gradient_clip_algorithm, ("norm", "value"))
    check_int(owner, "num_nodes", num_nodes, minimum=1)
    if not (profiler is None or isinstance(profiler, Profiler) or profiler in PROFILERS):
        raise ValueError(
            f"{owner}: unknown profiler {profiler!r}; expected None, "
            + ", ".join(repr(p) for p in PROFILERS)
            + " or a lightning Profiler"
        )
    if not (logger in (None, False, True) or logger == "tensorboard" or isinstance(logger, Logger)):
        raise ValueError(
            f"{owner}: logger must be 'tensorboard', False or a lightning Logger, got {logger!r}"
        )
    _check_root_dir(owner, default_root_dir)
    if seed is not None:
        check_seed(owner, "seed", seed)
    if checkpoint_every_n_steps is not None:
        check_int(owner, "checkpoint_every_n_steps", checkpoint_every_n_steps, minimum=1)
    check_bool(owner, "nan_guard", nan_guard)
    _check_version(owner, version)
    if callbacks is not None and not isinstance(callbacks, Callback):
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"{owner}: callbacks must be a lightning Callback or a list of them, got "
                f"{callbacks!r} ({type(callbacks).__name__})"
            )
        for i, callback in enumerate(callbacks):
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"{owner}: callbacks[{i}] must be a lightning Callback, got {callback!r} "
                    f"({type(callback).__name__})"
                )


def _check_root_dir(owner: str, value: Any) -> None:
    check_path(owner, "default_root_dir", value, "a folder path")


def _check_version(owner: str, version: Any) -> None:
    if version is None or (version == "last" and isinstance(version, str)):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return
    raise ValueError(
        f"{owner}: version must be None (a new run folder), 'last' or an integer >= 0, "
        f"got {version!r}"
    )


_DEVICES_TEXT = re.compile(r"\s*(auto|-1|\d+(\s*,\s*\d+)*\s*,?)\s*")


def _check_devices_type(devices: Any) -> None:
    ok = (
        (isinstance(devices, int) and not isinstance(devices, bool))
        or (isinstance(devices, str) and _DEVICES_TEXT.fullmatch(devices) is not None)
        or (
            isinstance(devices, (list, tuple))
            and len(devices) > 0
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
        )
    )
    if not ok:
        raise TypeError(
            f"make_trainer: devices must be 'auto', -1, a positive count or a non-empty list of "
            f"device indices, got {devices!r} ({type(devices).__name__})"
        )


__all__ = ["fit", "make_trainer"]
