"""make_trainer presets."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import TensorBoardLogger

import lightkit as lk


def _callbacks(trainer, cls):
    return [c for c in trainer.callbacks if isinstance(c, cls)]


def test_presets(tmp_path):
    trainer = lk.make_trainer(
        max_epochs=3, default_root_dir=tmp_path, monitor="val/acc", mode="max"
    )
    (ckpt,) = _callbacks(trainer, ModelCheckpoint)
    (stop,) = _callbacks(trainer, EarlyStopping)
    assert ckpt.monitor == "val/acc" and ckpt.mode == "max" and ckpt.save_last
    assert stop.monitor == "val/acc" and stop.patience == 10
    assert _callbacks(trainer, LearningRateMonitor)
    assert isinstance(trainer.logger, TensorBoardLogger)
    assert trainer.logger.log_dir == str(tmp_path / "version_0")
    assert trainer.max_epochs == 3
    if not torch.cuda.is_available():
        assert trainer.precision == "32-true"


def test_switches_and_passthrough(tmp_path):
    class Mine(Callback):
        pass

    trainer = lk.make_trainer(
        default_root_dir=tmp_path,
        early_stopping=False,
        logger=False,
        callbacks=[Mine()],
        max_steps=7,
        gradient_clip_val=1.0,
        accumulate_grad_batches=2,
    )
    assert not _callbacks(trainer, EarlyStopping)
    assert not _callbacks(trainer, LearningRateMonitor)
    assert _callbacks(trainer, Mine) and _callbacks(trainer, ModelCheckpoint)
    assert trainer.logger is None
    assert trainer.max_steps == 7
    assert trainer.gradient_clip_val == 1.0 and trainer.accumulate_grad_batches == 2


def test_each_run_gets_a_new_folder(tmp_path, blobs):
    dirs = []
    for _ in range(2):
        trainer = lk.make_trainer(
            max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False
        )
        module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=64))
        dirs.append(trainer.checkpoint_callback.dirpath)
        assert (tmp_path / f"version_{len(dirs) - 1}" / "checkpoints" / "last.ckpt").exists()
    assert dirs[0] != dirs[1]


def test_seed_makes_runs_identical(tmp_path, blobs):
    weights = []
    for _ in range(2):
        trainer = lk.make_trainer(
            max_epochs=2,
            default_root_dir=tmp_path,
            seed=123,
            logger=False,
            enable_progress_bar=False,
        )
        module = lk.ClassificationModule(lk.models.MLP(8, 3, dropout=0.2), 3)
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=16))
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_train_loss_and_val_metrics_reach_tensorboard(tmp_path, blobs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path, log_every_n_steps=2, enable_progress_bar=False
    )
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=32, val_split=0.25))
    events = EventAccumulator(trainer.logger.log_dir)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= tags
    assert len(events.Scalars("train/loss")) == 6  # 12 steps, every 2nd
    assert len(events.Scalars("val/loss")) == 2  # one per epoch, not per step


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up"}, "mode must be one of 'min', 'max', got 'up'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'; expected one of 'auto', '32-true'"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be an integer >= 1, got 0"),
        ({"patience": -1}, "patience must be an integer >= 0"),
        ({"logger": "wandb"}, "logger must be 'tensorboard', False or a lightning Logger"),
        ({"gradient_clip_val": -1.0}, r"gradient_clip_val must be a number in \(0, inf\)"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lk.make_trainer(default_root_dir=tmp_path, **kwargs)


def test_without_validation_data_train_loss_is_monitored(tmp_path, blobs):
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, enable_progress_bar=False)
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    with pytest.warns(UserWarning, match="no validation data.*train/loss instead of val/loss"):
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, val_split=0.0))
    assert trainer.checkpoint_callback.monitor == "train/loss"
    assert trainer.checkpoint_callback.best_model_path.endswith("best.ckpt")


def test_without_validation_data_a_val_metric_monitor_is_an_error(tmp_path, blobs):
    trainer = lk.make_trainer(
        max_epochs=1, default_root_dir=tmp_path, monitor="val/acc", mode="max", logger=False
    )
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    with pytest.raises(ValueError, match="monitor='val/acc' needs validation data"):
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, val_split=0.0))


# --- run folders -----------------------------------------------------------------------------


def _claim_many(root, barrier, queue, count):
    from lightkit.trainer._run_dir import claim_run_dir as _claim_run_dir

    barrier.wait()
    queue.put([str(_claim_run_dir(root)) for _ in range(count)])


def _make_trainer_at_once(root, barrier, queue, count):
    barrier.wait()
    dirs = []
    for _ in range(count):
        trainer = lk.make_trainer(
            default_root_dir=root, logger=False, enable_progress_bar=False, max_epochs=1
        )
        dirs.append(trainer.default_root_dir)
    queue.put(dirs)


def _race(target, root, processes=8, count=10):
    import multiprocessing

    context = multiprocessing.get_context("fork")  # cheap: lightkit is already imported
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=target, args=(root, barrier, queue, count)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    return [d for dirs in results for d in dirs]


@pytest.mark.parametrize("target", [_claim_many, _make_trainer_at_once], ids=["claim", "make"])
def test_runs_started_at_the_same_moment_never_share_a_folder(tmp_path, target):
    dirs = _race(target, tmp_path / "runs")
    assert len(dirs) == 80
    assert len(set(dirs)) == 80, "two runs got the same version_<n> folder"
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {f"version_{n}" for n in range(80)}


def test_a_stale_listing_still_claims_a_free_folder(tmp_path, monkeypatch):
    # Another run created version_0 and version_1 after this one listed the root.
    from lightkit.trainer import _run_dir as trainer_module

    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_1" / "mine").write_text("theirs")
    monkeypatch.setattr(trainer_module, "versions", lambda root: [])
    trainer = lk.make_trainer(default_root_dir=tmp_path, logger=False)
    assert trainer.default_root_dir == str(tmp_path / "version_2")
    assert (tmp_path / "version_1" / "mine").read_text() == "theirs"


def test_ddp_workers_reuse_rank_zeros_folder_and_create_none(tmp_path, monkeypatch):
    from lightning.pytorch.utilities import rank_zero_only

    chosen = lk.make_trainer(default_root_dir=tmp_path, logger=False).default_root_dir
    assert chosen == str(tmp_path / "version_0")
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as in a worker Lightning launched
    monkeypatch.setenv("LIGHTKIT_RUN_DIR", chosen)
    worker = lk.make_trainer(default_root_dir=tmp_path, logger=False)
    assert worker.default_root_dir == chosen
    assert [p.name for p in tmp_path.iterdir()] == ["version_0"]


def test_explicit_version_means_that_folder(tmp_path):
    first = lk.make_trainer(default_root_dir=tmp_path, version=3, logger=False)
    again = lk.make_trainer(default_root_dir=tmp_path, version=3, logger=False)
    assert first.default_root_dir == again.default_root_dir == str(tmp_path / "version_3")
    # A new run goes after the highest number, never into an explicit run's folder.
    assert lk.make_trainer(default_root_dir=tmp_path).default_root_dir == str(
        tmp_path / "version_4"
    )


def test_a_trainer_that_fails_to_build_leaves_no_folder(tmp_path):
    with pytest.raises(Exception, match="not a valid duration"):
        lk.make_trainer(default_root_dir=tmp_path, max_time="forever", logger=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_root_is_named(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(NotADirectoryError, match=r"default_root_dir=.*runs' is a file"):
        lk.make_trainer(default_root_dir=tmp_path / "runs")
