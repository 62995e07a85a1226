"""The learning-rate and batch-size finders."""

from __future__ import annotations

import math

import pytest
import torch

import lightkit as lk
from helpers import RunsOutOfMemory, flat_weights, make_blobs
from lightkit.tuning import valley


def test_find_lr_suggests_a_rate_saves_the_plot_and_restores_the_weights(tmp_path, capsys):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    before = flat_weights(module).clone()
    lr = lk.find_lr(module, dm, default_root_dir=tmp_path, num_training=40, seed=0)
    assert 1e-6 <= lr <= 1.0
    plot = tmp_path / "version_0" / "lr_find.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert f"plot saved to {plot}" in capsys.readouterr().out
    torch.testing.assert_close(flat_weights(module), before, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"need 0 < min_lr < max_lr, got min_lr=1\.0, max_lr=0\.1"):
        lk.find_lr(module, dm, min_lr=1.0, max_lr=0.1, default_root_dir=tmp_path)


def test_find_batch_size_stops_before_running_out_of_memory(tmp_path):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=4, val_split=0.25)
    module = lk.ClassificationModule(RunsOutOfMemory(limit=40), 3)
    assert lk.find_batch_size(module, dm, default_root_dir=tmp_path) == 32
    assert dm.batch_size == 32
    # On memory to spare, the search stops below the training-set size (48 samples), at the
    # largest size it ran.
    dm = lk.data.TensorDataModule(*make_blobs(n=64).tensors, batch_size=16, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    assert lk.find_batch_size(module, dm, init_val=16, default_root_dir=tmp_path) == 32


LRS = [10 ** (-6 + i / 2) for i in range(16)]


def test_valley_ignores_a_rising_hump_before_the_valley():
    # Rising at first (the hump), then a long fall, then divergence: steepest-descent rules can
    # land on the hump; the valley rule lands halfway down the long fall.
    losses = [1.0, 1.2, 1.4, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4, 0.35, 0.33, 2.0, 5.0, math.nan, 9, 9]
    index, lr = valley(LRS, losses)
    assert 3 <= index <= 10 and losses[index] < 1.4 and lr == LRS[index]
    assert losses[index + 1] < losses[index]  # still falling there


def test_valley_stops_at_the_first_non_finite_loss_and_needs_three_points():
    index, _ = valley(LRS[:6], [1.0, 0.9, 0.8, math.inf, 0.1, 0.05])
    assert index <= 2
    assert valley(LRS[:2], [1.0, 0.5]) is None
