"""Run records (run.json, kept by make_trainer's TaskBookkeeping) and ``lightkit runs`` reading them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

import lightkit as lk
from helpers import tiny_datamodule, tiny_task
from lightkit import runs, runs_report
from lightkit.callbacks import NonFiniteError
from lightkit.runs import list_runs
from lightkit.runs_report import runs_command
from lightkit.tasks import TaskBookkeeping
from lightkit.tasks._run_record import RECORD_FILE, classify_exception


class TrialPruned(Exception):
    """Named like optuna.TrialPruned, which Optuna's pruning callback raises out of fit."""


class _RaiseAt(L.Callback):
    """Raise ``error`` when training epoch ``epoch`` starts."""

    def __init__(self, error: BaseException, epoch: int = 1) -> None:
        self.error, self.epoch = error, epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise self.error


class _NaNNet(nn.Module):
    """Outputs NaN from the third training forward pass on."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.calls = nn.Linear(8, 3), 0

    def forward(self, x):
        self.calls += self.training
        return self.fc(x) * (float("nan") if self.calls > 2 else 1.0)


def _fit(root: Path, module=None, ckpt_path=None, **kwargs) -> L.Trainer:
    options = {
        "max_epochs": 2,
        "default_root_dir": root,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": "csv",
        "seed": 0,
        **kwargs,
    }
    trainer = lk.make_trainer(**options)
    trainer.fit(module or tiny_task(), datamodule=tiny_datamodule(64), ckpt_path=ckpt_path)
    return trainer


def _record(trainer: L.Trainer) -> dict:
    return json.loads((Path(trainer.default_root_dir) / RECORD_FILE).read_text())


def _only_row(root: Path) -> runs.RunRow:
    rows = list_runs(root)
    assert len(rows) == 1
    return rows[0]


# --- the record a real run leaves -------------------------------------------------------------


def test_a_finished_run_records_its_end_and_later_evaluation_leaves_it(tmp_path):
    trainer = _fit(tmp_path, logger="tensorboard")
    record = _record(trainer)
    assert record["status"] == "finished" and record["reason"] is None
    assert record["task"] == "lightkit.tasks.classification.ClassificationModule"
    assert (record["monitor"], record["mode"]) == ("val/loss", "min")
    assert record["best"] == pytest.approx(trainer.checkpoint_callback.best_model_score.item())
    assert (record["epochs"], record["global_step"]) == (2, 4)
    assert record["pid"] == os.getpid() and record["hostname"] == socket.gethostname()
    assert record["started"] <= record["ended"] and record["started"].endswith("+00:00")
    assert record["batch_size"] == 32 and record["datamodule"] == "DataModule"
    before = (Path(trainer.default_root_dir) / RECORD_FILE).read_text()
    trainer.validate(datamodule=tiny_datamodule(64), verbose=False, ckpt_path="last")
    with pytest.raises(ValueError, match="no test dataset"):  # a failing test is not the fit's
        trainer.test(datamodule=tiny_datamodule(64), verbose=False, ckpt_path="last")
    assert (Path(trainer.default_root_dir) / RECORD_FILE).read_text() == before
    row = _only_row(tmp_path)
    assert (row.run, row.status, row.epochs, row.best) == (
        "version_0",
        "finished",
        2,
        record["best"],
    )
    assert row.hparams["num_classes"] == 3 and "optimizer" in row.hparams
    assert row.hparams["batch_size"] == 32 and not row.problems


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        (
            "early",
            "stopped early",
            r"^Monitored metric val/loss did not improve in the last 1 records",
        ),
        ("nan", "nan", r"^NonFiniteError: NaNGuard: the training loss is nan"),
        ("failed", "failed", r"^ValueError: bad data in batch 3 next line$"),
        ("pruned", "pruned", r"^TrialPruned: Trial was pruned at epoch 1\.$"),
        ("interrupted", "interrupted", r"SIGTERM"),
    ],
)
def test_how_a_run_ended_is_recorded(tmp_path, case, status, reason):
    errors = {
        "failed": (ValueError("bad data in batch 3\n  next line"), ValueError),
        "pruned": (TrialPruned("Trial was pruned at epoch 1."), TrialPruned),
        "interrupted": (SIGTERMException(), SIGTERMException),
        "nan": (None, NonFiniteError),
    }
    error, raised = errors.get(case, (None, None))
    kwargs = {"max_epochs": 5}
    if case == "early":  # val/loss falls: watched as "max", it never improves after epoch 1
        kwargs.update(mode="max", patience=1)
    if error is not None:
        kwargs["callbacks"] = [_RaiseAt(error)]
    module = lk.ClassificationModule(_NaNNet(), 3) if case == "nan" else None
    if raised is None:
        trainer = _fit(tmp_path, module, **kwargs)
        record = _record(trainer)
    else:
        with pytest.raises(raised):
            _fit(tmp_path, module, **kwargs)
        record = json.loads(next(tmp_path.glob(f"version_0/{RECORD_FILE}")).read_text())
    assert record["status"] == status
    assert record["ended"] is not None
    row = _only_row(tmp_path)
    assert row.status == status
    assert row.reason is not None and re.search(reason, row.reason), row.reason
    assert "\n" not in row.reason
    if case == "early":
        assert record["epochs"] == 2 < record["max_epochs"]
    if case in ("failed", "pruned", "interrupted"):
        assert record["epochs"] == 1  # the exception came as epoch 1 started


@pytest.mark.filterwarnings("ignore:Checkpoint directory")
def test_the_record_follows_checkpoints_and_a_resumed_run_is_running_again(tmp_path):
    seen = []

    class Probe(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            seen.append(_record(trainer))

    first = _fit(tmp_path, max_epochs=2, callbacks=[Probe()])
    # at epoch 1's start: what the checkpoints at epoch 0's end recorded
    assert (seen[1]["status"], seen[1]["epochs"], seen[1]["global_step"]) == ("running", 1, 2)
    assert seen[1]["best"] is not None and seen[1]["ended"] is None
    assert _record(first)["epochs"] == 2
    seen.clear()
    second = _fit(tmp_path, max_epochs=3, version=0, ckpt_path="last", callbacks=[Probe()])
    assert seen[0]["status"] == "running" and seen[0]["ended"] is None
    assert seen[0]["resumed_from"].endswith("last.ckpt") and seen[0]["global_step"] == 4
    final = _record(second)
    assert (final["status"], final["epochs"], final["global_step"]) == ("finished", 3, 6)
    assert final["started"] >= _record(first)["started"]


def test_the_record_adds_no_callback_and_no_step_hook(tmp_path):
    """Lightning looks up every step hook of every callback on every batch: the record rides
    on TaskBookkeeping, which make_trainer adds anyway."""
    trainer = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    keepers = [c for c in trainer.callbacks if isinstance(c, TaskBookkeeping)]
    assert len(keepers) == 1 and keepers[0].run_record.path.parent == tmp_path / "version_0"
    assert not any("Record" in type(c).__name__ for c in trainer.callbacks)
    assert TaskBookkeeping().run_record is None


def test_exceptions_are_classified_by_type_and_name():
    assert classify_exception(KeyboardInterrupt()) == ("interrupted", "KeyboardInterrupt")
    assert classify_exception(NonFiniteError("x"))[0] == "nan"
    assert classify_exception(type("TrialPruned", (RuntimeError,), {})("p"))[0] == "pruned"
    assert classify_exception(RuntimeError("a\nb " + "c" * 1000))[1].startswith("RuntimeError: a b")
    assert len(classify_exception(RuntimeError("c" * 1000))[1]) == 500


# --- reading: records that are not what they claim to be --------------------------------------


def _write_run(folder: Path, record=None, hparams: str | None = None) -> Path:
    folder.mkdir(parents=True)
    if record is not None:
        text = record if isinstance(record, str) else json.dumps(record)
        (folder / RECORD_FILE).write_text(text)
    if hparams is not None:
        (folder / "hparams.yaml").write_text(hparams)
    return folder


def _running(pid: int, host: str | None = None) -> dict:
    return {
        "format": 1,
        "status": "running",
        "pid": pid,
        "hostname": host or socket.gethostname(),
        "task": "lightkit.tasks.classification.ClassificationModule",
        "monitor": "val/acc",
        "mode": "max",
        "best": 0.5,
        "epochs": 3,
    }


def test_a_running_record_whose_process_is_gone_reads_as_killed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_run(tmp_path / "version_0", _running(gone.pid))
    _write_run(tmp_path / "version_1", _running(os.getpid()))
    _write_run(tmp_path / "version_2", _running(gone.pid, host="another-machine"))
    rows = list_runs(tmp_path)
    assert [r.status for r in rows] == ["killed", "running", "running"]
    assert str(gone.pid) in rows[0].reason
    assert json.loads((tmp_path / "version_0" / RECORD_FILE).read_text())["status"] == "running"


def test_unreadable_files_give_a_row_and_nothing_is_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    _write_run(tmp_path / "version_0", "{not json", "lr: [unclosed")
    _write_run(
        tmp_path / "version_1",
        ["a", "list"],
        f"net: !!python/object/apply:os.system ['touch {marker}']\nlr: 0.1\n"
        "betas: !!python/tuple [0.9, 0.99]\n",
    )
    _write_run(tmp_path / "version_2", {"status": "exploded", "best": "NaN", "epochs": -3})
    _write_run(tmp_path / "version_3", {"status": "finished", "best": 1.0}, "x" * 600)
    _write_run(tmp_path / "version_4", "[" * 100_000, "- a\n- b\n")
    monkeypatch.setattr(runs, "MAX_FILE_BYTES", 500)
    rows = {r.run: r for r in list_runs(tmp_path)}
    assert not marker.exists()
    assert rows["version_0"].status == "unknown"
    assert any("not valid JSON" in p for p in rows["version_0"].problems)
    assert any("hparams.yaml: not valid YAML" in p for p in rows["version_0"].problems)
    assert rows["version_1"].hparams == {
        "net": f"[touch {marker}]",
        "lr": 0.1,
        "betas": "[0.9, 0.99]",
    }
    assert rows["version_1"].problems == ["run.json: not a JSON object"]
    assert rows["version_2"].status == "unknown" and rows["version_2"].best is None
    assert rows["version_2"].epochs is None and "exploded" in rows["version_2"].problems[0]
    assert rows["version_3"].status == "finished"
    assert rows["version_3"].problems == ["hparams.yaml: over 500 bytes, too large to read"]
    assert rows["version_4"].problems[0].startswith("run.json: ")
    assert rows["version_4"].problems[1] == "hparams.yaml: not a mapping of names to values"
    # and every output format still works
    assert runs_command([str(tmp_path)]) == 0
    assert len(json.loads(runs_report.to_json(list(rows.values())))) == 5


def test_an_older_run_without_a_record_shows_what_its_checkpoint_names_say(tmp_path):
    folder = tmp_path / "version_0" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("epoch=3-step=40-val_acc=0.91", "epoch=5-step=60-val_acc=0.87", "last"):
        (folder / f"{name}.ckpt").write_bytes(b"not a checkpoint, and never opened")
    row = _only_row(tmp_path)
    assert (row.status, row.epochs, row.monitor, row.mode) == ("unknown", 6, "val_acc", "max")
    assert row.best == 0.91


# --- lightkit runs ---------------------------------------------------------------------------


def _sweep_like(root: Path) -> None:
    """Runs nested as sweeps and k-fold nest them, each with a record and hyperparameters."""
    for i, (path, best, lr) in enumerate(
        [
            ("study/trials/trial_10/version_0", 0.20, 0.01),
            ("study/trials/trial_2/version_0", 0.10, 0.001),
            ("fold_0/version_0", 0.30, 0.001),
        ]
    ):
        record = {**_running(os.getpid()), "status": "finished", "best": best, "epochs": i + 1}
        record["mode"] = "min"
        record["started"] = f"2026-01-0{3 - i}T10:00:00+00:00"
        hparams = (
            "net:\n  class_path: lightkit.models.mlp.MLP\n  init_args: {hidden: [16]}\n"
            f"optimizer:\n  class_path: lightkit.optim.adam\n  init_args: {{lr: {lr}}}\n"
            "num_classes: 3\n"
        )
        _write_run(root / path, record, hparams)
    (root / "study" / "study.db").write_text("")
    (root / ".hidden" / "version_0").mkdir(parents=True)
    (root / ".hidden" / "version_0" / RECORD_FILE).write_text("{}")


def test_runs_command_prints_csv_json_and_a_table(tmp_path, capsys):
    _sweep_like(tmp_path)
    assert runs_command([str(tmp_path), "--format", "csv", "--sort", "best"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["run"] for r in rows] == [
        "study/trials/trial_2/version_0",
        "study/trials/trial_10/version_0",
        "fold_0/version_0",
    ]
    assert [r["optimizer.lr"] for r in rows] == ["0.001", "0.01", "0.001"]
    frame = pd.read_csv(io.StringIO(text))
    assert frame["best"].tolist() == [0.1, 0.2, 0.3] and frame["epochs"].tolist() == [2, 1, 3]

    assert runs_command([str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in data][:2] == ["fold_0/version_0", "study/trials/trial_2/version_0"]
    assert data[0]["hparams"]["net"] == "MLP" and data[0]["status"] == "finished"

    assert runs_command([str(tmp_path), "--sort", "started"]) == 0
    table = capsys.readouterr().out
    for name in ("fold_0/version_0", "trial_2/version_0", "trial_10/version_0", "best val/acc"):
        assert name in table
    assert table.index("fold_0") < table.index("trial_2") < table.index("trial_10")
    assert "lr" in table and "MLP" in table and ".hidden" not in table


def test_runs_command_on_a_missing_an_empty_or_a_file_root(tmp_path, capsys):
    assert runs_command([str(tmp_path / "nowhere")]) == 2
    assert f"no folder {str(tmp_path / 'nowhere')!r}" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert runs_command([str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert runs_command([str(tmp_path / "empty"), "--format", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [] and "no runs found under" in out.err
    assert runs_command([str(tmp_path), "--format", "yaml"]) == 2


def test_the_table_picks_the_usual_and_the_differing_hyperparameters():
    rows = [
        runs.RunRow("a", "a", hparams={"optimizer.lr": 0.1, "seed": 1, "num_classes": 3}),
        runs.RunRow("b", "b", hparams={"optimizer.lr": 0.1, "seed": 2, "num_classes": 3}),
        runs.RunRow("c", "c", hparams={"optimizer.lr": 0.1, "mixup": 0.2}),
    ]
    assert runs_report.key_hparams(rows) == ["optimizer.lr", "seed"]


def test_default_root_is_make_trainers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert runs_command([]) == 2
    assert "'runs'" in capsys.readouterr().err


def test_the_lightkit_command_lists_runs(tmp_path, capsys):
    from lightkit.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty"), "--format", "csv"]) == 0
    assert "no runs found under" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    main_help = subprocess_help()
    assert "runs" in main_help and "sweep" in main_help


def subprocess_help() -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lightkit.cli", "--help"], capture_output=True, text=True
    ).stdout


def test_listing_runs_imports_neither_torch_nor_lightning():
    """`lightkit runs` reads folders: it starts in a fraction of a second, like `lightkit --help`."""
    import subprocess
    import sys

    code = (
        "import sys; from lightkit.cli import main; main(['runs', '.', '--format', 'json']); "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_column_repeating_another_is_left_out():
    rows = [
        runs.RunRow("a", "a", hparams={"batch_size": 32, "data.batch_size": 32, "lr": 0.1}),
        runs.RunRow("b", "b", hparams={"batch_size": 64, "data.batch_size": 64, "lr": 0.2}),
        runs.RunRow("c", "c", hparams={"batch_size": 64, "data.batch_size": 16, "lr": 0.2}),
    ]
    assert runs_report.key_hparams(rows[:2]) == ["lr", "batch_size"]
    assert "data.batch_size" in runs_report.key_hparams(rows)  # it differs in one row


def test_hostile_files_give_rows_not_hangs_leaks_or_tracebacks(tmp_path, capsys):
    """A FIFO, a device, a symlink to a file elsewhere, numbers too large for a float, dates
    out of range, markup in names and formulas in cells: every one a row, none followed."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("aws_secret_access_key: AKIA-SECRET-123\n")
    root = tmp_path / "root[/x]"
    (root / "fifo").mkdir(parents=True)
    os.mkfifo(root / "fifo" / "hparams.yaml")
    (root / "device").mkdir()
    (root / "device" / "run.json").symlink_to("/dev/zero")
    (root / "link").mkdir()
    (root / "link" / "hparams.yaml").symlink_to(secret)
    (root / "huge").mkdir()
    (root / "huge" / "run.json").write_text(
        '{"status": "finished", "best": 1' + "0" * 400 + ', "started": "0001-01-01T00:00:00+01:00"}'
    )
    (root / "formula").mkdir()
    (root / "formula" / "hparams.yaml").write_text("lr: '=HYPERLINK(\"http://evil\")'\n'[/x]': 1\n")
    for fmt in ("table", "csv", "json"):
        assert runs_command([str(root), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "AKIA-SECRET" not in out
    assert "'=HYPERLINK" in out  # the CSV cell is text to a spreadsheet
    rows = {r.run: r for r in runs.list_runs(root)}
    assert any("symlink" in p for p in rows["link"].problems)
    assert any("not a regular file" in p or "symlink" in p for p in rows["device"].problems)
    assert any("not a regular file" in p for p in rows["fifo"].problems)
    assert rows["huge"].best is None


def test_a_run_without_an_hparams_file_shows_the_hyperparameters_from_its_record(tmp_path):
    """logger=False (or "mlflow" alone) writes no hparams.yaml: the record carries them."""
    for smoothing in (0.1, 0.2):
        module = lk.ClassificationModule(nn.Linear(8, 3), 3, label_smoothing=smoothing)
        _fit(tmp_path, module, logger=False, max_epochs=1)
    rows = list_runs(tmp_path)
    assert [r.hparams.get("label_smoothing") for r in rows] == [0.1, 0.2]
    assert "label_smoothing" in runs_report.key_hparams(rows)  # it differs: a column
