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


class _Augmented(torch.utils.data.Dataset):
    """Samples with random 'augmentation' from torch's global RNG, as torchvision's transforms."""

    def __len__(self) -> int:
        return 50

    def __getitem__(self, i):
        return torch.tensor([float(i)]) + torch.rand(1), i


def _batches(loader) -> list[list[float]]:
    return [b[0].flatten().tolist() for b in loader]


@pytest.mark.parametrize(
    ("workers", "balanced", "rank"),
    [(0, False, None), (0, True, None), (0, False, 1), (2, True, 0)],
    ids=["plain", "balanced", "rank1-of-2", "workers-balanced-rank0"],
)
def test_resumable_loader_continues_mid_epoch_with_the_same_samples_and_augmentation(
    workers, balanced, rank
):
    weights = torch.linspace(0.1, 1.0, 50).double() if balanced else None

    def make():
        return lk.data.ResumableLoader(
            _Augmented(), 8, seed=3, weights=weights, num_workers=workers,
            num_replicas=1 if rank is None else 2, rank=rank or 0,
        )  # fmt: skip

    whole = make()
    epochs = [_batches(whole) for _ in range(3)]
    assert epochs[0] != epochs[1]  # a new order (and augmentation) every epoch
    part = make()
    _batches(part)
    iterator = iter(part)
    for _ in range(2):
        next(iterator)  # killed after two batches of epoch 1
    part.position = lambda: 2
    resumed = make()
    resumed.resume(part.resume_state())
    assert _batches(resumed) == epochs[1][2:]  # not loaded again, nor augmented otherwise
    assert _batches(resumed) == epochs[2]
    # From an epoch's end: the next epoch is the uninterrupted run's.
    part.position = lambda: len(part)
    after_end = make()
    after_end.resume(part.resume_state())
    assert _batches(after_end) == epochs[2]


def test_resumable_loader_leaves_the_main_process_rng_alone_and_checks_its_state():
    loader = lk.data.ResumableLoader(_Augmented(), 8, seed=0)
    before = torch.get_rng_state()
    _batches(loader)
    assert torch.equal(torch.get_rng_state(), before)  # dropout's randomness is not shifted
    state = loader.resume_state()
    with pytest.raises(ValueError, match=r"checkpoint's loader had 50 samples, this one has 49"):
        short = lk.data.ResumableLoader(torch.utils.data.Subset(_Augmented(), range(49)), 8, 0)
        short.resume(state)
    with pytest.raises(ValueError, match=r"state\['consumed'\]"):
        loader.resume({**state, "consumed": -1})


def test_resumable_loader_edge_cases():
    # More processes than samples: padded by repeating the order, as DistributedSampler does.
    sampler = lk.data.ResumableLoader(_Augmented(), 8, seed=0, num_replicas=64, rank=63).sampler
    assert len(list(sampler)) == len(sampler) == 1
    # Mid-epoch, another number of processes would shift every rank's share: refused.
    two = lk.data.ResumableLoader(_Augmented(), 8, seed=0, num_replicas=2, rank=0)
    two.position = lambda: 1
    one = lk.data.ResumableLoader(_Augmented(), 8, seed=0)
    with pytest.raises(ValueError, match=r"mid-epoch on 1 process\(es\) a run that was on 2"):
        one.resume(two.resume_state())
    two.position = lambda: len(two)  # from an epoch's end it is fine
    one.resume(two.resume_state())


def test_overfit_batches_works_with_the_resumable_loader(tmp_path):
    # Lightning rebuilds the training loader with a SequentialSampler for overfit_batches.
    x = torch.randn(40, 4)
    ds = torch.utils.data.TensorDataset(x, torch.randint(0, 3, (40,)))
    dm = lk.data.DataModule(ds, batch_size=8, val_split=0.2, train_transform=lambda v: v)
    task = lk.ClassificationModule(lk.models.MLP(4, 3), 3)
    trainer = lk.make_trainer(max_epochs=2, overfit_batches=2, default_root_dir=tmp_path,
                              logger=False, enable_progress_bar=False)  # fmt: skip
    trainer.fit(task, datamodule=dm)
    assert trainer.global_step == 4
