"""sweep(): an Optuna hyperparameter search over a lightkit config; every trial is a normal run.

The study lives in an SQLite database in the study folder, so a sweep that is stopped (even by
SIGKILL) continues where it stopped when started again, and several processes started on the
same folder share its trials. Needs the ``sweep`` extra: ``pip install "lightkit[sweep]"``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import socket
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lightkit._cli_config import lightning_cli
from lightkit._processes import alive, start_time
from lightkit._validation import check_bool, check_choice, check_int, check_seed
from lightkit.sweeps._space import (
    OWNER,
    Param,
    check_overrides,
    lookup,
    override,
    read_space,
    read_yaml,
    same_value,
)
from lightkit.sweeps._summary import run_folder, summarize

if TYPE_CHECKING:
    import optuna

__all__ = ["PRUNERS", "run_folder", "sweep"]

PRUNERS = ("median", "halving", "none")
STUDY_NAME = "lightkit"
_MAX_REASON = 500


def sweep(
    config: str | os.PathLike[str] | Mapping[str, Any],
    search_space: str | os.PathLike[str] | Mapping[str, Any],
    n_trials: int = 20,
    study_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    pruner: str = "median",
    overrides: Sequence[str] = (),
    baseline: bool = True,
) -> optuna.Study:
    """Search hyperparameters of a lightkit config with Optuna; returns the ``optuna.Study``.

    Every trial is a normal ``lightkit fit`` run of ``config`` with the searched values set, in
    ``<study_dir>/trials/version_<trial number>/`` with its own checkpoints, TensorBoard logs
    and ``config.yaml``. Its value is the best value of the trainer's ``monitor`` (``val/loss``
    unless the config says otherwise), minimised or maximised by its ``mode``; trials that fall
    behind at an epoch are pruned (``pruner``). A trial that fails (a NaN loss, out of memory,
    a value its module refuses) is recorded as failed with its reason and the sweep goes on.

    The study is the SQLite file ``<study_dir>/study.db``. ``n_trials`` counts the study's
    trials, not this call's: calling again (after a crash, a SIGKILL or Ctrl-C) runs only the
    trials still missing, and a trial that was running when its process died is run again
    (under a new number). Several processes on one ``study_dir`` (on one machine) share the
    work and run ``n_trials`` between them.

    At the end ``<study_dir>`` holds ``trials.csv``, ``best.yaml`` (the best trial's values as
    a config to add with a second ``--config``), ``importance.json`` and plots of the
    optimisation history and the parameters' importance; a table of the trials is printed.

    Args:
        config: The base config: a ``lightkit fit`` YAML file, or the same content as a dict.
        search_space: A YAML file or dict mapping dotted config keys (as the CLI takes them) to
            ``{type: float|int, low, high[, log: true][, step]}`` or ``{type: categorical,
            choices: [...]}`` (or a plain list). Unknown keys, ``low > high`` and values a key
            does not take are errors before any trial runs.
        n_trials: Trials the study should hold (finished, pruned or failed).
        study_dir: The study's folder (default ``<the config's default_root_dir>/sweep``).
        seed: Seed of the sampler (TPE): the same seed gives the same trials in one process.
        pruner: ``"median"`` (stop a trial whose value is worse than the median of earlier
            trials at the same epoch), ``"halving"`` (successive halving) or ``"none"``.
        overrides: Fixed settings for every trial, as on the command line
            (``["--trainer.max_epochs=5"]``).
        baseline: Make the study's first trial the config's own values of the searched keys
            (when each lies in the space), so the best trial is never worse than the config
            you started from and the table shows what the search gained over it.

    Returns:
        The study: ``study.best_params``, ``study.best_value``, ``study.trials``.

    Example:
        >>> config = {  # a lightkit fit config; the path of a YAML file works too
        ...     "trainer": {"max_epochs": 1, "logger": False, "enable_progress_bar": False,
        ...                 "enable_model_summary": False},
        ...     "model": {"class_path": "lightkit.SegmentationModule", "init_args": {
        ...         "num_classes": 3,
        ...         "net": {"class_path": "lightkit.models.UNet",
        ...                 "init_args": {"in_channels": 3, "num_classes": 3, "base": 4, "depth": 2}},
        ...         "optimizer": {"class_path": "lightkit.optim.adam", "init_args": {"lr": 0.003}}}},
        ...     "data": {"class_path": "lightkit.data.ShapesDataModule",
        ...              "init_args": {"num_samples": 64, "image_size": 16}},
        ... }
        >>> lr = "model.init_args.optimizer.init_args.lr"
        >>> study = lk.sweep(  # two one-epoch trials: about 20-30 s on a CPU
        ...     config, {lr: {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        ...     n_trials=2, study_dir="shapes_sweep", seed=0,
        ... )  # trial 0: the config's own lr (0.003); trial 1: Optuna's first pick
        lk.sweep: 2 trials in shapes_sweep
        ...
        best: trial ..., val/loss = ... (min): model.init_args.optimizer.init_args.lr=...
          run folder shapes_sweep/trials/version_...; train it again with: lightkit fit --config
          shapes_sweep/best.yaml
        importance: model.init_args.optimizer.init_args.lr 1.00
        >>> [trial.state.name for trial in study.trials]
        ['COMPLETE', 'COMPLETE']
        >>> sorted(study.best_params)
        ['model.init_args.optimizer.init_args.lr']
    """
    optuna = _import_optuna()
    check_int(OWNER, "n_trials", n_trials, 1, 100_000)
    if seed is not None:
        check_seed(OWNER, "seed", seed)
    check_choice(OWNER, "pruner", pruner, PRUNERS)
    check_bool(OWNER, "baseline", baseline)
    params = read_space(search_space)
    fixed = check_overrides(overrides)
    config_data, config_path = _config(config)
    # A dict goes to the CLI as JSON text, which --config takes as readily as a file.
    source = config_path if config_path is not None else json.dumps(config_data)
    base = _parse(source, fixed, "config" + (" with overrides" if fixed else ""))
    monitor = str(lookup(base, "trainer.monitor")[1] or "val/loss")
    mode = str(lookup(base, "trainer.mode")[1] or "min")
    if study_dir is None:
        study_dir = Path(str(lookup(base, "trainer.default_root_dir")[1] or "runs")) / "sweep"
    study_dir = _checked_study_dir(study_dir)
    for param in params:
        _check_param(source, fixed, param)

    study_dir.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    lock = FileLock(os.fspath(study_dir / "study.lock"))
    inputs = _fingerprints(config_data, fixed, params, monitor, mode)
    with lock:
        study = _open_study(optuna, study_dir, mode, pruner, inputs)
        _keep_inputs(study_dir, config_data, fixed, params)
        if baseline and not study.get_trials(deepcopy=False):
            _enqueue_baseline(study, base, params)

    while True:
        with lock:
            _fail_stale(optuna, study)
            if _counted(optuna, study) >= n_trials:
                break
            study.sampler = _sampler(optuna, seed, len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            trial.set_user_attr("process", _process_token())
            trial.set_user_attr("host", socket.gethostname())
        _run_trial(optuna, study, trial, params, [source, *fixed], study_dir, monitor)

    with lock:  # processes that finish together take turns writing the summary
        summarize(study, params, study_dir, monitor, mode, seed, fixed)
    return study


def _import_optuna() -> Any:
    try:
        import optuna
        import optuna_integration  # noqa: F401  (the Lightning pruning callback)
    except ImportError as err:
        raise ImportError(
            f'{OWNER} needs Optuna and optuna-integration: pip install "lightkit[sweep]" ({err})'
        ) from None
    return optuna


def _config(config: Any) -> tuple[dict[str, Any], str | None]:
    """The base config as data, and its file (None for a dict: written into the study folder)."""
    if isinstance(config, (str, os.PathLike)):
        data = read_yaml(config, "config")
        if not isinstance(data, dict):
            raise TypeError(
                f"{OWNER}: config {os.fspath(config)!r} must hold a mapping (a lightkit fit "
                f"config), got {type(data).__name__}"
            )
        return data, os.fspath(config)
    if isinstance(config, Mapping):
        return json.loads(json.dumps(dict(config), default=str)), None
    raise TypeError(
        f"{OWNER}: config must be a YAML file or a dict (a lightkit fit config), "
        f"got {type(config).__name__}"
    )


def _parse(source: str, extra: list[str], what: str) -> Any:
    """The config parsed (not built) by the lightkit CLI; a ``ValueError`` if it refuses it."""
    from jsonargparse import ArgumentError

    try:
        with _quiet():
            return lightning_cli(
                ["--config", source, *extra], run=False, instantiate=False, exit_on_error=False
            ).config
    except (ArgumentError, ValueError, TypeError) as err:
        raise ValueError(f"{OWNER}: {what}: {_short(err)}") from None


def _check_param(source: str, fixed: list[str], param: Param) -> None:
    """The config takes ``param.key`` and every value the search can give it (both ends of a
    range, every choice): checked by parsing, before any trial runs."""
    for value in param.samples():
        what = f"search space key {param.key!r}"
        parsed = _parse(source, [*fixed, override(param.key, value)], f"{what}: value {value!r}")
        found, kept = lookup(parsed, param.key)
        if not found:
            raise ValueError(
                f"{OWNER}: {what}: the config has no setting {param.key!r} (list the keys "
                "with: lightkit fit --config BASE.yaml --print_config)"
            )
        if not same_value(kept, value):
            raise ValueError(
                f"{OWNER}: {what}: the setting does not take {value!r} (it read it as "
                f"{kept!r}, a {type(kept).__name__})"
            )


def _enqueue_baseline(study: Any, base: Any, params: list[Param]) -> None:
    """The config's own values as the first trial, when every searched key has one in the space."""
    values, outside = {}, []
    for param in params:
        found, value = lookup(base, param.key)
        if found and param.contains(value):
            values[param.key] = value
        else:
            outside.append(f"{param.key}={value!r}" if found else param.key)
    if outside:
        print(
            f"{OWNER}: no baseline trial: the config's value of {', '.join(outside)} is not in "
            "the search space",
            file=sys.stderr,
        )
        return
    study.enqueue_trial(values, user_attrs={"baseline": True})


def _checked_study_dir(study_dir: Any) -> Path:
    if not isinstance(study_dir, (str, os.PathLike)):
        raise TypeError(
            f"{OWNER}: study_dir must be a folder path, got {study_dir!r} "
            f"({type(study_dir).__name__})"
        )
    path = Path(study_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{OWNER}: study_dir {os.fspath(path)!r} is a file; expected a folder (new or "
            "holding a study)"
        )
    return path


def _fingerprints(
    config: Any, fixed: list[str], params: list[Param], monitor: str, mode: str
) -> dict[str, str]:
    """A hash of each input that defines the study, so that a changed one can be named."""
    parts = {
        "config": config,
        "overrides": sorted(fixed),
        "search space": [(p.key, p.as_dict()) for p in params],
        "monitor": [monitor, mode],
    }
    return {
        name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        for name, value in parts.items()
    }


def _open_study(
    optuna: Any, study_dir: Path, mode: str, pruner: str, inputs: dict[str, str]
) -> Any:
    database = study_dir / "study.db"
    fresh = not database.exists() or database.stat().st_size == 0
    if fresh and any((study_dir / "trials").glob("version_*")):
        raise FileExistsError(
            f"{OWNER}: {os.fspath(study_dir)!r} holds trial runs but no study (study.db is "
            "missing or empty); the study they belong to is gone. Use a new study_dir (nothing "
            "here is overwritten)"
        )
    if not fresh:
        _check_database(database)
    from sqlalchemy.exc import SQLAlchemyError

    direction = "maximize" if mode == "max" else "minimize"
    try:
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{database.resolve()}",
            engine_kwargs={"connect_args": {"timeout": 60}},  # two processes may write at once
        )
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage,
            direction=direction,
            pruner=_pruner(optuna, pruner),
            load_if_exists=True,
        )
    except SQLAlchemyError as err:
        raise ValueError(
            f"{OWNER}: {os.fspath(database)!r} cannot be used as the study's database: "
            f"{_short(err)}"
        ) from None
    recorded = study.user_attrs.get("inputs")
    if recorded is None and not study.trials:
        study.set_user_attr("inputs", inputs)
    elif not isinstance(recorded, dict) or recorded != inputs:
        changed = [
            k for k in inputs if not isinstance(recorded, dict) or recorded.get(k) != inputs[k]
        ]
        raise ValueError(
            f"{OWNER}: the study in {os.fspath(study_dir)!r} was started with different "
            f"{' and '.join(changed) or 'inputs'} (its config.yaml and search_space.yaml are "
            "there); continue it with those, or give a new study_dir"
        )
    if study.direction.name.lower() != direction:
        raise ValueError(f"{OWNER}: the study in {os.fspath(study_dir)!r} does not {direction}")
    return study


def _check_database(database: Path) -> None:
    """An existing ``study.db`` must be an Optuna study database, not some other file."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise ValueError(
            f"{OWNER}: {os.fspath(database)!r} is not an SQLite database ({err}); it is not a "
            "study lightkit can continue. Use a new study_dir"
        ) from None
    if "studies" not in tables:
        raise ValueError(
            f"{OWNER}: {os.fspath(database)!r} is an SQLite database but not an Optuna study "
            "(no studies table); lightkit does not write into it. Use a new study_dir"
        )


def _keep_inputs(study_dir: Path, config: Any, fixed: list[str], params: list[Param]) -> None:
    """The base config (with the overrides), the search space, beside the study (first start)."""
    for name, data in (
        ("config.yaml", {**config, "# overrides": fixed} if fixed else config),
        ("search_space.yaml", {p.key: p.as_dict() for p in params}),
    ):
        path = study_dir / name
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            os.replace(tmp, path)


def _pruner(optuna: Any, name: str) -> Any:
    if name == "median":  # once 5 trials finished (Optuna's default), never at the 1st epoch
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def _sampler(optuna: Any, seed: int | None, number: int) -> Any:
    # One seed per trial: reproducible in one process, and two processes sharing the study
    # never draw the same values for the same reason.
    return optuna.samplers.TPESampler(seed=None if seed is None else seed + number)


def _counted(optuna: Any, study: Any) -> int:
    """Trials that count towards ``n_trials``: finished, pruned, failed with a reason, running.
    A trial whose process died (failed without a reason) does not: it is run again."""
    state = optuna.trial.TrialState
    return sum(
        t.state in (state.COMPLETE, state.PRUNED, state.RUNNING)
        or (t.state == state.FAIL and "fail_reason" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def _fail_stale(optuna: Any, study: Any) -> None:
    """Running trials whose process is gone (killed): failed, and queued to run again."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        token = trial.user_attrs.get("process")
        if token is not None and (trial.user_attrs.get("host") != host or _alive(token)):
            continue  # another machine's, or a live process's
        _retry_later(optuna, study, trial)


def _retry_later(optuna: Any, study: Any, trial: Any) -> None:
    study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    again = {"retry_of": trial.number}
    if trial.user_attrs.get("baseline"):
        again["baseline"] = True
    study.enqueue_trial(trial.params, user_attrs=again)


def _process_token() -> str:
    """This process, as ``pid:start time`` (a reused pid is another process)."""
    return f"{os.getpid()}:{start_time(os.getpid())}"


def _alive(token: Any) -> bool:
    pid_text, _, started = str(token).partition(":")
    try:
        return alive(int(pid_text), started)
    except ValueError:
        return False


def _run_trial(
    optuna: Any,
    study: Any,
    trial: Any,
    params: list[Param],
    config: list[str],
    study_dir: Path,
    monitor: str,
) -> None:
    """One trial: a lightkit fit run with the trial's values; its outcome told to the study."""
    from optuna_integration import PyTorchLightningPruningCallback

    values = {p.key: p.suggest(trial) for p in params}
    run_dir = study_dir / run_folder(trial.number)
    trial.set_user_attr("run_dir", run_folder(trial.number))  # relative: the folder may move
    if run_dir.is_dir() and any(run_dir.iterdir()):
        reason = (
            f"its run folder {os.fspath(run_dir)!r} already holds files (from a study whose "
            "database was replaced?); nothing there is overwritten"
        )
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise FileExistsError(f"{OWNER}: trial {trial.number}: {reason}. Use a new study_dir")
    print(f"{OWNER}: trial {trial.number}: {_shown(values)}", file=sys.stderr)
    built: dict[str, Any] = {}
    try:
        cli = lightning_cli(
            [
                "--config",
                *config,
                *(override(k, v) for k, v in values.items()),
                f"--trainer.default_root_dir={os.fspath(study_dir / 'trials')}",
                f"--trainer.version={trial.number}",
            ],
            run=False,
            exit_on_error=False,
        )
        built["trainer"] = trainer = cli.trainer
        trainer.callbacks.append(PyTorchLightningPruningCallback(trial, monitor=monitor))
        trainer.fit(cli.model, datamodule=cli.datamodule)
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None:
            raise ValueError(
                "the run kept no checkpoints (enable_checkpointing=False?); a trial's value is "
                f"the best {monitor!r} its checkpoints followed"
            )
        watched = getattr(checkpoint, "monitor", None)
        if watched != monitor:  # lightkit watches train/loss when validation never runs
            raise ValueError(
                f"the run's checkpoints followed {watched!r}, not {monitor!r} (did validation "
                "run? limit_val_batches=0 turns it off); the sweep compares trials by "
                f"{monitor!r}"
            )
        score = checkpoint.best_model_score
        value = None if score is None else float(score)
        if value is None or not math.isfinite(value):
            raise ValueError(f"the run logged no finite {monitor} (got {value})")
    except optuna.TrialPruned:
        _note_epochs(trial, built)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except Exception as err:  # the sweep goes on; the reason is recorded with the trial
        reason = _short(err)
        _note_epochs(trial, built)
        trial.set_user_attr("fail_reason", f"{type(err).__name__}: {reason}"[:_MAX_REASON])
        _write_error(run_dir)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        print(f"{OWNER}: trial {trial.number} failed: {reason}", file=sys.stderr)
        return
    except BaseException:  # Ctrl-C, SystemExit: this trial is run again when the sweep is
        _retry_later(optuna, study, trial)
        raise
    finally:
        built.clear()
        gc.collect()  # the trial's model and data, before the next trial builds its own
    trial.set_user_attr("epochs", int(trainer.current_epoch))
    study.tell(trial, value)


def _note_epochs(trial: Any, built: dict[str, Any]) -> None:
    if "trainer" in built:
        trial.set_user_attr("epochs", int(built["trainer"].current_epoch))


def _write_error(run_dir: Path) -> None:
    """The failed trial's traceback, in its run folder (made here when the trial failed before
    its trainer made it)."""
    with contextlib.suppress(OSError):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.rsplit('.', 1)[-1]}={v:.4g}"
        if isinstance(v, float)
        else f"{k.rsplit('.', 1)[-1]}={v!r}"
        for k, v in values.items()
    )


# jsonargparse's scaffolding around the one line that says what is wrong.
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Expected a <class 'collections.abc.Mapping'>",
)


def _short(err: BaseException) -> str:
    """An error's message on one line: jsonargparse's nested explanations, kept short."""
    lines = [line.strip().removeprefix("- ") for line in str(err).splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(_NOISE)]
    text = " | ".join(meaningful or lines) if lines else type(err).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Parsing-only runs of the CLI: Lightning's "Seed set to" line, once per check, is noise."""
    import logging

    log = logging.getLogger("lightning.fabric.utilities.seed")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
