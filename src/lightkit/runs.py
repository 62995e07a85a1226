"""list_runs() and ``lightkit runs``: the training runs under a folder, side by side.

Each run folder (``make_trainer``'s ``<root>/version_<n>``, at any depth: sweeps and k-fold runs
nest them) is read from two small files: ``run.json`` (the run record
:class:`~lightkit.tasks.TaskBookkeeping` keeps: status, task, best monitored value, epochs) and
``hparams.yaml`` (the hyperparameters). Both are
untrusted: a missing, corrupt or huge file gives a row that says so, nothing named in one is
imported, and checkpoints are never loaded (an older run without ``run.json`` shows status
``unknown`` and what its checkpoint names tell).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from lightkit.tasks._run_record import RECORD_FILE, STATUSES
from lightkit.trainer._run_dir import DEFAULT_ROOT

HPARAMS_FILE = "hparams.yaml"
CONFIG_FILE = "config.yaml"  # LightningCLI's copy of the run's config (lightkit fit)
MAX_FILE_BYTES = 1_000_000  # a record or hparams file larger than this is not read
MAX_HPARAMS = 300  # flattened hyperparameters kept per run
MAX_TEXT = 200  # characters kept of any text read from a file
TABLE_HPARAMS = 8  # hyperparameter columns in the table (CSV and JSON have them all)
SORT_KEYS = ("run", "best", "started", "status", "epochs")
FORMATS = ("table", "csv", "json")
# Hyperparameters a comparison of runs always wants, when the runs have them (by the key's
# last part); after these come the ones whose values differ between the runs listed.
KEY_HPARAMS = ("net", "optimizer", "lr", "learning_rate", "weight_decay", "batch_size")
FIELDS = (  # the CSV's columns before the hyperparameters, in order
    "run",
    "status",
    "task",
    "monitor",
    "mode",
    "best",
    "epochs",
    "global_step",
    "started",
    "ended",
    "reason",
    "hostname",
    "pid",
    "path",
    "problems",
)
_VERSION = re.compile(r"version_\d+")
_CKPT_VALUE = re.compile(r"([A-Za-z_][\w.]*)=(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


@dataclass
class RunRow:
    """One run folder as ``lightkit runs`` lists it.

    Attributes:
        run: The folder, relative to the listed root (``version_3``, ``fold_0/version_0``).
        path: The folder's full path.
        status: ``running``, ``finished``, ``stopped early``, ``nan``, ``failed``, ``pruned``,
            ``interrupted``, ``killed`` (recorded as running, but its process is gone) or
            ``unknown`` (no readable ``run.json``).
        task: The task's class (``lightkit.tasks.classification.ClassificationModule``).
        monitor: The monitored metric (``val/loss``).
        mode: ``min`` or ``max``.
        best: The best monitored value.
        epochs: Completed epochs.
        global_step: Optimizer steps taken.
        started: When the (last) fit started, UTC ISO 8601.
        ended: When it ended (None while running).
        reason: Why a run that did not finish ended (the exception, the stopping rule).
        hostname: The machine that ran it.
        pid: Its process id there.
        hparams: The flattened hyperparameters (``optimizer.lr``, ``net`` for its class name).
        problems: What could not be read, and why.
    """

    run: str
    path: str
    status: str = "unknown"
    task: str | None = None
    monitor: str | None = None
    mode: str | None = None
    best: float | None = None
    epochs: int | None = None
    global_step: int | None = None
    started: str | None = None
    ended: str | None = None
    reason: str | None = None
    hostname: str | None = None
    pid: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-ready data (non-finite numbers as text)."""
        return {k: _json_ready(v) for k, v in asdict(self).items()}


