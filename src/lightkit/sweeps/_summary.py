"""What a sweep leaves in its folder: a table of trials, the best config, importances and plots."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml

from lightkit.sweeps._space import OWNER, Param, read_yaml

RUN_FOLDER = "trials/version_{}"


def run_folder(number: int) -> str:
    """A trial's run folder, relative to the study folder.

    Example:
        >>> lk.sweeps.run_folder(3)  # trial 3's logs and checkpoints, under the study folder
        'trials/version_3'
    """
    return RUN_FOLDER.format(number)


STATES = {
    "COMPLETE": "finished",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest dotted suffix that no other key ends with (``lr``)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            others = [other for other in keys if other != key]
            if not any(other == suffix or other.endswith("." + suffix) for other in others):
                names[key] = suffix
                break
        else:
            names[key] = key
    return names


def trial_rows(study: Any, params: list[Param]) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, the searched values, epochs, run folder, reason."""
    names = short_names([p.key for p in params])
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = STATES.get(trial.state.name, trial.state.name.lower())
        reason = trial.user_attrs.get("fail_reason", "")
        if trial.state.name == "FAIL" and not reason:
            state, reason = "interrupted", "its process stopped; run again as a new trial"
        if trial.user_attrs.get("baseline"):
            reason = "; ".join(r for r in ("baseline: the config's own values", reason) if r)
        row: dict[str, Any] = {"trial": trial.number, "state": state, "value": trial.value}
        if trial.state.name == "PRUNED" and trial.intermediate_values:
            row["value"] = trial.intermediate_values[max(trial.intermediate_values)]
        for param in params:
            row[names[param.key]] = trial.params.get(param.key)
        row["epochs"] = trial.user_attrs.get("epochs")
        row["run_dir"] = run_folder(trial.number)
        row["reason"] = reason
        rows.append(row)
    return rows


def summarize(
    study: Any,
    params: list[Param],
    study_dir: Path,
    monitor: str,
    mode: str,
    seed: int | None,
    overrides: list[str],
) -> None:
    """Write ``trials.csv``, ``best.yaml``, ``importance.json`` and the plots; print the table."""
    rows = trial_rows(study, params)
    _write_csv(study_dir / "trials.csv", rows)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    if best is not None:
        _write_best(study_dir, best, params, overrides)
    importance = _importance(study, seed) if len(complete) >= 2 else {}
    if importance:
        _atomic_text(study_dir / "importance.json", json.dumps(importance, indent=2) + "\n")
    _plots(study, study_dir, seed, bool(importance), monitor)
    _print(rows, best, importance, study_dir, monitor, mode)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _atomic_text(path, text.getvalue())


def _write_best(study_dir: Path, best: Any, params: list[Param], overrides: list[str]) -> None:
    """``best.yaml``: the best trial's whole config (saved by its run), back in the base's run
    root, so that ``lightkit fit --config best.yaml`` trains it again in a new run folder.

    The trial's folder is found from its number, inside the study folder (never from a path
    read back from the database)."""
    base = read_yaml(study_dir / "config.yaml", "the study's config.yaml")
    base = base if isinstance(base, dict) else {}
    base.pop("# overrides", None)
    saved = study_dir / run_folder(best.number) / "config.yaml"
    config: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError, TypeError):
        loaded = read_yaml(saved, "the best trial's config.yaml")
        config = loaded if isinstance(loaded, dict) else None
    if config is None:  # the run's own copy is gone: the base, the overrides, the values
        config = json.loads(json.dumps(base, default=str))
        settings = [_setting(item) for item in overrides]
        settings += [(p.key, best.params[p.key]) for p in params if p.key in best.params]
        for key, value in settings:
            node = config
            *path, last = key.split(".")
            for part in path:
                child = node.get(part)
                node = node.setdefault(part, {}) if not isinstance(child, dict) else child
            node[last] = value
    trainer = config.setdefault("trainer", {})
    base_trainer = base.get("trainer") if isinstance(base, dict) else None
    root = base_trainer.get("default_root_dir") if isinstance(base_trainer, dict) else None
    trainer["default_root_dir"] = root or "runs"
    trainer["version"] = None
    header = (
        f"# The best trial of {OWNER} (trial {best.number}, value {best.value:.6g}):\n"
        f"#   lightkit fit --config {os.fspath(study_dir / 'best.yaml')}\n"
    )
    _atomic_text(study_dir / "best.yaml", header + yaml.safe_dump(config, sort_keys=False))


def _importance(study: Any, seed: int | None) -> dict[str, float]:
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0 if seed is None else seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):  # too few finished trials, or one value tried
        return {}
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def _plots(study: Any, study_dir: Path, seed: int | None, importance: bool, monitor: str) -> None:
    """``history.png`` (the value of every trial and the best so far) and ``importance.png``."""
    import matplotlib
    import optuna
    from matplotlib import pyplot as plt

    plots = [("history.png", optuna.visualization.matplotlib.plot_optimization_history, {})]
    if importance:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0 if seed is None else seed)
        plots.append(
            (
                "importance.png",
                optuna.visualization.matplotlib.plot_param_importances,
                {"evaluator": evaluator},
            )
        )
    # Optuna draws with pyplot and sets a style: keep the style from leaking into the user's
    # plots, and close each figure once saved.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot, kwargs in plots:
            try:
                axes = plot(study, **kwargs)
            except (ValueError, RuntimeError):
                continue
            if name == "history.png":  # say what the value is
                axes.set_ylabel(f"{monitor} (finished trials)")
                axes.set_title(f"Sweep history: {monitor} of each trial and the best so far")
            figure = axes.get_figure()
            figure.set_size_inches(8, 4.5)
            handle, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=study_dir)
            os.close(handle)
            try:
                figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
                os.replace(tmp, study_dir / name)
            finally:
                plt.close(figure)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _print(
    rows: list[dict[str, Any]],
    best: Any,
    importance: dict[str, float],
    study_dir: Path,
    monitor: str,
    mode: str,
) -> None:
    from rich.console import Console
    from rich.table import Table

    # On a terminal, its width; in a log file or a pipe, wide enough that no value wraps.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"{OWNER}: {len(rows)} trials in {os.fspath(study_dir)}")
    columns = [c for c in (rows[0] if rows else {}) if c != "run_dir"]
    for column in columns:
        table.add_column(monitor if column == "value" else column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)
    if best is None:
        console.print(f"{OWNER}: no trial finished; see the reasons above")
        return
    values = ", ".join(f"{k}={_cell(v)}" for k, v in best.params.items())
    console.print(
        f"best: trial {best.number}, {monitor} = {best.value:.6g} ({mode}): {values}\n"
        f"  run folder {os.fspath(study_dir / run_folder(best.number))}; "
        f"train it again with: lightkit fit --config {os.fspath(study_dir / 'best.yaml')}"
    )
    if importance:
        console.print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _setting(item: str) -> tuple[str, Any]:
    """``--section.key=value`` as ``(section.key, value)``, the value read as YAML."""
    key, _, text = item[2:].partition("=")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError:
        return key, text


def _atomic_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file of this process, then a rename)."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
