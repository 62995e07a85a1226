"""InMemoryLoader: the in-memory fast path yields exactly the DataLoader's batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lightkit as lk


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


def test_in_memory_loader_matches_the_dataloader_on_the_global_rng_and_after_a_partial_epoch():
    x = torch.arange(300)
    torch.manual_seed(11)
    slow = [b[0] for b in DataLoader(TensorDataset(x), batch_size=32, shuffle=True)]
    torch.manual_seed(11)
    fast = [b[0] for b in lk.data.InMemoryLoader((x,), batch_size=32, shuffle=True)]
    assert all(torch.equal(a, b) for a, b in zip(slow, fast, strict=True))
