"""make_trainer presets: callbacks, switches, passthrough, seeds, logging, gradient accumulation."""

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
from torch import nn

import lightkit as lk
from helpers import flat_weights, make_blobs, tiny_datamodule, tiny_task


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
        (
            {"logger": "wandb"},
            "logger must be 'tensorboard', 'csv', True, False, a lightning Logger",
        ),
        ({"logger": ["csv", 5]}, "got 5"),
        ({"logger": []}, "logger is an empty list; pass False"),
        ({"logger": ["csv", "csv"]}, "logger names a logger twice"),
        ({"gradient_clip_val": -1.0}, r"gradient_clip_val must be a number in \(0, inf\)"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lk.make_trainer(default_root_dir=tmp_path, **kwargs)


# --- accumulation ------------------------------------------------------------------------------


def _one_epoch_sgd(tmp_path, batch_size: int, accumulate: int) -> torch.Tensor:
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=batch_size, val_split=0.0, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))  # no BatchNorm
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.sgd(lr=0.5, momentum=0.0))
    trainer = lk.make_trainer(
        max_epochs=1,
        accumulate_grad_batches=accumulate,
        default_root_dir=tmp_path / f"b{batch_size}",
        early_stopping=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match="no validation data"):
        trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 256 // (batch_size * accumulate)
    return flat_weights(module)


def test_accumulation_equals_the_large_batch(tmp_path):
    big = _one_epoch_sgd(tmp_path, batch_size=32, accumulate=1)
    accumulated = _one_epoch_sgd(tmp_path, batch_size=8, accumulate=4)
    plain = _one_epoch_sgd(tmp_path, batch_size=8, accumulate=1)
    torch.testing.assert_close(accumulated, big, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain, big, atol=1e-3)  # the comparison can tell them apart


def test_loggers_by_name_write_into_the_run_folder_and_a_resume_keeps_the_csv(tmp_path):
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def fit(epochs, **kwargs):
        trainer = lk.make_trainer(
            max_epochs=epochs, default_root_dir=tmp_path, enable_progress_bar=False,
            enable_model_summary=False, logger=["tensorboard", "csv"], seed=0, **kwargs,
        )  # fmt: skip
        trainer.fit(
            tiny_task(), datamodule=tiny_datamodule(n=96), ckpt_path="last" if kwargs else None
        )
        return trainer

    trainer = fit(2)
    assert len(trainer.loggers) == 2
    run = tmp_path / "version_0"
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    events = EventAccumulator(str(run))
    events.Reload()
    assert len(events.Scalars("val/loss")) == 2
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*will be deleted.*")
        fit(3, version="last")  # resume the same run folder for a third epoch
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # the first run's rows are kept


def test_a_crashed_and_resumed_run_logs_each_step_once_in_the_csv(tmp_path):
    import csv

    from lightning.pytorch.callbacks import Callback

    class Crash(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 7:
                raise RuntimeError("simulated crash")

    def fit(**kwargs):
        trainer = lk.make_trainer(
            max_epochs=2, default_root_dir=tmp_path, enable_progress_bar=False,
            enable_model_summary=False, logger="csv", log_every_n_steps=1, seed=0,
            checkpoint_every_n_steps=5, **kwargs,
        )  # fmt: skip
        ckpt_path = "last" if "version" in kwargs else None
        trainer.fit(
            tiny_task(), datamodule=tiny_datamodule(n=64, batch_size=8), ckpt_path=ckpt_path
        )

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(callbacks=[Crash()])  # steps 0-6 logged, last.ckpt at step 5
    fit(version="last")  # resumes from step 5
    with open(tmp_path / "version_0" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == 11  # each step once, in order
