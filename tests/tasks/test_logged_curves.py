"""What a run's curves say: train/loss by global step, its epoch mean, and both across a mid-epoch resume."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch

import lightkit as lk
from helpers import RecordingLogger, make_blobs, quiet_trainer, tiny_net


def _dm(n: int = 128, batch_size: int = 32) -> lk.data.DataModule:
    return lk.data.DataModule(make_blobs(n + n // 4), val_split=0.2, batch_size=batch_size)


def test_train_loss_is_logged_by_global_step_even_when_epochs_are_short(tmp_path):
    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, max_epochs=3, logger=logger, log_every_n_steps=5)
    trainer.fit(lk.ClassificationModule(tiny_net(), 3), datamodule=_dm())  # 4 batches an epoch
    # 12 optimizer steps: points at step indices 4 and 9, where train/grad_norm is logged too
    assert [step for step, _ in logger.metrics["train/loss"]] == [4, 9]
    assert [step for step, _ in logger.metrics["train/grad_norm"]] == [4, 9]
    epoch_means = logger.metrics["train/loss_epoch"]
    assert len(epoch_means) == 3
    assert epoch_means[-1][1] == pytest.approx(float(trainer.callback_metrics["train/loss"]))


def _fit(tmp_path, name, **kwargs):
    L.seed_everything(0)
    module = lk.ClassificationModule(tiny_net(), 3)
    trainer = quiet_trainer(tmp_path / name, logger=False, seed=None, **kwargs)
    return module, trainer


def test_a_mid_epoch_resume_logs_the_same_epoch_mean_and_an_honest_time(tmp_path):
    module, full = _fit(tmp_path, "full", max_epochs=2)
    full.fit(module, datamodule=_dm())
    expected = float(full.callback_metrics["train/loss"])

    module, first = _fit(tmp_path, "killed", max_epochs=2, max_steps=6, checkpoint_every_n_steps=6)
    first.fit(module, datamodule=_dm())  # stops after batch 2 of epoch 2 (4 batches an epoch)
    last = first.checkpoint_callback.dirpath + "/last.ckpt"
    assert torch.load(last, weights_only=True)["lightkit_train_loss_sum"][1] == 64  # 2 batches

    bar = lk.callbacks.PlainProgressBar(stream=io.StringIO())
    module, resumed = _fit(
        tmp_path, "resumed", max_epochs=2, callbacks=[bar], enable_progress_bar=True
    )
    resumed.fit(module, datamodule=_dm(), ckpt_path=last)
    assert float(resumed.callback_metrics["train/loss"]) == pytest.approx(expected, rel=1e-6)
    line = next(x for x in bar.stream.getvalue().splitlines() if "done in" in x)
    seconds = float(line.split("done in ")[1].split(" s")[0])
    assert line.startswith("epoch 2/2") and "since the resume" in line and seconds < 60
