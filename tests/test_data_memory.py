"""The in-memory fast path, TensorDataModule and k-fold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lightkit as lk
from helpers import make_blobs


def test_in_memory_loader_yields_exactly_the_dataloader_batches():
    x, y = torch.randn(1000, 5), torch.arange(1000)
    slow = DataLoader(
        TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(3)
    )
    fast = lk.data.InMemoryLoader((x, y), batch_size=64, shuffle=True, seed=3)
    assert len(fast) == len(slow) == 16
    for _ in range(3):  # several epochs: the generators advance alike
        for a, b in zip(slow, fast, strict=True):
            torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
            assert torch.equal(a[1], b[1])


def test_in_memory_loader_options():
    x = torch.arange(10)
    assert [b[0].tolist() for b in lk.data.InMemoryLoader((x,), batch_size=4)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    dropped = lk.data.InMemoryLoader((x,), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(b[0]) for b in dropped] == [4, 4]
    with pytest.raises(ValueError, match="same first dimension"):
        lk.data.InMemoryLoader((x, torch.zeros(3)))


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
        for a, b in zip(slow_loader, fast_loader, strict=True):
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


def test_kfold_folds_are_disjoint_stratified_and_seeded():
    ds = make_blobs(90)
    labels = ds.tensors[1]
    val_sets = []
    for fold in range(3):
        dm = lk.data.KFoldDataModule(ds, k=3, fold=fold, seed=5)
        assert set(dm.train_indices).isdisjoint(dm.val_indices)
        assert len(dm.train_indices) + len(dm.val_indices) == 90
        counts = torch.bincount(labels[dm.val_indices], minlength=3)
        overall = torch.bincount(labels, minlength=3) / 3
        assert (counts - overall).abs().max() <= 1  # stratified
        val_sets.append(set(dm.val_indices))
    assert set().union(*val_sets) == set(range(90))
    assert lk.data.KFoldDataModule(ds, k=3, fold=1, seed=5).val_indices == sorted(val_sets[1])
    with pytest.raises(ValueError, match=r"fold must be an integer in \[0, 2\], got 3"):
        lk.data.KFoldDataModule(ds, k=3, fold=3)


def test_cross_validate(tmp_path, capsys):
    calls = []

    def make_module():
        calls.append(1)
        return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)

    result = lk.cross_validate(
        make_module,
        make_blobs(120),
        k=3,
        batch_size=16,
        trainer_kwargs={"max_epochs": 3, "default_root_dir": tmp_path, "logger": False},
    )
    assert len(calls) == 3 and len(result["folds"]) == 3  # a fresh module per fold
    assert {"val/loss", "val/acc", "val/f1"} <= set(result["mean"])
    accs = [f["val/acc"] for f in result["folds"]]
    assert result["mean"]["val/acc"] == pytest.approx(sum(accs) / 3)
    assert result["std"]["val/acc"] == pytest.approx(float(torch.tensor(accs).std()))
    table = capsys.readouterr().out
    assert "mean" in table and "std" in table and "val/acc" in table


def test_in_memory_loader_matches_the_dataloader_on_the_global_rng_and_after_a_partial_epoch():
    x = torch.arange(300)
    torch.manual_seed(11)
    slow = [b[0] for b in DataLoader(TensorDataset(x), batch_size=32, shuffle=True)]
    torch.manual_seed(11)
    fast = [b[0] for b in lk.data.InMemoryLoader((x,), batch_size=32, shuffle=True)]
    assert all(torch.equal(a, b) for a, b in zip(slow, fast, strict=True))


def test_data_loading_benchmark_tiny():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "data_loading.py"
    out = subprocess.run(
        [sys.executable, str(script), "--samples", "1000", "--pairs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("speed-up InMemoryLoader / DataLoader:") == 2