def list_runs(root: str | os.PathLike[str] = DEFAULT_ROOT, sort: str = "run") -> list[RunRow]:
    """Every run folder under ``root`` (at any depth), read from its ``run.json`` and ``hparams.yaml``.

    A run folder is one holding ``run.json``, ``hparams.yaml`` or a ``checkpoints`` folder, or a
    non-empty ``version_<n>`` folder; folders inside a run folder and hidden folders are not
    searched. Nothing is imported or loaded from what the files say.

    Args:
        root: The folder to search (``make_trainer``'s ``default_root_dir``).
        sort: ``"run"`` (the folder names, numbers in numeric order), ``"best"`` (best first, by
            each run's mode), ``"started"`` (oldest first), ``"status"`` or ``"epochs"``.

    Returns:
        One :class:`RunRow` per run folder.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a folder.

    Example:
        >>> rows = lk.runs.list_runs("runs")
        >>> [(r.run, r.status, r.best) for r in rows]
        [('version_0', 'finished', 0.031), ('version_1', 'stopped early', 0.044)]
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"list_runs: sort must be one of {', '.join(SORT_KEYS)}; got {sort!r}")
    base = Path(root)
    if not base.exists():
        raise FileNotFoundError(f"no folder {os.fspath(base)!r}")
    if not base.is_dir():
        raise NotADirectoryError(f"{os.fspath(base)!r} is a file, not a folder of runs")
    rows = [read_run(folder, base) for folder in find_run_folders(base)]
    return sort_rows(rows, sort)


def find_run_folders(root: Path) -> list[Path]:
    """The run folders under ``root`` (``root`` itself included), in natural name order."""
    found = []
    for folder, dirs, files in os.walk(root):  # symbolic links to folders are not followed
        path = Path(folder)
        if _is_run_folder(path, dirs, files):
            found.append(path)
            dirs[:] = []  # checkpoints/, profile/ ... belong to the run
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: _natural(p.relative_to(root).as_posix()))


def read_run(folder: Path, root: Path | None = None) -> RunRow:
    """One run folder's :class:`RunRow`; what cannot be read is named in ``problems``."""
    relative = folder.relative_to(root).as_posix() if root is not None else folder.name
    row = RunRow(run=_clean(relative, 1000), path=_clean(os.fspath(folder.absolute()), 1000))
    record = _read_file(folder / RECORD_FILE, "json", row.problems)
    if isinstance(record, dict):
        _apply_record(row, record)
    elif record is not None:
        row.problems.append(f"{RECORD_FILE}: not a JSON object")
    else:
        _from_checkpoint_names(row, folder)
    hparams = _read_file(folder / HPARAMS_FILE, "yaml", row.problems)
    if isinstance(hparams, dict):
        row.hparams = flatten_hparams(hparams)
    elif hparams is not None:
        row.problems.append(f"{HPARAMS_FILE}: not a mapping of names to values")
    config = _read_file(folder / CONFIG_FILE, "yaml", row.problems)
    if isinstance(config, dict) and isinstance(config.get("data"), dict):
        for key, value in flatten_hparams({"data": config["data"]}).items():
            row.hparams.setdefault(key, value)
    if isinstance(record, dict):  # what the record knows of the data, when nothing else says
        for key in ("batch_size", "datamodule"):
            value = record.get(key)
            name = "data" if key == "datamodule" else key
            known = name in row.hparams or f"data.{name}" in row.hparams
            if not known and _is_scalar(value) and value is not None:
                row.hparams[name] = _clean(value) if isinstance(value, str) else value
    return row


def flatten_hparams(data: dict[Any, Any], limit: int = MAX_HPARAMS) -> dict[str, Any]:
    """Nested hyperparameters as one level of dotted names with scalar values.

    A ``{"class_path": ..., "init_args": {...}}`` entry (how lightkit saves a net or optimizer)
    becomes its class's short name under the entry's own name, and its arguments under
    ``name.argument``; a list becomes compact text. At most ``limit`` entries are kept.

    Example:
        >>> flatten_hparams({"optimizer": {"class_path": "lightkit.optim.adamw",
        ...                                "init_args": {"lr": 0.003}}, "num_classes": 3})
        {'optimizer': 'adamw', 'optimizer.lr': 0.003, 'num_classes': 3}
    """
    out: dict[str, Any] = {}

    def visit(prefix: str, value: Any, depth: int) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, dict):
            if depth >= 8:
                out[prefix] = "{…}"
                return
            class_path = value.get("class_path")
            if isinstance(class_path, str):
                out[prefix or "class_path"] = _clean(class_path.rpartition(".")[2])
                args = value.get("init_args")
                value = args if isinstance(args, dict) else {}
            for key, item in value.items():
                name = _clean(str(key), 100)
                visit(f"{prefix}.{name}" if prefix else name, item, depth + 1)
        elif isinstance(value, (list, tuple)):
            out[prefix] = _compact(value)
        elif _is_scalar(value):
            out[prefix] = _clean(value) if isinstance(value, str) else value
        else:
            out[prefix] = _clean(str(value))

    visit("", data, 0)
    return out


