"""The learning-rate and batch-size finders."""

from __future__ import annotations

import gc
import math

import pytest
import torch
from torch import nn

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


class RecordsBatchSizes(nn.Module):
    """A small MLP that records the size of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.net = lk.models.MLP(8, 3, hidden=(16,))
        self.sizes: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.sizes.add(len(x))
        return self.net(x)


@pytest.mark.parametrize(
    ("val_split", "init_val", "max_val", "expected"),
    [
        (0.25, 2, 32, 32),  # 72 training samples: max_val itself is tried (it returned 16)
        (0.25, 16, 16, 16),  # init_val == max_val: it returned 16 without running anything
        (0.5, 2, 8192, 64),  # 64 training samples: one batch of all of them (it returned 32)
    ],
)
def test_find_batch_size_tries_max_val_and_returns_a_size_that_ran(
    tmp_path, val_split, init_val, max_val, expected
):
    # On the CPU nothing runs out of memory: the search ends at max_val or the training set.
    data = make_blobs(n=128 if val_split == 0.5 else 96)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=4, val_split=val_split)
    net = RecordsBatchSizes()
    found = lk.find_batch_size(
        lk.ClassificationModule(net, 3),
        dm,
        init_val=init_val,
        max_val=max_val,
        steps_per_trial=1,
        default_root_dir=tmp_path,
    )
    assert found == dm.batch_size == expected
    assert max(net.sizes) == expected  # the size returned ran
    assert min(net.sizes) == init_val  # the first trial ran at init_val, not at dm's batch size
    assert gc.get_freeze_count() == 0  # the search's gc.freeze is undone


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
