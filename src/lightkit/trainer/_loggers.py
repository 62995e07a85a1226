"""The loggers ``make_trainer(logger=...)`` names (TensorBoard, CSV, MLflow) for one run folder."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock  # a dependency of torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lightkit._lightning import RunCSVLogger
from lightkit.trainer._checks import MLFLOW_MISSING

MLFLOW_STORE = "mlflow.db"  # next to the run folders: <default_root_dir>/mlflow.db
MLFLOW_ARTIFACTS = "mlartifacts"  # <default_root_dir>/mlartifacts/<run id>/artifacts/
RUN_DIR_TAG = "lightkit.run_dir"  # an MLflow run's tag: the run folder it belongs to
# The default stores chosen in this process. Lightning's MLFlowLogger calls mlflow's
# set_tracking_uri, which also sets MLFLOW_TRACKING_URI: such a value is no choice of the user's.
_DEFAULT_STORES: set[str] = set()
_CHOSEN_ENV = "LIGHTKIT_MLFLOW_DEFAULT_STORES"  # the stores lightkit chose, for child processes


def build_loggers(
    logger: Any, run_dir: Path, new_run: bool, verbose: bool = False
) -> Logger | list[Logger] | bool:
    """The loggers ``logger`` names (checked before), for the run folder ``run_dir``.

    ``new_run``: ``run_dir`` was just created (an existing one continues its MLflow run).
    """
    if logger is False or logger is None:
        return False
    items = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    built = [_one_logger(item, run_dir, new_run, verbose) for item in items]
    return built[0] if len(built) == 1 else built


def _one_logger(logger: Any, run_dir: Path, new_run: bool, verbose: bool) -> Logger:
    if isinstance(logger, Logger):
        return logger
    if logger is True or logger == "tensorboard":
        return TensorBoardLogger(
            save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
        )
    if logger == "mlflow":
        return mlflow_logger(run_dir, new_run, verbose)
    # "csv": <run folder>/metrics.csv (and hparams.yaml), one row per logging step
    return RunCSVLogger(save_dir=str(run_dir.parent), name="", version=run_dir.name)


def check_store_loggers(logger: Any, root: Any) -> None:
    """For a ``default_root_dir`` in an fsspec store (``root``): logger='mlflow' needs a tracking
    store of its own, since its default one is a SQLite file beside the run folders."""
    items = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    if "mlflow" in items and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise ValueError(
            f"make_trainer: logger='mlflow' keeps its store beside the run folders, as a SQLite "
            f"file, which cannot live at default_root_dir={os.fspath(root)!r}; set "
            "MLFLOW_TRACKING_URI to a tracking server or database, or log with 'tensorboard' or "
            "'csv' (their files are copied to the run folder)"
        )


class RunMLFlowLogger(MLFlowLogger):
    """Lightning's ``MLFlowLogger`` for a run folder: its ``save_dir`` and ``log_dir`` are the
    folder, as TensorBoard's and CSV's are, so ``trainer.log_dir`` (where LightningCLI saves
    ``config.yaml``, where predictions go) is the run folder when MLflow is the first logger.
    Lightning's gives None for any store but ``file:`` (which mlflow 3 refuses by default).

    Args:
        run_dir: The run folder.
        **kwargs: ``MLFlowLogger``'s arguments.
    """

    def __init__(self, run_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run_dir = run_dir

    @property
    def save_dir(self) -> str:
        return self._run_dir

    @property
    def log_dir(self) -> str:
        return self._run_dir


def mlflow_logger(run_dir: Path, new_run: bool, verbose: bool = False) -> MLFlowLogger:
    """A :class:`RunMLFlowLogger` for the run folder ``run_dir`` (mlflow is imported here only).

    * Store: the ``MLFLOW_TRACKING_URI`` environment variable when set (a server, a database),
      else a SQLite file beside the run folders, ``<root>/mlflow.db``, with artifacts in
      ``<root>/mlartifacts/`` (``root``: the folder holding ``run_dir``, make_trainer's
      ``default_root_dir``), so one ``mlflow ui --backend-store-uri sqlite:///<root>/mlflow.db``
      compares every run of the root. No server is needed.
    * Experiment: ``MLFLOW_EXPERIMENT_NAME`` when set, else the root folder's name.
    * Run: named after the run folder (``version_<n>``) and tagged ``lightkit.run_dir`` with its
      path; a run folder that already exists (``version=``, a resumed fit) continues the MLflow
      run tagged with it, so its curves go on in one run.

    Only rank zero looks the experiment and the run up (other ranks do not log).
    """
    try:
        import mlflow  # noqa: F401  (slow: only when "mlflow" is asked for)
    except ImportError as error:
        raise ModuleNotFoundError(f"make_trainer: {MLFLOW_MISSING}") from error

    root = run_dir.parent.resolve()
    given = os.environ.get("MLFLOW_TRACKING_URI")
    # mlflow.set_tracking_uri (which MLFlowLogger calls) exports the store lightkit chose into
    # the environment, where this process and those it starts would take it for the user's.
    chosen = set(os.environ.get(_CHOSEN_ENV, "").split("\n")) | _DEFAULT_STORES
    if given in chosen:
        given = None
    if not given and any(c in root.as_posix() for c in "?#%"):
        raise ValueError(
            f"make_trainer: logger='mlflow' keeps its store in default_root_dir, but "
            f"{root.as_posix()!r} holds ?, # or %, which a database URI cannot carry as they "
            "are; use another folder, or set MLFLOW_TRACKING_URI to a store of your own"
        )
    uri = given or f"sqlite:///{(root / MLFLOW_STORE).as_posix()}"
    if not given:
        _DEFAULT_STORES.add(uri)
        os.environ[_CHOSEN_ENV] = "\n".join(sorted(_DEFAULT_STORES | chosen - {""}))
    artifacts = None if given else str(root / MLFLOW_ARTIFACTS)  # a server chooses its own
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or root.name or "lightkit"
    folder = str(run_dir.resolve())
    run_id = None
    if rank_zero_only.rank == 0:
        # Runs started together into a new root would each create (migrate) the SQLite store.
        store = root / MLFLOW_STORE
        with contextlib.nullcontext() if given else FileLock(f"{store}.lock"):
            try:
                run_id = _prepare_experiment(
                    uri, name, artifacts, None if new_run else folder, verbose
                )
            except ValueError:
                raise
            except Exception as err:  # mlflow's and its store's errors, for a URI it was given
                where = f"MLFLOW_TRACKING_URI={given!r}" if given else f"the store {uri!r}"
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                raise ValueError(
                    f"make_trainer: logger='mlflow' could not use {where}: "
                    f"{type(err).__name__}: {first}"
                    + ("; unset it to log into <default_root_dir>/mlflow.db" if given else "")
                ) from err
    return RunMLFlowLogger(
        str(run_dir),
        experiment_name=name,
        run_name=run_dir.name,
        tracking_uri=uri,
        tags={RUN_DIR_TAG: folder},
        artifact_location=artifacts,
        run_id=run_id,
    )


def _prepare_experiment(
    uri: str, name: str, artifacts: str | None, folder: str | None, verbose: bool
) -> str | None:
    """Create the experiment ``name`` if missing (so Lightning does not warn that it creates it);
    return the id of the newest run tagged with ``folder`` (None: none, or no ``folder``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _quiet_store_setup(verbose):  # a new SQLite store logs its table creation
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            with contextlib.suppress(MlflowException):  # another process created it just now
                client.create_experiment(name, artifact_location=artifacts)
            return None
        if experiment.lifecycle_stage == "deleted":
            raise ValueError(
                f"make_trainer: logger='mlflow': the experiment {name!r} in {uri!r} was deleted "
                "(it is in MLflow's trash); restore it (MlflowClient(uri).restore_experiment"
                f"({experiment.experiment_id!r})), remove it for good with `mlflow gc`, or set "
                "MLFLOW_EXPERIMENT_NAME to another name"
            )
        if folder is None or "'" in folder:
            return None
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{RUN_DIR_TAG}` = '{folder}'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
    return runs[0].info.run_id if runs else None


@contextlib.contextmanager
def _quiet_store_setup(verbose: bool) -> Iterator[None]:
    """mlflow's and alembic's information lines while a store is opened, unless ``verbose``."""
    loggers = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic")] * (not verbose)
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


__all__ = [
    "MLFLOW_ARTIFACTS",
    "MLFLOW_STORE",
    "RUN_DIR_TAG",
    "RunMLFlowLogger",
    "build_loggers",
    "mlflow_logger",
]
