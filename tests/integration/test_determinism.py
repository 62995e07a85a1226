"""Determinism: a seed gives bit-identical runs, also with random augmentation in worker processes."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

import lightkit as lk
from helpers import flat_weights, make_blobs


class NoisyBlobs(Dataset):
    """Blobs with random noise drawn in ``__getitem__`` (like a random augmentation)."""

    def __init__(self) -> None:
        self.data = make_blobs(n=128)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        x, y = self.data[index]
        return x + 0.5 * torch.randn_like(x), y


def test_seed_gives_bit_identical_runs_with_worker_processes(tmp_path):
    weights = []
    for run in range(2):
        trainer = lk.make_trainer(
            max_epochs=2, seed=0, default_root_dir=tmp_path / str(run), logger=False,
            enable_progress_bar=False, enable_model_summary=False, deterministic=True,
        )  # fmt: skip
        dm = lk.data.DataModule(NoisyBlobs(), batch_size=16, num_workers=2)
        module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,), dropout=0.2), 3)
        trainer.fit(module, datamodule=dm)
        assert trainer.train_dataloader.num_workers == 2
        weights.append(flat_weights(module))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
