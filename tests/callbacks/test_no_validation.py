"""NoValidationFallback: without validation data, train/loss is monitored; val/ monitors that
validation never logs are errors."""

from __future__ import annotations

import pytest

import lightkit as lk
from helpers import make_blobs


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


def test_a_run_ending_before_its_first_validation_is_fine(tmp_path):
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3)
    trainer = lk.make_trainer(max_steps=2, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2


def test_a_monitor_validation_never_logs_is_reported(tmp_path):
    data = make_blobs(n=128)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3)
    trainer = lk.make_trainer(max_epochs=2, monitor="val/accuracy", mode="max",
                              default_root_dir=tmp_path, logger=False, enable_progress_bar=False)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"monitor='val/accuracy' was not logged .* val/acc, val/f1"
    ):
        trainer.fit(module, datamodule=dm)
