"""The training runs under a folder, side by side: :func:`list_runs` reads them into rows.

Each run folder (``make_trainer``'s ``<root>/version_<n>``, at any depth: sweeps and k-fold runs
nest them) is read from two small files: ``run.json`` (the run record
:class:`~lightkit.tasks.TaskBookkeeping` keeps: status, task, best monitored value, epochs) and
``hparams.yaml`` (the hyperparameters). Both are untrusted: a missing, corrupt or huge file gives
a row that says so, nothing named in one is imported, and checkpoints are never opened (an older
run without ``run.json`` shows status ``unknown`` and what its checkpoint names tell).
:mod:`lightkit.runs_report` prints the rows (``lightkit runs``).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightkit._processes import alive
from lightkit._run_layout import DEFAULT_ROOT, RECORD_FILE, STATUSES

HPARAMS_FILE = "hparams.yaml"
CONFIG_FILE = "config.yaml"  # LightningCLI's copy of the run's config (lightkit fit)
MAX_FILE_BYTES = 1_000_000  # a record or hparams file larger than this is not read
MAX_HPARAMS = 300  # flattened hyperparameters kept per run
MAX_TEXT = 200  # characters kept of any text read from a file
SORT_KEYS = ("run", "best", "started", "status", "epochs")
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

    Example:
        >>> row = lk.runs.list_runs(runs_dir)[0]  # a RunRow per run folder
        >>> row.run, row.status, row.epochs, row.monitor
        ('version_0', 'finished', 1, 'val/loss')
        >>> row.hparams["num_classes"], row.hparams["net"]
        (3, 'MLP')
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
        >>> from lightkit.runs import list_runs
        >>> rows = list_runs(runs_dir)  # the folder make_trainer's default_root_dir pointed to
        >>> [(r.run, r.status, r.epochs) for r in rows]
        [('version_0', 'finished', 1)]
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
    """The run folders under ``root`` (``root`` itself included), in natural name order.

    Example:
        >>> from pathlib import Path
        >>> [folder.name for folder in lk.runs.find_run_folders(Path(runs_dir))]
        ['version_0']
    """
    found = []
    for folder, dirs, files in os.walk(root):  # symbolic links to folders are not followed
        path = Path(folder)
        if _is_run_folder(path, dirs, files):
            found.append(path)
            dirs[:] = []  # checkpoints/, profile/ ... belong to the run
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def read_run(folder: Path, root: Path | None = None) -> RunRow:
    """One run folder's :class:`RunRow`; what cannot be read is named in ``problems``.

    Example:
        >>> from pathlib import Path
        >>> row = lk.runs.read_run(Path(runs_dir, "version_0"))
        >>> row.status, row.task, row.problems
        ('finished', 'lightkit.tasks.classification.ClassificationModule', [])
        >>> Path("empty_run").mkdir()
        >>> lk.runs.read_run(Path("empty_run")).status  # no run.json
        'unknown'
    """
    relative = folder.relative_to(root).as_posix() if root is not None else folder.name
    row = RunRow(
        run=clean_text(relative, 1000), path=clean_text(os.fspath(folder.absolute()), 1000)
    )
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
    elif isinstance(record, dict) and isinstance(record.get("hparams"), dict):
        row.hparams = flatten_hparams(record["hparams"])  # no logger wrote hparams.yaml
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
                row.hparams[name] = clean_text(value) if isinstance(value, str) else value
    return row


def flatten_hparams(data: dict[Any, Any], limit: int = MAX_HPARAMS) -> dict[str, Any]:
    """Nested hyperparameters as one level of dotted names with scalar values.

    A ``{"class_path": ..., "init_args": {...}}`` entry (how lightkit saves a net or optimizer)
    becomes its class's short name under the entry's own name, and its arguments under
    ``name.argument``; a list becomes compact text. At most ``limit`` entries are kept.

    Example:
        >>> from lightkit.runs import flatten_hparams
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
                out[prefix or "class_path"] = clean_text(class_path.rpartition(".")[2])
                args = value.get("init_args")
                value = args if isinstance(args, dict) else {}
            for key, item in value.items():
                name = clean_text(str(key), 100)
                visit(f"{prefix}.{name}" if prefix else name, item, depth + 1)
        elif isinstance(value, (list, tuple)):
            out[prefix] = _compact(value)
        elif _is_scalar(value):
            out[prefix] = clean_text(value) if isinstance(value, str) else value
        else:
            out[prefix] = clean_text(str(value))

    visit("", data, 0)
    return out


