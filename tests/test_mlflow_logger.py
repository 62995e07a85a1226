"""Loggers by name: ``logger="mlflow"`` leaves metrics, params and images that MLflow's own client
reads, in a SQLite store beside the run folders (or where ``MLFLOW_TRACKING_URI`` says); a resumed
run continues its MLflow run; ``"csv"`` leaves a ``metrics.csv`` pandas reads; figures go to every
logger that takes images; a missing mlflow and bad names are refused before anything is built."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import lightkit as lk
from helpers import make_blobs, row_images

FIGURES = ("val/confusion_matrix", "val/predictions")


def _client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve().as_posix()}")


def _image_steps(client, run_id: str, tag: str) -> list[int]:
    """The steps of the time-stepped images logged under ``tag`` (full-size PNGs only)."""
    prefix = "images/" + tag.replace("/", "~") + "+step+"
    names = [a.path for a in client.list_artifacts(run_id, "images")]
    full = [n for n in names if n.startswith(prefix) and n.endswith(".png")]  # not the .webp
    return sorted(int(n[len(prefix) :].split("+")[0]) for n in full)


@pytest.fixture(scope="module")
def three_loggers(tmp_path_factory):
    """One 2-epoch image-classification fit with ``["tensorboard", "mlflow", "csv"]``; mlflow is
    imported and its store created once for every test here (seconds)."""
    root = tmp_path_factory.mktemp("mlflow") / "runs"
    trainer = lk.make_trainer(
        max_epochs=2,
        default_root_dir=root,
        logger=["tensorboard", "mlflow", "csv"],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        seed=0,
    )
    module = lk.ClassificationModule(
        lk.models.ConvNet(1, 3, widths=(4,)), 3, optimizer=lk.optim.adam(lr=0.01)
    )
    dm = lk.data.DataModule(row_images(64), batch_size=16, val_split=0.25)
    trainer.fit(module, datamodule=dm)
    return trainer, module, dm, root


@pytest.mark.slow
def test_mlflow_metrics_and_params_are_read_back_with_mlflows_own_client(three_loggers):
    trainer, _, _, root = three_loggers
    tensorboard, mlflow_logger, _ = trainer.loggers
    client = _client(root)
    run = client.get_run(mlflow_logger.run_id)
    assert run.info.run_name == "version_0" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "runs"  # the root's name
    assert run.data.tags["lightkit.run_dir"] == str((root / "version_0").resolve())
    val = client.get_metric_history(run.info.run_id, "val/loss")
    steps_per_epoch = trainer.global_step // 2
    assert [m.step for m in val] == [steps_per_epoch - 1, 2 * steps_per_epoch - 1]
    train = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(train) == trainer.global_step  # log_every_n_steps=1
    assert {"val/acc", "train/grad_norm", "lr-Adam"} <= set(run.data.metrics)
    assert run.data.params["optimizer/init_args/lr"] == "0.01"
    assert run.data.params["num_classes"] == "3"
    # The store lies beside the run folders; nothing of MLflow in the run folder or the cwd.
    assert (root / "mlflow.db").is_file() and (root / "mlartifacts").is_dir()
    assert not any("mlflow" in p.name or p.name == "mlruns" for p in (root / "version_0").iterdir())
    assert not Path("mlruns").exists()
    assert tensorboard.log_dir == mlflow_logger.log_dir == str(root / "version_0")


@pytest.mark.slow
def test_figures_go_to_tensorboard_and_mlflow_and_csv_gets_metrics(three_loggers):
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _, _, root = three_loggers
    client, run_id = _client(root), trainer.loggers[1].run_id
    steps_per_epoch = trainer.global_step // 2
    for tag in FIGURES:  # one image per validation epoch, at its step
        assert _image_steps(client, run_id, tag) == [steps_per_epoch, 2 * steps_per_epoch]
    png = next(a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png"))
    from PIL import Image

    with Image.open(client.download_artifacts(run_id, png)) as image:
        assert image.mode == "RGB" and image.width > 100
    events = EventAccumulator(str(root / "version_0"), size_guidance={"images": 0})
    events.Reload()
    for tag in FIGURES:
        assert len(events.Images(tag)) == 2
    metrics = pd.read_csv(root / "version_0" / "metrics.csv")
    assert {"step", "epoch", "train/loss", "val/loss", "val/acc"} <= set(metrics.columns)
    assert metrics["val/loss"].notna().sum() == 2
    assert metrics["train/loss"].notna().sum() == trainer.global_step


@pytest.mark.slow
def test_interpret_pictures_go_to_the_mlflow_run(three_loggers):
    trainer, module, dm, root = three_loggers
    lk.interpret(module, dm)
    client, run_id = _client(root), trainer.loggers[1].run_id
    assert _image_steps(client, run_id, "interpret/val/confusion_matrix") == [trainer.global_step]
    assert _image_steps(client, run_id, "interpret/val/reliability") == [trainer.global_step]


@pytest.mark.slow
def test_a_resumed_run_continues_its_mlflow_run(three_loggers):
    _, _, _, root = three_loggers  # the same store: a new run folder, version_1
    options = dict(default_root_dir=root, logger="mlflow", enable_progress_bar=False,
                   enable_model_summary=False, seed=0)  # fmt: skip
    dm = lk.data.DataModule(make_blobs(64), batch_size=32)
    first = lk.make_trainer(max_epochs=1, **options)
    first.fit(lk.ClassificationModule(lk.models.MLP(8, 3), 3), datamodule=dm)
    run_id = first.logger.run_id
    assert first.default_root_dir.endswith("version_1")
    resumed = lk.make_trainer(max_epochs=2, version=1, **options)
    resumed.fit(lk.ClassificationModule(lk.models.MLP(8, 3), 3), datamodule=dm, ckpt_path="last")
    assert resumed.logger.run_id == run_id
    client = _client(root)
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [1, 3]
    assert client.get_run(run_id).info.status == "FINISHED"
    runs = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["version_0", "version_1"]
    fresh = lk.make_trainer(max_epochs=1, **options)  # a new run folder: a new MLflow run
    assert fresh.logger.run_id != run_id


@pytest.mark.slow
def test_the_command_line_names_mlflow(three_loggers, capsys):
    from helpers import DIGITS_MLP_SECTIONS
    from lightkit.cli import main

    _, _, _, root = three_loggers
    config = root.parent / "cli.yaml"
    config.write_text(
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n  limit_val_batches: 1\n"
        "  enable_progress_bar: false\n  enable_model_summary: false\n" + DIGITS_MLP_SECTIONS
    )
    args = ["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]
    assert main([*args, "--trainer.logger=mlflow"]) == 0
    capsys.readouterr()
    client = _client(root)
    folder = max((p for p in root.glob("version_*")), key=lambda p: int(p.name.split("_")[1]))
    (run,) = client.search_runs(
        [client.get_experiment_by_name("runs").experiment_id],
        filter_string=f"tags.`lightkit.run_dir` = '{folder.resolve()}'",
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1]
    assert (folder / "config.yaml").is_file()  # trainer.log_dir is the run folder


@pytest.mark.slow
def test_mlflow_tracking_uri_and_experiment_name_come_from_the_environment(
    three_loggers, tmp_path, monkeypatch
):
    import shutil

    from mlflow.tracking import MlflowClient

    _, _, _, root = three_loggers
    server = tmp_path / "server.db"  # stands in for a tracking server (a copy: no migration)
    shutil.copy(root / "mlflow.db", server)
    uri = f"sqlite:///{server.resolve().as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    trainer = lk.make_trainer(default_root_dir=tmp_path / "elsewhere", logger="mlflow")
    assert trainer.logger._tracking_uri == uri
    assert MlflowClient(uri).get_experiment_by_name("from-env") is not None
    assert _client(root).get_experiment_by_name("from-env") is None
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()
    assert not (tmp_path / "elsewhere" / "mlartifacts").exists()


def test_a_missing_mlflow_is_named_with_the_extra_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    for logger in ("mlflow", ["tensorboard", "mlflow"]):
        with pytest.raises(ModuleNotFoundError, match=r'pip install "lightkit\[mlflow\]"'):
            lk.make_trainer(default_root_dir=tmp_path / "runs", logger=logger)
    assert not (tmp_path / "runs").exists()
    from lightkit.trainer._loggers import mlflow_logger

    (tmp_path / "version_0").mkdir()
    with pytest.raises(ModuleNotFoundError, match=r"lightkit\[mlflow\]"):
        mlflow_logger(tmp_path / "version_0", new_run=True)


@pytest.mark.parametrize(
    ("logger", "message"),
    [
        ("mlflo", r"logger must be 'tensorboard', 'csv', True, .*'mlflow'.* got 'mlflo'"),
        ("MLflow", "got 'MLflow'"),
        (["mlflow", "csv", "mlflow"], "names a logger twice"),
        ([], "empty list"),
        (0, "got 0"),
    ],
)
def test_bad_logger_names_are_still_refused(tmp_path, logger, message):
    with pytest.raises(ValueError, match=message):
        lk.make_trainer(default_root_dir=tmp_path / "runs", logger=logger)
    assert not (tmp_path / "runs").exists()


def test_csv_alone_leaves_a_metrics_csv_pandas_reads_and_draws_no_figures(tmp_path, monkeypatch):
    import pandas as pd

    from lightkit.callbacks import figures

    drawn = []
    monkeypatch.setattr(figures, "confusion_image", lambda *a, **k: drawn.append(a))
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, logger="csv",
                              log_every_n_steps=1, enable_progress_bar=False,
                              enable_model_summary=False)  # fmt: skip
    dm = lk.data.DataModule(make_blobs(64), batch_size=16)
    trainer.fit(lk.ClassificationModule(lk.models.MLP(8, 3), 3), datamodule=dm)
    metrics = pd.read_csv(tmp_path / "version_0" / "metrics.csv")
    assert {"train/loss", "val/loss", "val/acc", "epoch", "step"} <= set(metrics.columns)
    assert metrics["val/loss"].notna().sum() == 2
    assert drawn == []  # no logger takes images: nothing is rendered


_HOLD_LOCK = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


@pytest.mark.slow
def test_a_new_store_is_created_under_a_lock(tmp_path, three_loggers):
    """Runs started together into a new root would each create the SQLite store's tables (one
    then fails with "duplicate column name"): the store is opened under ``mlflow.db.lock``."""
    import subprocess
    import threading

    from lightkit.trainer._loggers import mlflow_logger

    fitted, root = three_loggers[3], tmp_path / "runs"
    (root / "version_0").mkdir(parents=True)
    holder = subprocess.Popen(  # another process opening the store
        [sys.executable, "-c", _HOLD_LOCK, str(root / "mlflow.db.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    built = []
    thread = threading.Thread(target=lambda: built.append(mlflow_logger(root / "version_0", True)))
    thread.start()
    thread.join(timeout=1.0)
    waited = thread.is_alive() and not (root / "mlflow.db").exists()
    holder.communicate("", timeout=30)  # releases the lock
    thread.join(timeout=60)
    # Its own store, though mlflow.set_tracking_uri (which Lightning calls) has set
    # MLFLOW_TRACKING_URI to the fixture's: that was no choice of the user's.
    assert built[0]._tracking_uri == _client(root).tracking_uri != _client(fitted).tracking_uri
    assert (waited, len(built), (root / "mlflow.db").is_file()) == (True, 1, True)
    assert _client(root).get_experiment_by_name("runs") is not None


def test_the_store_lightkit_chose_does_not_leak_into_a_child_process(
    three_loggers, tmp_path, monkeypatch
):
    """MLFlowLogger exports the tracking URI it was given; a process started afterwards (which
    inherits the environment but not this process's memory) must still log into its own root's
    store, not into the parent's."""
    import os

    from lightkit.trainer import _loggers

    parent = three_loggers[0].loggers[1]._tracking_uri
    assert os.environ["MLFLOW_TRACKING_URI"] == parent  # what MLFlowLogger exported
    assert parent in os.environ["LIGHTKIT_MLFLOW_DEFAULT_STORES"].split("\n")
    monkeypatch.setattr(_loggers, "_DEFAULT_STORES", set())  # a new process's memory
    trainer = lk.make_trainer(default_root_dir=tmp_path / "child", logger="mlflow")
    assert trainer.logger._tracking_uri.endswith(f"{(tmp_path / 'child').as_posix()}/mlflow.db")
    assert (tmp_path / "child" / "mlflow.db").is_file()


@pytest.mark.slow
def test_a_deleted_experiment_a_bad_uri_and_an_odd_folder_are_clear_errors(
    three_loggers, tmp_path, monkeypatch
):
    import shutil

    from mlflow.tracking import MlflowClient

    _, _, _, root = three_loggers
    copy = tmp_path / "runs"
    copy.mkdir()
    shutil.copy(root / "mlflow.db", copy / "mlflow.db")
    client = MlflowClient(f"sqlite:///{(copy / 'mlflow.db').as_posix()}")
    experiment = client.get_experiment_by_name("runs")
    client.delete_experiment(experiment.experiment_id)
    with pytest.raises(ValueError, match=r"was deleted .*restore it"):
        lk.make_trainer(default_root_dir=copy, logger="mlflow")
    with pytest.raises(ValueError, match=r"holds \?, # or %"):
        lk.make_trainer(default_root_dir=tmp_path / "odd?name", logger="mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "garbage://nowhere")
    with pytest.raises(ValueError, match="could not use MLFLOW_TRACKING_URI='garbage://nowhere'"):
        lk.make_trainer(default_root_dir=tmp_path / "other", logger="mlflow")
