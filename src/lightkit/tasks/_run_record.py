"""RunRecorder: ``run.json`` in the run folder, saying that a run is running or how it ended.

The record is what ``lightkit runs`` (:mod:`lightkit.runs`) lists: a run's status, when it
started and ended, which process runs it, its task, its monitored metric and the best value,
and how far it got. :class:`~lightkit.tasks.TaskBookkeeping` drives it from its fit hooks when
given a run folder (``lk.make_trainer`` gives it one): no callback of its own, since Lightning
checks every callback for every step hook on every batch. Writes are rare (fit start, train
start, each checkpoint, the end), small and atomic (a temporary file, then ``os.replace``),
from rank zero only.
"""

from __future__ import annotations

import json
import math
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightkit._lightning import is_mid_epoch
from lightkit._run_layout import RECORD_FILE, STATUSES

RECORD_FORMAT = 1  # the "format" field: raised when a field changes meaning
MAX_REASON = 500  # characters of an exception message or stopping reason kept in the record


class RunRecorder:
    """Keep ``<dirpath>/run.json`` up to date: ``running`` during a fit, then how it ended.

    Its ``on_*`` methods are :class:`~lightkit.tasks.TaskBookkeeping`'s fit hooks, forwarded.

    Statuses: ``running``; ``finished`` (``max_epochs`` or ``max_steps`` reached);
    ``stopped early`` (early stopping, ``max_time`` or another callback stopped the fit first);
    ``nan`` (:class:`~lightkit.callbacks.NaNGuard` stopped it, or early stopping found the
    monitored value non-finite); ``failed`` (an exception, recorded as one line ``Type:
    message`` in ``reason``); ``pruned`` (an exception class named ``TrialPruned``, as Optuna's
    pruning callback raises); ``interrupted`` (Ctrl+C, or SIGTERM as Lightning reports it). A
    killed process leaves ``running`` behind; ``lightkit runs`` shows it as ``killed`` when that
    process is gone. A resumed fit writes ``running`` again, with ``resumed_from``.

    The other fields: ``format`` (1), ``started``, ``ended`` and ``updated`` (UTC, ISO 8601),
    ``pid``, ``hostname``, ``task`` (the LightningModule's class), ``datamodule`` and
    ``batch_size`` (when the datamodule has one), ``monitor``, ``mode``, ``best`` (the first
    ``ModelCheckpoint``'s ``best_model_score``), ``epochs`` (completed), ``global_step``,
    ``max_epochs``, ``max_steps``, ``resumed_from`` and ``reason``.

    Only the fit writes the record: validating, testing or predicting later leaves it alone.

    Args:
        dirpath: The run folder (``make_trainer``'s ``<default_root_dir>/version_<n>``).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.tasks.TaskBookkeeping(run_dir="runs/a")])
    """

    def __init__(self, dirpath: str | os.PathLike[str]) -> None:
        self.dirpath = Path(dirpath)
        self._record: dict[str, Any] | None = None
        self._warned = False

    @property
    def path(self) -> Path:
        """Where the record is written: ``<dirpath>/run.json``."""
        return self.dirpath / RECORD_FILE

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record = {"format": RECORD_FORMAT, "started": _now()}
        # The module's hyperparameters as plain data: `lightkit runs` reads them here when no
        # logger wrote an hparams.yaml (logger=False, "mlflow").
        self._record["hparams"] = _plain(dict(getattr(pl_module, "hparams", {}) or {}))
        # The loops' counters are restored after this hook: a resumed run's progress comes at
        # on_train_start (until then it is not known, rather than 0).
        self._write(trainer, pl_module, "running", progress=trainer.ckpt_path is None)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._record is not None:
            self._write(trainer, pl_module, "running")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # A checkpoint marks progress: the record then says how far a killed run got.
        record = self._record
        if record is None or record.get("status") != "running" or not _fitting(trainer):
            return
        best = _number(getattr(trainer.checkpoint_callback, "best_model_score", None))
        if (record.get("global_step"), record.get("best")) != (trainer.global_step, best):
            self._write(trainer, pl_module, "running", at_checkpoint=True)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not _fitting(trainer):
            return
        if self._record is None:  # failed before on_fit_start (setup, data, a bad config)
            self._record = {"format": RECORD_FORMAT, "started": _now()}
        status, reason = classify_exception(exception)
        self._write(trainer, pl_module, status, reason=reason, ended=True)
        self._record = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._record is not None:
            status, reason = _how_it_stopped(trainer)
            self._write(trainer, pl_module, status, reason=reason, ended=True)
            self._record = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A fit Lightning's Tuner ended (learning-rate or batch-size search) reaches neither
        # on_fit_end nor on_exception.
        if stage == "fit" and self._record is not None:
            reason = "the fit ended before its training loop did (Lightning's Tuner search)"
            self._write(trainer, pl_module, "finished", reason=reason, ended=True)
            self._record = None

    def _write(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        status: str,
        *,
        reason: str | None = None,
        ended: bool = False,
        progress: bool = True,
        at_checkpoint: bool = False,
    ) -> None:
        record = self._record
        if record is None or not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback
        cls = type(pl_module)
        data = trainer.datamodule
        batch_size = getattr(data, "batch_size", None)
        epochs = trainer.current_epoch  # completed epochs
        if at_checkpoint and not is_mid_epoch(trainer):
            epochs += 1  # saved at an epoch's end, before Lightning counts the epoch completed
        record.update(
            status=status,
            reason=reason,
            ended=_now() if ended else None,
            updated=_now(),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            task=f"{cls.__module__}.{cls.__qualname__}",
            datamodule=type(data).__name__ if data is not None else None,
            batch_size=batch_size if type(batch_size) is int else None,
            monitor=getattr(checkpoint, "monitor", None),
            mode=getattr(checkpoint, "mode", None),
            best=_number(getattr(checkpoint, "best_model_score", None)),
            epochs=epochs if progress else None,
            global_step=trainer.global_step if progress else None,
            max_epochs=trainer.max_epochs,
            max_steps=trainer.max_steps,
            resumed_from=str(trainer.ckpt_path) if trainer.ckpt_path else None,
        )
        try:
            write_json_atomically(self.path, record)
        except (OSError, TypeError, ValueError) as err:
            if not self._warned:  # the record is a convenience: training goes on without it
                self._warned = True
                rank_zero_warn(f"lightkit: could not write the run record {self.path}: {err}")