def sort_rows(rows: list[RunRow], by: str = "run") -> list[RunRow]:
    """``rows`` ordered by ``by`` (see :func:`list_runs`); rows without the value go last.

    Example:
        >>> RunRow = lk.runs.RunRow
        >>> rows = [RunRow("version_0", "", best=0.3), RunRow("version_1", ""),
        ...         RunRow("version_2", "", best=0.1)]
        >>> [row.run for row in lk.runs.sort_rows(rows, by="best")]
        ['version_2', 'version_0', 'version_1']
    """
    if by == "run":
        return sorted(rows, key=lambda r: natural_key(r.run))
    if by == "best":

        def best(row: RunRow) -> tuple[bool, float]:
            if row.best is None:
                return True, 0.0
            return False, -row.best if row.mode == "max" else row.best

        return sorted(rows, key=best)
    if by == "status":
        order = {s: i for i, s in enumerate((*STATUSES, "killed", "unknown"))}
        return sorted(rows, key=lambda r: (order.get(r.status, len(order)), natural_key(r.run)))
    return sorted(rows, key=lambda r: (getattr(r, by) is None, getattr(r, by) or 0))


class _PlainLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when present
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
    """The parsed content of ``path`` (None when absent or unreadable, with a problem noted).

    Only a regular file in the run folder itself is read: not a symlink (it could name a file
    anywhere), a FIFO (it would block) or a device (``/dev/zero`` never ends), and never more
    than ``MAX_FILE_BYTES`` whatever size it claims."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        why = "a symlink, not read" if path.is_symlink() else clean_text(err.strerror or err)
        problems.append(f"{path.name}: cannot be read ({why})")
        return None
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            problems.append(f"{path.name}: not a regular file, not read")
            return None
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        problems.append(f"{path.name}: over {MAX_FILE_BYTES:,} bytes, too large to read")
        return None
    try:
        text = data.decode("utf-8", errors="replace")
        if kind == "json":
            return json.loads(text)
        return yaml.load(text, Loader=_PlainLoader)  # _PlainLoader is a SafeLoader
    except Exception as err:  # whatever a malformed file makes a parser raise: a row says it
        what = "JSON" if kind == "json" else "YAML"
        first = (str(err).splitlines() or [type(err).__name__])[0]
        problems.append(f"{path.name}: not valid {what} ({clean_text(first, 120)})")
        return None


def _apply_record(row: RunRow, record: dict[str, Any]) -> None:
    status = record.get("status")
    if isinstance(status, str) and status in STATUSES:
        row.status = status
    else:
        row.problems.append(f"{RECORD_FILE}: unknown status {clean_text(repr(status), 60)}")
    for name in ("task", "monitor", "mode", "started", "ended", "reason", "hostname"):
        value = record.get(name)
        setattr(row, name, clean_text(value, 500) if isinstance(value, str) else None)
    row.best = _finite(record.get("best"))
    for name in ("epochs", "global_step", "pid"):
        value = record.get(name)
        setattr(row, name, value if type(value) is int and value >= 0 else None)
    here = row.hostname == socket.gethostname()
    if row.status == "running" and row.pid and here and not alive(row.pid):
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
        row.monitor = clean_text(metrics[0], 100)
        lower = any(word in row.monitor for word in ("loss", "err", "mae", "mse"))
        row.mode = "min" if lower else "max"
        row.best = _finite((min if lower else max)(values[metrics[0]]))


def _is_run_folder(path: Path, dirs: list[str], files: list[str]) -> bool:
    if RECORD_FILE in files or HPARAMS_FILE in files or "checkpoints" in dirs:
        return True
    return bool(_VERSION.fullmatch(path.name) and (dirs or files))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def clean_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from a file, made safe to print on one line, at most ``limit`` characters.

    Each character that is not printable (control characters such as a terminal escape, line
    breaks, tabs) becomes a space, so words stay apart and a crafted file cannot restyle or
    rewrite a terminal; text longer than ``limit`` is cut and ends in ``…``.

    Example:
        >>> lk.runs.clean_text("run\\x1b[31m name\\n")  # a terminal escape from a crafted file
        'run [31m name '
        >>> lk.runs.clean_text("a long name", limit=6)
        'a lon…'
    """
    text = "".join(c if c.isprintable() else " " for c in str(value)[: limit * 2])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(items: list[Any] | tuple[Any, ...]) -> str:
    shown = [as_text(v) if _is_scalar(v) else "[…]" for v in items[:10]]
    return clean_text("[" + ", ".join(shown) + (", …" if len(items) > 10 else "") + "]")


def as_text(value: Any) -> str:
    """A value as a CSV cell or a comparison key: floats in full (``repr``), None empty.

    Example:
        >>> lk.runs.as_text(0.1), lk.runs.as_text(None), lk.runs.as_text(3)
        ('0.1', '', '3')
    """
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return "" if value is None else str(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def natural_key(text: str) -> list[Any]:
    """A sort key putting ``version_2`` before ``version_10``.

    Example:
        >>> sorted(["version_10", "version_2"], key=lk.runs.natural_key)
        ['version_2', 'version_10']
    """
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    ]


__all__ = [
    "CONFIG_FILE",
    "HPARAMS_FILE",
    "MAX_FILE_BYTES",
    "SORT_KEYS",
    "RunRow",
    "as_text",
    "clean_text",
    "find_run_folders",
    "flatten_hparams",
    "list_runs",
    "natural_key",
    "read_run",
    "sort_rows",
]
