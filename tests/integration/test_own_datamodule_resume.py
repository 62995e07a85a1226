"""A LightningDataModule of your own gets lightkit's exact mid-epoch resume from ResumableLoader:
Lightning keeps the loader's state in checkpoints."""

from __future__ import annotations

import lightning as L
import torch
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


class OwnData(L.LightningDataModule):
    def train_dataloader(self):
        return lk.data.ResumableLoader(Augmented(), batch_size=16, seed=5)


def _fit(root, max_steps: int, ckpt_path=None):
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16], dropout=0.3), 3)
    trainer = lk.make_trainer(
        max_epochs=3, max_steps=max_steps, seed=0, default_root_dir=root, version=0,
        checkpoint_every_n_steps=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, early_stopping=False, monitor="train/loss",
    )  # fmt: skip
    trainer.fit(module, datamodule=OwnData(), ckpt_path=ckpt_path)
    return module


def test_an_own_datamodule_with_resumable_loader_resumes_mid_epoch_bit_identically(tmp_path):
    whole = _fit(tmp_path / "whole", max_steps=-1)  # 6 batches an epoch, 18 steps
    _fit(tmp_path / "part", max_steps=8)  # stops at batch 2 of epoch 1
    resumed = _fit(tmp_path / "part", max_steps=-1, ckpt_path="last")
    torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)