def classify_exception(exception: BaseException) -> tuple[str, str]:
    """The status (``nan``, ``pruned``, ``interrupted`` or ``failed``) and one-line reason for
    an exception that ended a fit.

    Example:
        >>> classify_exception(ValueError("bad\\nvalue"))
        ('failed', 'ValueError: bad value')
    """
    names = {c.__name__ for c in type(exception).__mro__}
    if "NonFiniteError" in names:  # lightkit.callbacks.NaNGuard's (a layer above tasks)
        status = "nan"
    elif "TrialPruned" in names:  # optuna.TrialPruned, matched by name: optuna stays optional
        status = "pruned"
    elif isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
        status = "interrupted"
    else:
        status = "failed"
    try:
        message = str(exception)
    except Exception:  # a broken __str__ must not hide the exception being handled
        message = ""
    name = type(exception).__name__
    if isinstance(exception, SIGTERMException):
        message = message or "SIGTERM received"
    return status, one_line(f"{name}: {message}" if message else name)


def _how_it_stopped(trainer: L.Trainer) -> tuple[str, str | None]:
    """``finished`` when the fit reached ``max_epochs`` or ``max_steps``; otherwise who stopped it."""
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    reached = (max_steps is not None and 0 <= max_steps <= trainer.global_step) or (
        max_epochs is not None and 0 <= max_epochs <= trainer.current_epoch
    )
    if reached or not trainer.should_stop:
        return "finished", None
    for callback in trainer.early_stopping_callbacks:
        reason = getattr(callback, "stopping_reason", None)
        if reason is not None and getattr(reason, "name", "NOT_STOPPED") != "NOT_STOPPED":
            message = one_line(str(callback.stopping_reason_message or reason.name))
            nan = reason.name == "NON_FINITE_METRIC"
            return ("nan" if nan else "stopped early"), message
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback.time_remaining() <= 0:
            return "stopped early", "max_time reached"
    return "stopped early", "a callback stopped the fit (trainer.should_stop)"


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` with its whitespace runs (newlines too) collapsed to spaces, cut to ``limit``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``: a reader
    sees the old file or the new one, never half of one."""
    text = json.dumps(data, indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fitting(trainer: L.Trainer) -> bool:
    return trainer.state.fn == TrainerFn.FITTING


def _number(value: Any) -> float | None:
    """A finite float from a number or a one-element tensor (one host read), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "RECORD_FILE",
    "STATUSES",
    "RunRecorder",
    "classify_exception",
    "one_line",
    "write_json_atomically",
]


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data, keeping numbers, text, booleans and None in lists and mappings
    (a tensor or an object becomes None): what a listing of runs can show."""
    if value is None or isinstance(value, (bool, int, str)):
        return value[:200] if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= 6:
        return None
    if isinstance(value, dict):
        items = list(value.items())[:200]
        return {str(k): _plain(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in list(value)[:200]]
    return None
