"""``lightkit runs``: the rows of :func:`lightkit.runs.list_runs` as a ``rich`` table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from datetime import datetime
from typing import Any

from lightkit._run_layout import DEFAULT_ROOT, RECORD_FILE
from lightkit.runs import HPARAMS_FILE, SORT_KEYS, RunRow, as_text, clean_text, list_runs

TABLE_HPARAMS = 8  # hyperparameter columns in the table (CSV and JSON have them all)
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
            and len({as_text(row.hparams[k]) for row in rows if k in row.hparams}) > 1
        ]
    return _distinct(rows, keys)[:limit]


def _distinct(rows: list[RunRow], keys: list[str]) -> list[str]:
    """``keys`` less those that repeat an earlier column: the same last name and the same value
    in every row (``batch_size`` from the run record and ``data.batch_size`` from its config)."""
    kept: list[str] = []
    for key in keys:
        name = key.rpartition(".")[2]
        values = [as_text(row.hparams.get(key)) for row in rows]
        if not any(
            other.rpartition(".")[2] == name
            and [as_text(row.hparams.get(other)) for row in rows] == values
            for other in kept
        ):
            kept.append(key)
    return kept


def to_csv(rows: list[RunRow]) -> str:
    """The rows as CSV: :data:`FIELDS`, then one column per hyperparameter (``pandas.read_csv``
    reads it); a hyperparameter named like a field gets a ``hparams.`` prefix."""
    hparams = sorted({k for row in rows for k in row.hparams})
    header = [*FIELDS, *(f"hparams.{k}" if k in FIELDS else k for k in hparams)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([_inert(h) for h in header])
    for row in rows:
        values = [getattr(row, f) for f in FIELDS[:-1]] + ["; ".join(row.problems)]
        values += [row.hparams.get(k) for k in hparams]
        writer.writerow(["" if v is None else _inert(v) for v in values])
    return buffer.getvalue()


def _inert(value: Any) -> str:
    """A cell that a spreadsheet shows as text: text from a run's files that starts like a
    formula (``=``, ``+``, ``-``, ``@``) gets a leading ``'``; numbers are left as they are."""
    text = as_text(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


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
    table = Table(title=Text(f"runs under {root}"), title_justify="left")  # no markup
    table.add_column("run", no_wrap=True)
    table.add_column("task")
    table.add_column("status")
    table.add_column(Text(best_header), justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("started")
    for header in _short_names(keys):  # names from the runs' files: text, never markup
        table.add_column(Text(header), justify="right")
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
        >>> runs_command(["experiments/", "--format", "csv", "--sort", "best"])
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
    except SystemExit as stop:  # --help, or a wrong option (argparse printed why)
        return stop.code if isinstance(stop.code, int) else 2
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


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return as_text(value)


def _short_names(keys: list[str]) -> list[str]:
    """Each key's last part when no other key ends the same way (``optimizer.lr`` -> ``lr``)."""
    lasts = [k.rpartition(".")[2] for k in keys]
    return [last if lasts.count(last) == 1 else k for k, last in zip(keys, lasts, strict=True)]


def _local_time(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, TypeError):
        return clean_text(stamp, 40)


__all__ = [
    "FIELDS",
    "FORMATS",
    "key_hparams",
    "print_table",
    "runs_command",
    "to_csv",
    "to_json",
]
