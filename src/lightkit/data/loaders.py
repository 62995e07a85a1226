"""InMemoryLoader: batches cut from in-memory tensors with a shuffled index, no per-sample collate."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Subset,
    TensorDataset,
    get_worker_info,
)

from lightkit._validation import check_bool, check_instance, check_int, check_seed, check_sequence


class InMemoryLoader:
    """Yield ``(x[idx], y[idx], ...)`` batches by indexing whole tensors, like a DataLoader would.

    ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)`` calls ``__getitem__`` once per
    sample and stacks the results; for data already in memory that costs far more than the model
    for small nets. This loader draws the same permutation (through ``RandomSampler`` with the
    same generator, so for a given seed it yields exactly the batches that DataLoader, with
    ``num_workers=0``, would) and
    takes each batch with one ``index_select`` per tensor. With ``device="cuda"`` the tensors live
    on the GPU and batches never cross the bus.

    It is an iterable with ``__len__``, which Lightning accepts wherever a DataLoader goes. It does
    not shard data across processes: :class:`~lightkit.data.DataModule` uses a regular DataLoader
    (with Lightning's distributed sampler) when training on several devices.

    Args:
        tensors: Tensors with the same first dimension (inputs, targets, ...).
        batch_size: Samples per batch.
        shuffle: Draw a new permutation each epoch.
        drop_last: Drop the last incomplete batch.
        seed: Seed of the shuffling generator, in ``[0, 2**32 - 1]`` (``None``: the global torch
            RNG).
        device: Where the tensors and batches live (``None``: leave them where they are, which
            must then be one device for all of them).
        weights: Sample each epoch's ``len`` samples with replacement, sample ``i`` with
            probability proportional to ``weights[i]`` (``WeightedRandomSampler``'s draw, from
            the loader's generator), instead of a permutation. Needs ``shuffle=True``.

    Example:
        >>> x, y = my_dataset.tensors
        >>> loader = lk.data.InMemoryLoader((x, y), batch_size=32, shuffle=True, seed=0)
        >>> [tuple(xb.shape) for xb, yb in loader]
        [(32, 8), (32, 8), (32, 8)]
        >>> trainer = lk.make_trainer(
        ...     max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
        ... )
        >>> trainer.fit(module, train_dataloaders=loader)
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device: str | torch.device | None = None,
        weights: torch.Tensor | None = None,
    ) -> None:
        owner = "InMemoryLoader"
        if isinstance(tensors, torch.Tensor):
            raise TypeError(
                f"{owner}: tensors must be a sequence of tensors such as (x, y), got one Tensor "
                f"of shape {tuple(tensors.shape)}; pass (x,) for inputs alone"
            )
        if isinstance(tensors, Iterator):
            tensors = tuple(tensors)
        tensors = check_sequence(owner, "tensors", tensors, min_length=1)
        for i, t in enumerate(tensors):
            check_instance(owner, f"tensors[{i}]", t, torch.Tensor, "a torch.Tensor")
        n = tensors[0].shape[0] if tensors[0].ndim else 0
        if any(t.ndim == 0 or t.shape[0] != n for t in tensors):
            raise ValueError(
                "InMemoryLoader: all tensors must have the same first dimension, got shapes "
                + ", ".join(str(tuple(t.shape)) for t in tensors)
            )
        devices = {t.device for t in tensors}
        if device is None and len(devices) > 1:
            raise ValueError(
                f"{owner}: tensors are on different devices ("
                + ", ".join(f"tensors[{i}] on {t.device}" for i, t in enumerate(tensors))
                + "); move them to one device, or pass device= to move them all"
            )
        batch_size = check_int(owner, "batch_size", batch_size, minimum=1)
        check_bool(owner, "shuffle", shuffle)
        check_bool(owner, "drop_last", drop_last)
        if seed is not None:
            seed = check_seed(owner, "seed", seed)
        self.device = check_device(owner, "device", device)
        self.tensors = tuple(t.to(self.device) if self.device else t for t in tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self._num_samples = n
        if weights is not None:
            check_instance(owner, "weights", weights, torch.Tensor, "a tensor of sample weights")
            if not shuffle or weights.shape != (n,) or not bool(torch.isfinite(weights).all()):
                raise ValueError(
                    f"{owner}: weights must be {n} finite sample weights (one per sample) and "
                    f"need shuffle=True, got shape {tuple(weights.shape)}"
                )
        self.weights = weights.double() if weights is not None else None
        # Resumable state: the generator as it was when the current epoch began, and how many of
        # its batches were handed out (or, through `position`, how many the trainer processed).
        self.position: Callable[[], int] | None = None
        self._epoch_start_state: torch.Tensor | None = None
        self._yielded = 0
        self._skip = 0
        # After a mid-epoch resume with another batch size: (old batches, new batches) consumed,
        # handed to `on_rebatch` when the resumed epoch starts iterating.
        self.rebatched: tuple[int, int] | None = None
        self.on_rebatch: Callable[[int, int], None] | None = None

    @classmethod
    def from_dataset(cls, dataset: TensorDataset | Subset, **kwargs: object) -> InMemoryLoader:
        """Build from a ``TensorDataset`` or a (nested) ``Subset`` of one."""
        tensors = in_memory_tensors(dataset)
        if tensors is None:
            raise TypeError(
                f"InMemoryLoader.from_dataset: expected a TensorDataset or a Subset of one, got "
                f"{type(dataset).__name__}"
            )
        return cls(tensors, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        if self.drop_last:
            return self._num_samples // self.batch_size
        return -(-self._num_samples // self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: Lightning stores it in checkpoints and restores it on resume,
        so a run resumed mid-epoch continues with exactly the batches it would have seen."""
        if self.generator is None and self.shuffle:
            return {}  # shuffling with the global RNG: nothing of ours to restore
        consumed = self.position() if self.position is not None else self._yielded
        state = self._epoch_start_state
        if state is None:
            state = self.generator.get_state() if self.generator is not None else torch.empty(0)
        return {
            "epoch_start_generator": state,
            "consumed": int(consumed),
            "length": len(self),
            "batch_size": self.batch_size,
            "num_samples": self._num_samples,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`, also with another batch size (same data).

        With another batch size (as after ``lk.fit``'s out-of-memory retry) a finished epoch
        resumes exactly, and an unfinished one continues with the first sample not yet seen;
        ``rebatched`` then holds ``(batches consumed at the old size, at the new size)``, passed to
        ``on_rebatch`` when iteration starts, so whoever counts batches (the DataModule updates
        the trainer's count, after Lightning restored it) can follow.
        """
        check_instance(_RESUME, "state", state, Mapping, "the dict that state_dict() returned")
        if not state:
            return
        _check_state(state, needs_generator=self.generator is not None)
        num_samples = state.get("num_samples")
        old_batch = state.get("batch_size", self.batch_size)
        same_shape = state.get("length") == len(self) and old_batch == self.batch_size
        if num_samples != self._num_samples and not (num_samples is None and same_shape):
            raise ValueError(
                f"InMemoryLoader: cannot resume: the checkpoint's loader had "
                f"{num_samples if num_samples is not None else state.get('length')} "
                f"{'samples' if num_samples is not None else 'batches per epoch'}, this one has "
                f"{self._num_samples if num_samples is not None else len(self)} (different data)"
            )
        if self.generator is not None:
            self.generator.set_state(state["epoch_start_generator"])
        consumed = int(state["consumed"])
        if consumed >= int(state["length"]):
            # The epoch was complete: replay its draws, so the next epoch starts where it would.
            self._draw_order()
            self._skip = 0
        else:
            self._skip = consumed * old_batch // self.batch_size
            if self._skip != consumed:
                self.rebatched = (consumed, self._skip)

    def _draw_order(self) -> torch.Tensor:
        n = self._num_samples
        if not self.shuffle:
            return torch.arange(n)
        # The random draws of DataLoader(shuffle=True, generator=...) with num_workers=0, in the
        # same order, so a seed gives the same batches: the loader's base seed for workers, then
        # RandomSampler's permutation.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        if self.weights is not None:  # WeightedRandomSampler's draw
            return torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return torch.randperm(n, generator=generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self._num_samples
        if self.generator is not None:
            self._epoch_start_state = self.generator.get_state()
        order = self._draw_order()
        skip, self._skip = self._skip, 0
        if self.rebatched is not None and self.on_rebatch is not None:
            self.on_rebatch(*self.rebatched)
        self.rebatched = None
        self._yielded = skip
        if self.device is not None:
            order = order.to(self.device)
        stop = len(self) * self.batch_size if self.drop_last else n
        for start in range(skip * self.batch_size, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            self._yielded += 1
            yield tuple(t.index_select(0, idx) for t in self.tensors)
        if self.shuffle and self.generator is not None and self.weights is None:
            # RandomSampler draws one more (empty) permutation when it is exhausted (Lightning
            # never exhausts a sized loader: it stops after the last batch).
            torch.randperm(n, generator=self.generator)


_RESUME = "InMemoryLoader.load_state_dict"

# Spreads the per-sample seeds of one epoch over the 63-bit range (the golden-ratio constant).
_SEED_STEP = 0x9E3779B97F4A7C15


class SampleSeeded(Dataset):
    """A dataset whose item ``(index, seed)`` is ``dataset[index]`` drawn under ``seed``.

    torch's, numpy's and Python's RNGs are seeded with the sample's own seed before it is
    loaded, so a random augmentation depends on the sample's place in the epoch, never on which
    worker loads it or what that worker loaded before: a run resumed mid-epoch, with another
    number of workers, or on other ranks, augments every sample as the uninterrupted run did.
    In the main process (``num_workers=0``) torch's CPU RNG is put back afterwards, so loading
    never shifts the training step's randomness (dropout, MixUp); numpy's and Python's global
    RNGs are left as the last sample seeded them (saving numpy's costs 170 µs a sample). About
    20 µs a sample in all, in the worker processes when there are workers.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: Any) -> Any:
        if not isinstance(item, tuple):
            return self.dataset[item]
        index, seed = item
        if get_worker_info() is not None:  # a worker process: its RNGs are its own
            _seed_all(seed)
            return self.dataset[index]
        generator = torch.default_generator
        state = generator.get_state()
        try:
            _seed_all(seed)
            return self.dataset[index]
        finally:
            generator.set_state(state)


def _seed_all(seed: int) -> None:
    # The CPU generator only: torch.manual_seed also seeds every CUDA device, at 100x the cost,
    # and transforms in a loader run on the CPU.
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class EpochSampler(DistributedSampler):
    """The training order of a :class:`ResumableLoader`: one epoch's draw from a seeded generator
    (``RandomSampler``'s, or ``WeightedRandomSampler``'s with ``weights``), each position with a
    seed of its own, this rank's share of it (``rank::num_replicas``, padded as
    ``DistributedSampler`` pads), from ``skip`` samples on.

    A ``DistributedSampler`` so that Lightning does not replace it under DDP: it shards itself.
    """

    def __init__(
        self,
        num_samples: int,
        generator: torch.Generator,
        weights: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler.__init__ is not called: it asks torch.distributed for the world,
        # which a loader built before the processes start does not have.
        self.num_samples_total = num_samples
        self.generator = generator
        self.weights = weights
        self.num_replicas, self.rank = num_replicas, rank
        self.num_samples = math.ceil(num_samples / num_replicas)  # this rank's
        self.total_size = self.num_samples * num_replicas
        self.shuffle, self.drop_last, self.seed, self.epoch = True, False, 0, 0
        self.skip = 0
        self.epoch_start_state: torch.Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # the order follows the generator, which checkpoints carry

    def __len__(self) -> int:
        return self.num_samples

    def draw(self) -> tuple[int, torch.Tensor]:
        """The epoch's base seed and order: the draws of ``DataLoader(shuffle=True,
        generator=...)`` (or of its ``WeightedRandomSampler``), as ``InMemoryLoader`` makes them."""
        base = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())
        n = self.num_samples_total
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        else:
            order = torch.randperm(n, generator=self.generator)
        # One draw per epoch, whether or not the epoch is iterated past its last batch (which
        # Lightning never does, nor does RandomSampler's extra draw then happen), so a replayed
        # epoch leaves the generator exactly where the uninterrupted one did.
        return base, order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        self.epoch_start_state = self.generator.get_state()
        base, order = self.draw()
        if self.total_size > len(order):  # padded with the first samples, as DistributedSampler
            pad = self.total_size - len(order)
            order = torch.cat([order, order.repeat(math.ceil(pad / len(order)))[:pad]])
        positions = range(self.rank, self.total_size, self.num_replicas)
        skip, self.skip = self.skip, 0
        for position in positions[skip:]:
            yield int(order[position]), (base + position * _SEED_STEP) % 2**63


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` that resumes mid-epoch exactly, with workers and under DDP.

    Its :class:`EpochSampler` draws each epoch's order from a seeded generator and gives every
    sample a seed of its own, which :class:`SampleSeeded` applies before loading it; its
    :meth:`resume_state` is the generator at the epoch's start and the batches the trainer
    processed (``position``). A resumed run draws the same order, skips the processed batches
    without loading them, and loads every later sample, with the same augmentation, as the
    uninterrupted run did. lightkit's DataModules use it for training data that is not tensors in
    memory, and save its state in checkpoints (``DataModule.state_dict``): to get the guarantee
    for a dataset of your own, hand it to ``lk.data.DataModule`` (or subclass that). Returned
    from a plain ``LightningDataModule`` its state is not restored in time by Lightning 2.6: a run
    resumed mid-epoch ends its next epoch early.

    Example:
        >>> loader = lk.data.ResumableLoader(my_dataset, batch_size=32, seed=0)
        >>> first = [y for x, y in loader]
        >>> again = [y for x, y in lk.data.ResumableLoader(my_dataset, batch_size=32, seed=0)]
        >>> all(torch.equal(a, b) for a, b in zip(first, again))  # the same seeded order
        True
        >>> sorted(loader.state_dict())  # what a checkpoint keeps to resume mid-epoch
        [...]
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        weights: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        sampler: Any = None,
        **kwargs: Any,
    ) -> None:
        self.order_generator = torch.Generator().manual_seed(seed)
        if isinstance(dataset, SampleSeeded):  # rebuilt by Lightning (overfit_batches)
            dataset = dataset.dataset
        if sampler is None:
            sampler = EpochSampler(len(dataset), self.order_generator, weights, num_replicas, rank)  # type: ignore[arg-type]
        # A generator of its own for the workers' base seed, so that starting an epoch never
        # draws from the global RNG (the samples are seeded one by one anyway).
        super().__init__(
            SampleSeeded(dataset),
            batch_size=batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(seed),
            **kwargs,
        )
        self.position: Callable[[], int] | None = None
        self.rebatched: tuple[int, int] | None = None
        self.on_rebatch: Callable[[int, int], None] | None = None
        self._yielded = 0

    @property
    def epoch_sampler(self) -> EpochSampler:
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            raise TypeError(
                "ResumableLoader: this loader was rebuilt with another sampler "
                f"({type(sampler).__name__}, as Lightning does for overfit_batches); it does "
                "not resume mid-epoch"
            )
        return sampler

    def __iter__(self) -> Any:
        # Lazy: the DataLoader's iterator (and its workers' first indices) is made at the first
        # batch, after any state Lightning restores late (see lightkit._lightning).
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        if self.rebatched is not None and self.on_rebatch is not None:
            self.on_rebatch(*self.rebatched)
        self.rebatched = None
        if not isinstance(self.sampler, EpochSampler):  # rebuilt with another sampler
            yield from super().__iter__()
            return
        self._yielded = self.sampler.skip // self.batch_size  # type: ignore[operator]
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def resume_state(self) -> dict[str, Any]:
        """Where training stands: the order's generator when the epoch began, the batches the
        trainer processed in it (``position``; without one, the batches handed out), the batch
        size and the data size."""
        sampler = self.epoch_sampler
        state = sampler.epoch_start_state
        if state is None:
            state = self.order_generator.get_state()
        return {
            "epoch_start_generator": state,
            "consumed": int(self.position()) if self.position is not None else self._yielded,
            "length": len(self),
            "batch_size": self.batch_size,
            "num_samples": sampler.num_samples_total,
            "num_replicas": sampler.num_replicas,
        }

    def resume(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`resume_state` (read from a checkpoint: checked first)."""
        owner = "ResumableLoader.resume"
        check_instance(owner, "state", state, Mapping, "the dict that resume_state() returned")
        _check_state(state, needs_generator=True)
        sampler = self.epoch_sampler
        if state.get("num_samples") != sampler.num_samples_total:
            raise ValueError(
                f"{owner}: cannot resume: the checkpoint's loader had {state.get('num_samples')} "
                f"samples, this one has {sampler.num_samples_total} (different data)"
            )
        replicas = state.get("num_replicas", 1)
        consumed = int(state["consumed"])
        if consumed < int(state["length"]) and replicas != sampler.num_replicas:
            raise ValueError(
                f"{owner}: cannot resume mid-epoch on {sampler.num_replicas} process(es) a run "
                f"that was on {replicas!r}: each process's share of the epoch would change; "
                "resume on as many processes, or from an end-of-epoch checkpoint"
            )
        self.order_generator.set_state(state["epoch_start_generator"])
        old_batch = int(state.get("batch_size") or self.batch_size)  # type: ignore[arg-type]
        if consumed >= int(state["length"]):
            sampler.draw()  # the epoch was complete: replay its draws
            return
        skip = consumed * old_batch // self.batch_size  # type: ignore[operator]
        sampler.skip = skip * self.batch_size  # type: ignore[operator]
        if skip != consumed:
            self.rebatched = (consumed, skip)

    # Lightning saves and restores loaders with these two in checkpoints; loading twice, as
    # lightkit's DataModule and Lightning both may, is harmless.
    def state_dict(self) -> dict[str, Any]:
        """:meth:`resume_state`, under the name Lightning looks for (empty for a loader that
        Lightning rebuilt with another sampler)."""
        return self.resume_state() if isinstance(self.sampler, EpochSampler) else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """:meth:`resume`, under the name Lightning looks for."""
        if state and isinstance(self.sampler, EpochSampler):
            self.resume(state)


def check_generator_state(owner: str, name: str, state: Any) -> torch.Tensor:
    """A CPU ``torch.Generator`` state: a 1-D uint8 tensor of the size ``get_state()`` returns."""
    check_instance(owner, name, state, torch.Tensor, "a torch.Generator state (uint8 tensor)")
    size = torch.Generator().get_state().numel()
    if state.dtype != torch.uint8 or state.shape != (size,):
        raise ValueError(
            f"{owner}: {name} must be a torch.Generator state (a uint8 tensor of shape ({size},)), "
            f"got a {state.dtype} tensor of shape {tuple(state.shape)}"
        )
    return state


def _check_state(state: Mapping[str, Any], needs_generator: bool) -> None:
    """The fields of a loader state read from a checkpoint (untrusted): counts are non-negative
    integers and the generator state is one, so a crafted file cannot make a resume skip to an
    odd position or fail deep inside torch."""
    for key, minimum, required in (
        ("consumed", 0, True),
        ("length", 0, True),
        ("batch_size", 1, False),
        ("num_samples", 0, False),
        ("num_replicas", 1, False),
    ):
        if required or state.get(key) is not None:
            check_int(_RESUME, f"state[{key!r}]", state.get(key), minimum=minimum)
    if needs_generator:
        check_generator_state(
            _RESUME, "state['epoch_start_generator']", state.get("epoch_start_generator")
        )


def check_device(owner: str, name: str, device: Any) -> torch.device | None:
    """``device`` (a name such as ``"cuda:1"`` or a ``torch.device``) as a ``torch.device``, or
    None; a clear error for a malformed name or a CUDA device on a machine without CUDA."""
    if device is None:
        return None
    check_instance(
        owner, name, device, (str, torch.device), "a device name such as 'cuda', or None"
    )
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{owner}: {name} must be a device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
        ) from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{owner}: {name}={device!r} but CUDA is not available on this machine; pass "
            f"{name}=None to keep the tensors on the CPU"
        )
    return parsed


def in_memory_tensors(dataset: object) -> tuple[torch.Tensor, ...] | None:
    """The tensors behind a TensorDataset or nested Subsets of one (indexed), else None."""
    indices: torch.Tensor | None = None
    while isinstance(dataset, Subset):
        idx = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = idx if indices is None else idx[indices]
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset):
        return None
    if indices is None:
        return tuple(dataset.tensors)
    return tuple(t[indices] for t in dataset.tensors)


__all__ = ["EpochSampler", "InMemoryLoader", "ResumableLoader", "SampleSeeded"]
