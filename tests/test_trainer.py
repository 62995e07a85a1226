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
        ({"mode": "up"}, "mode must be 'min' or 'max', got 'up'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'; expected one of 'auto', '32-true'"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be an integer >= 1, got 0"),
        ({"patience": -1}, "patience must be an integer >= 0"),
        ({"logger": "wandb"}, "logger must be 'tensorboard', False or a lightning Logger"),
        ({"gradient_clip_val": -1.0}, "gradient_clip_val must be a number > 0"),
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
