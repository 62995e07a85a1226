"""make_trainer's argument checks: each bad value is named with what was expected, before anything is built."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import Profiler

from lightkit._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path,
    check_seed,
)
from lightkit.trainer._profiling import PROFILERS
from lightkit.trainer._remote import check_run_root


def check_arguments(
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
    verbose: Any,
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
    check_devices_type(devices)
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
    check_logger(owner, logger)
    check_root_dir(owner, default_root_dir)
    if seed is not None:
        check_seed(owner, "seed", seed)
    if checkpoint_every_n_steps is not None:
        check_int(owner, "checkpoint_every_n_steps", checkpoint_every_n_steps, minimum=1)
    check_bool(owner, "nan_guard", nan_guard)
    check_version(owner, version)
    check_bool(owner, "verbose", verbose)
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


LOGGER_NAMES = ("tensorboard", "csv", "mlflow")
MLFLOW_MISSING = (
    'logger="mlflow" needs the mlflow package: pip install "lightkit[mlflow]" '
    "(or pip install mlflow)"
)


def check_logger(owner: str, logger: Any) -> None:
    """``logger``: a name, True (TensorBoard), False/None, a Logger, or a list of names and Loggers.

    ``"mlflow"`` also needs mlflow installed; that is checked here (without importing it, which
    takes seconds) so that nothing is built for a run that cannot log.
    """
    expected = (
        "'tensorboard', 'csv', True, False, a lightning Logger (for W&B and others, lightning's "
        "own, e.g. WandbLogger(...)), 'mlflow', or a list of names and Loggers"
    )
    if logger is None or isinstance(logger, bool):  # not 0 or 1: a number is no logger
        return
    items = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    if isinstance(logger, (list, tuple)) and not items:
        raise ValueError(f"{owner}: logger is an empty list; pass False for no logger")
    for item in items:
        if isinstance(item, Logger) or (isinstance(item, str) and item in LOGGER_NAMES):
            continue
        raise ValueError(f"{owner}: logger must be {expected}, got {item!r}")
    names = [item for item in items if isinstance(item, str)]
    if len(set(names)) < len(names):
        raise ValueError(f"{owner}: logger names a logger twice: {names!r}")
    if "mlflow" in names and not _importable("mlflow"):
        raise ModuleNotFoundError(f"{owner}: {MLFLOW_MISSING}")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken entry in sys.modules
        return False


def check_root_dir(owner: str, value: Any) -> None:
    """A folder path, or a URL fsspec opens (``memory://runs``, ``s3://bucket/runs``...)."""
    check_path(owner, "default_root_dir", value, "a folder path or URL")
    check_run_root(owner, value)  # a URL fsspec opens, writable, reached by every process


def check_version(owner: str, version: Any) -> None:
    if version is None or (version == "last" and isinstance(version, str)):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return
    raise ValueError(
        f"{owner}: version must be None (a new run folder), 'last' or an integer >= 0, "
        f"got {version!r}"
    )


_DEVICES_TEXT = re.compile(r"\s*(auto|-1|\d+(\s*,\s*\d+)*\s*,?)\s*")


def check_devices_type(devices: Any) -> None:
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
