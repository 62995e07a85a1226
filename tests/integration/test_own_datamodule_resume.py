"""A dataset of your own (with random augmentation) handed to lk.data.DataModule resumes
mid-epoch bit-identically: the documented way to get lightkit's guarantee for your data."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import Dataset

import lightkit as lk
from helpers import flat_weights


class Augmented(Dataset):
    def __len__(self) -> int:
        return 96

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(8, generator=g) + 0.3 * torch.randn(8)  # random augmentation
        return x, int(i % 3)


def own_data() -> lk.data.DataModule:
    return lk.data.DataModule(Augmented(), batch_size=16, val_split=0.0, seed=5)


class Crash(Callback):
    """Fails the run before the batch after ``step`` optimizer steps (their checkpoint is saved)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise RuntimeError("simulated crash")


def _fit(root, crash_at: int | None = None, ckpt_path=None):
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16], dropout=0.3), 3)
    trainer = lk.make_trainer(
        max_epochs=3, seed=0, default_root_dir=root, version=0, checkpoint_every_n_steps=1,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        early_stopping=False, monitor="train/loss",
        callbacks=[Crash(crash_at)] if crash_at is not None else [],
    )  # fmt: skip
    trainer.fit(module, datamodule=own_data(), ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("crash_at", [8, 12], ids=["mid-epoch", "epoch-end"])
def test_an_own_dataset_in_a_lightkit_datamodule_resumes_bit_identically(tmp_path, crash_at):
    whole = _fit(tmp_path / "whole")  # 6 batches an epoch, 18 steps
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path / "part", crash_at=crash_at)  # dies after batch 2 (or 6: the last) of epoch 1
    resumed = _fit(tmp_path / "part", ckpt_path="last")
    torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)
