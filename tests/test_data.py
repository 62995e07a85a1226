"""DataModule and DigitsDataModule."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _indices(dataset):
    """The original sample indices behind a split (samples carry their index as input)."""
    return sorted(int(dataset[i][0]) for i in range(len(dataset)))


def _indexed(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32), torch.zeros(n, dtype=torch.long))


def test_split_is_disjoint_complete_and_seeded():
    dm = lk.data.DataModule(_indexed(100), val_split=0.2, seed=3)
    dm.setup("fit")
    train, val = _indices(dm.train_dataset), _indices(dm.val_dataset)
    assert len(train) == 80 and len(val) == 20
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))

    again = lk.data.DataModule(_indexed(100), val_split=0.2, seed=3)
    again.setup("fit")
    assert _indices(again.val_dataset) == val
    other = lk.data.DataModule(_indexed(100), val_split=0.2, seed=4)
    other.setup("fit")
    assert _indices(other.val_dataset) != val


def test_transforms_are_per_split():
    data = _indexed(20)
    dm = lk.data.DataModule(
        data,
        test=data,
        val_split=0.5,
        train_transform=lambda x: x + 1000,
        eval_transform=lambda x: -x,
    )
    dm.setup("fit")
    assert all(dm.train_dataset[i][0] >= 1000 for i in range(10))
    assert all(dm.val_dataset[i][0] <= 0 for i in range(10))
    assert all(dm.test_dataset[i][0] <= 0 for i in range(20))


def test_loader_defaults():
    dm = lk.data.DataModule(make_blobs(64), batch_size=8, val_split=0.25, train_transform=abs)
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert isinstance(val, lk.data.InMemoryLoader) and not val.shuffle  # tensors, no transform
    assert train.batch_size == 8 and train.num_workers >= 0
    # The training order is seeded: two datamodules with the same seed shuffle alike.
    dm2 = lk.data.DataModule(make_blobs(64), batch_size=8, val_split=0.25, train_transform=abs)
    dm2.setup("fit")
    first, second = next(iter(train)), next(iter(dm2.train_dataloader()))
    torch.testing.assert_close(first[0], second[0])


def test_no_validation_when_val_split_is_zero(fast_trainer_kwargs):
    dm = lk.data.DataModule(make_blobs(64), val_split=0.0)
    dm.setup("fit")
    assert dm.val_dataset is None and dm.val_dataloader() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"val_split": 1.5}, ValueError, r"val_split must be a number in \[0, 1\), got 1.5"),
        ({"val_split": -0.1}, ValueError, "val_split must be a number in"),
        (
            {"num_workers": -2},
            ValueError,
            r"num_workers must be 'auto' or an integer in \[0, 1024\]",
        ),
        ({"train_transform": 3}, TypeError, "train_transform must be callable"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        lk.data.DataModule(make_blobs(8), **kwargs)


def test_empty_dataset_is_named():
    dm = lk.data.DataModule(TensorDataset(torch.zeros(0, 3), torch.zeros(0)))
    with pytest.raises(ValueError, match="the train dataset is empty"):
        dm.setup("fit")
    dm = lk.data.DataModule(make_blobs(8), test=TensorDataset(torch.zeros(0, 3)))
    with pytest.raises(ValueError, match="the test dataset is empty"):
        dm.setup("fit")


def test_split_too_small_is_explained():
    dm = lk.data.DataModule(make_blobs(2), val_split=0.1)
    with pytest.raises(ValueError, match="leaves 2 for training and 0 for validation"):
        dm.setup("fit")


def test_not_a_dataset():
    with pytest.raises(TypeError, match="train must be a map-style Dataset"):
        lk.data.DataModule(iter(range(3)))


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
