"""DataModule and TensorDataModule: splits, per-split transforms, loaders and the in-memory fast
path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

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
    assert isinstance(train, lk.data.ResumableLoader)  # seeded order, resumable mid-epoch
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


def test_datamodule_uses_the_fast_path_with_the_same_samples():
    ds = make_blobs(200)
    fast = lk.data.DataModule(ds, val_split=0.25, batch_size=16, seed=1)
    fast.setup("fit")
    fast_loader = fast.train_dataloader()
    assert isinstance(fast_loader, lk.data.InMemoryLoader)
    slow = lk.data.DataModule(
        ds, val_split=0.25, batch_size=16, seed=1, train_transform=lambda v: v, num_workers=0
    )
    slow.setup("fit")
    slow_loader = slow.train_dataloader()
    assert isinstance(slow_loader, DataLoader)  # a per-sample transform needs the DataLoader
    for _ in range(2):
        # Iterated as Lightning iterates: never asking for a batch after the last one.
        steps = range(len(fast_loader))
        for _, a, b in zip(steps, slow_loader, fast_loader, strict=False):
            torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    for a, b in zip(slow.val_dataloader(), fast.val_dataloader(), strict=True):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)


def test_tensor_datamodule_splits_and_trains(fast_trainer_kwargs):
    x, y = make_blobs(300).tensors
    dm = lk.data.TensorDataModule(
        x.numpy().astype(np.float64),
        y.numpy(),
        val_split=0.2,
        test_split=0.1,
        stratify=True,
        batch_size=32,
    )
    dm.setup("fit")
    sizes = [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)]
    assert (
        sum(sizes) == 300
        and sizes[2] == pytest.approx(30, abs=2)
        and sizes[1] == pytest.approx(60, abs=2)
    )
    assert dm.train_dataset.tensors[0].dtype == torch.float32
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = lk.make_trainer(max_epochs=3, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=dm)
    assert trainer.test(module, datamodule=dm, verbose=False)[0]["test/acc"] > 0.8


def test_tensor_datamodule_names_the_first_bad_sample():
    x = torch.randn(20, 4)
    x[7, 2] = float("nan")
    x[12, 0] = float("inf")
    with pytest.raises(
        ValueError, match=r"x has NaN or Inf values in 2 sample\(s\); the first is sample 7"
    ):
        lk.data.TensorDataModule(x, torch.zeros(20))
    y = torch.zeros(20)
    y[3] = float("inf")
    with pytest.raises(ValueError, match="y has NaN or Inf values in 1 sample"):
        lk.data.TensorDataModule(torch.randn(20, 4), y)
    with pytest.raises(ValueError, match="x has 20 samples but y has 19"):
        lk.data.TensorDataModule(torch.randn(20, 4), torch.zeros(19))


def test_tensor_dataset_is_sharded_not_fast_pathed_under_ddp():
    """Several processes need a sharded sampler, so no InMemoryLoader there."""

    from types import SimpleNamespace

    class FakeTrainer:
        world_size, global_rank = 2, 0
        progress = SimpleNamespace(current=SimpleNamespace(processed=0))
        fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))

    dm = lk.data.DataModule(TensorDataset(torch.randn(40, 3), torch.zeros(40)), val_split=0)
    dm.setup("fit")
    dm.trainer = FakeTrainer()  # type: ignore[assignment]
    loader = dm.train_dataloader()
    assert isinstance(loader, lk.data.ResumableLoader)
    assert len(loader.sampler) == 20  # this rank's half: it shards itself


def test_datamodule_transforms_move_image_and_mask_together(tmp_path):
    paths = []
    for i in range(4):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[:, :8] = 1 + i % 2  # left half labelled
        Image.fromarray(mask).save(tmp_path / f"m{i}.png")
        Image.fromarray(mask * 100).convert("RGB").save(tmp_path / f"i{i}.png")  # image = mask
        paths.append((tmp_path / f"i{i}.png", tmp_path / f"m{i}.png"))
    dataset = lk.data.SegmentationDataset(*zip(*paths, strict=True))
    flip = lk.data.transforms.train_preset(
        16, (0, 0, 0), (1, 1, 1), rotation=0, color_jitter=0, random_resized_crop=False
    )
    dm = lk.data.DataModule(dataset, val_split=0.5, train_transform=flip, batch_size=2)
    dm.setup("fit")
    torch.manual_seed(0)
    for _ in range(8):  # random flips: the mask must follow the image every time
        image, mask = dm.train_dataset[0]
        assert torch.equal((image[0] * 255 / 100).round().long(), mask)
        assert mask.dtype == torch.long