def sort_rows(rows: list[RunRow], by: str = "run") -> list[RunRow]:
    """``rows`` ordered by ``by`` (see :func:`list_runs`); rows without the value go last."""
    if by == "run":
        return sorted(rows, key=lambda r: _natural(r.run))
    if by == "best":

        def best(row: RunRow) -> tuple[bool, float]:
            if row.best is None:
                return True, 0.0
            return False, -row.best if row.mode == "max" else row.best

        return sorted(rows, key=best)
    if by == "status":
        order = {s: i for i, s in enumerate((*STATUSES, "killed", "unknown"))}
        return sorted(rows, key=lambda r: (order.get(r.status, len(order)), _natural(r.run)))
    return sorted(rows, key=lambda r: (getattr(r, by) is None, getattr(r, by) or 0))


def key_hparams(rows: list[RunRow], limit: int = TABLE_HPARAMS) -> list[str]:
    """The hyperparameters worth a column: the usual ones (net, optimizer, learning rate, weight
    decay, batch size) that any row has, then those whose values differ between rows."""
    keys: list[str] = []
    for key in {k for row in rows for k, v in row.hparams.items() if v is not None}:
        if key.rpartition(".")[2] in KEY_HPARAMS and (
            "." not in key or key.rpartition(".")[2] not in ("net", "optimizer")
        ):
            keys.append(key)
    keys.sort(key=lambda k: (KEY_HPARAMS.index(k.rpartition(".")[2]), k))
    if len(rows) > 1:  # a value that differs between the runs having it
        every = sorted({k for row in rows for k in row.hparams})
        keys += [
            k
            for k in every
            if k not in keys
            and len({_text(row.hparams[k]) for row in rows if k in row.hparams}) > 1
        ]
    return keys[:limit]


