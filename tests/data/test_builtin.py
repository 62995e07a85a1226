"""Built-in data modules: DigitsDataModule."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


def test_digits_datamodule():
    dm = lk.data.DigitsDataModule(batch_size=16, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    sizes = [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)]
    assert sum(sizes) == 1797 and sizes == [1258, 180, 359]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    train_x = dm.train_dataset.tensors[0]
    assert abs(float(train_x.mean())) < 1e-4 and abs(float(train_x.std()) - 1) < 1e-4
    test_x = set(map(tuple, dm.test_dataset.tensors[0].flatten(1).tolist()))
    train_set = set(map(tuple, train_x.flatten(1).tolist()))
    # Digits has a few exact duplicate images; the splits themselves are disjoint by index.
    assert len(test_x & train_set) < 10


def test_digits_bad_split():
    with pytest.raises(ValueError, match=r"test_split must be a number in \(0, 1\), got 1.0"):
        lk.data.DigitsDataModule(test_split=1.0)