def to_csv(rows: list[RunRow]) -> str:
    """The rows as CSV: :data:`FIELDS`, then one column per hyperparameter (``pandas.read_csv``
    reads it); a hyperparameter named like a field gets a ``hparams.`` prefix."""
    hparams = sorted({k for row in rows for k in row.hparams})
    header = [*FIELDS, *(f"hparams.{k}" if k in FIELDS else k for k in hparams)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [getattr(row, f) for f in FIELDS[:-1]] + ["; ".join(row.problems)]
        values += [row.hparams.get(k) for k in hparams]
        writer.writerow(["" if v is None else _text(v) for v in values])
    return buffer.getvalue()


def to_json(rows: list[RunRow]) -> str:
    """The rows as a JSON list of objects (``hparams`` nested, non-finite numbers as text)."""
    return json.dumps([row.to_dict() for row in rows], indent=2, allow_nan=False)


def print_table(rows: list[RunRow], root: str, file: Any = None) -> None:
    """A ``rich`` table of ``rows``: run, task, status, best value, epochs, started and the
    :func:`key_hparams`; below it, why each run that did not finish ended, and read problems."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    file = file if file is not None else sys.stdout
    terminal = hasattr(file, "isatty") and file.isatty()
    console = Console(file=file, width=None if terminal else 200, highlight=False)
    monitors = {r.monitor for r in rows if r.monitor}
    modes = {r.mode for r in rows if r.mode}
    best_header = "best"
    if len(monitors) == 1:
        best_header += f" {next(iter(monitors))}"
        best_header += f" ({next(iter(modes))})" if len(modes) == 1 else ""
    keys = key_hparams(rows)
    table = Table(title=f"runs under {root}", title_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("task")
    table.add_column("status")
    table.add_column(best_header, justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("started")
    for header in _short_names(keys):
        table.add_column(header, justify="right")
    for row in rows:
        best = "" if row.best is None else f"{row.best:.4g}"
        if row.best is not None and len(monitors) > 1 and row.monitor:
            best += f" ({row.monitor})"
        cells = [
            Text(row.run),
            Text((row.task or "").rpartition(".")[2]),
            Text(row.status, style=_STYLES.get(row.status, "")),
            Text(best),
            Text("" if row.epochs is None else str(row.epochs)),
            Text(_local_time(row.started)),
            *(Text(_cell(row.hparams.get(k))) for k in keys),
        ]
        table.add_row(*cells)
    console.print(table)
    hidden = len({k for r in rows for k in r.hparams}) - len(keys)
    if hidden > 0 and len(rows) > 1:
        console.print(
            Text(f"{hidden} more hyperparameters in --format csv or json", style="dim"),
        )
    for row in rows:
        notes = ([f"{row.status}: {row.reason}"] if row.reason else []) + row.problems
        for note in notes:
            console.print(Text(f"{row.run}: {note}"))


def runs_command(argv: list[str]) -> int:
    """``lightkit runs [ROOT] [--format table|csv|json] [--sort KEY]``: list the runs under ROOT.

    Prints a ``rich`` table (``--format table``, the default), or CSV or JSON to standard
    output for scripts and pandas. Exit codes: 0 when the listing was printed, also when ROOT
    holds no run (then a note goes to standard error, and CSV is its header, JSON ``[]``);
    2 when ROOT does not exist or is not a folder, or an option is wrong.

    Example:
        >>> runs_command(["runs", "--format", "csv", "--sort", "best"])
        0
    """
    parser = argparse.ArgumentParser(
        prog="lightkit runs",
        description="List the training runs under a folder: status, task, best monitored "
        "value, epochs and key hyperparameters.",
    )
    parser.add_argument(
        "root",
        nargs="?",
        default=DEFAULT_ROOT,
        help=f"the folder holding the runs, searched at any depth (default: {DEFAULT_ROOT})",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="run",
        help="run (folder names, the default), best (best first), started, status or epochs",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or a wrong option (argparse printed why)
        return exit.code if isinstance(exit.code, int) else 2
    try:
        rows = list_runs(args.root, sort=args.sort)
    except (FileNotFoundError, NotADirectoryError) as err:
        print(f"lightkit runs: error: {err}", file=sys.stderr)
        return 2
    if not rows:
        print(
            f"lightkit runs: no runs found under {args.root!r} (a run folder holds "
            f"{RECORD_FILE}, {HPARAMS_FILE} or checkpoints/)",
            file=sys.stderr,
        )
    if args.format == "csv":
        sys.stdout.write(to_csv(rows))
    elif args.format == "json":
        sys.stdout.write(to_json(rows) + "\n")
    elif rows:
        print_table(rows, args.root)
    return 0


# --- reading: every value from a file is checked, cut to size and stripped of control codes

_STYLES = {
    "finished": "green",
    "stopped early": "cyan",
    "running": "yellow",
    "killed": "red",
    "failed": "red",
    "nan": "red",
    "pruned": "magenta",
    "interrupted": "magenta",
    "unknown": "dim",
}


class _PlainLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that reads any tag (``!!python/tuple`` in Lightning's ``hparams.yaml``,
    or ``!!python/object/apply:...``) as the plain list, mapping or text it is written as: no
    tag is ever resolved to a Python object."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_PlainLoader.add_constructor(None, _plain)  # type: ignore[arg-type]


def _read_file(path: Path, kind: str, problems: list[str]) -> Any:
    """The parsed content of ``path`` (None when absent or unreadable, with a problem noted)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as err:
        problems.append(f"{path.name}: cannot be read ({_clean(err.strerror or err)})")
        return None
    if size > MAX_FILE_BYTES:
        problems.append(f"{path.name}: {size:,} bytes, too large to read")
        return None
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if kind == "json":
            return json.loads(text)
        return yaml.load(text, Loader=_PlainLoader)  # _PlainLoader is a SafeLoader
    except Exception as err:  # whatever a malformed file makes a parser raise: a row says it
        what = "JSON" if kind == "json" else "YAML"
        problems.append(f"{path.name}: not valid {what} ({_clean(str(err).splitlines()[0], 120)})")
        return None


def _apply_record(row: RunRow, record: dict[str, Any]) -> None:
    status = record.get("status")
    if isinstance(status, str) and status in STATUSES:
        row.status = status
    else:
        row.problems.append(f"{RECORD_FILE}: unknown status {_clean(repr(status), 60)}")
    for name in ("task", "monitor", "mode", "started", "ended", "reason", "hostname"):
        value = record.get(name)
        setattr(row, name, _clean(value, 500) if isinstance(value, str) else None)
    row.best = _finite(record.get("best"))
    for name in ("epochs", "global_step", "pid"):
        value = record.get(name)
        setattr(row, name, value if type(value) is int and value >= 0 else None)
    here = row.hostname == socket.gethostname()
    if row.status == "running" and row.pid and here and not _alive(row.pid):
        row.status = "killed"
        row.reason = f"recorded as running, but its process {row.pid} is gone"


def _from_checkpoint_names(row: RunRow, folder: Path) -> None:
    """What the checkpoint file names of a run without a record say (``epoch=3-val_acc=0.91``),
    by name only: a checkpoint is never opened."""
    try:
        names = [p.stem for p in (folder / "checkpoints").glob("*.ckpt")][:1000]
    except OSError:
        return
    values: dict[str, list[float]] = {}
    for name in names:
        for key, value in _CKPT_VALUE.findall(name):
            values.setdefault(key, []).append(float(value))
    if values.get("epoch"):
        row.epochs = int(max(values["epoch"])) + 1
    metrics = [k for k in values if k not in ("epoch", "step")]
    if len(metrics) == 1:  # the monitor, when the file names carry one
        row.monitor = _clean(metrics[0], 100)
        lower = any(word in row.monitor for word in ("loss", "err", "mae", "mse"))
        row.mode = "min" if lower else "max"
        row.best = _finite((min if lower else max)(values[metrics[0]]))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when that cannot be told)."""
    if os.name == "nt" or pid <= 0:  # os.kill on Windows would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def _is_run_folder(path: Path, dirs: list[str], files: list[str]) -> bool:
    if RECORD_FILE in files or HPARAMS_FILE in files or "checkpoints" in dirs:
        return True
    return bool(_VERSION.fullmatch(path.name) and (dirs or files))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _clean(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from a file, made safe to print: control characters dropped, cut to ``limit``."""
    text = "".join(c if c.isprintable() else " " for c in str(value)[: limit * 2])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(items: list[Any] | tuple[Any, ...]) -> str:
    shown = [_text(v) if _is_scalar(v) else "[…]" for v in items[:10]]
    return _clean("[" + ", ".join(shown) + (", …" if len(items) > 10 else "") + "]")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return "" if value is None else str(value)


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return _text(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _short_names(keys: list[str]) -> list[str]:
    """Each key's last part when no other key ends the same way (``optimizer.lr`` -> ``lr``)."""
    lasts = [k.rpartition(".")[2] for k in keys]
    return [last if lasts.count(last) == 1 else k for k, last in zip(keys, lasts, strict=True)]


def _local_time(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return _clean(stamp, 40)


def _natural(text: str) -> list[Any]:
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    ]


__all__ = [
    "FIELDS",
    "RunRow",
    "find_run_folders",
    "flatten_hparams",
    "key_hparams",
    "list_runs",
    "print_table",
    "read_run",
    "runs_command",
    "sort_rows",
    "to_csv",
    "to_json",
]
