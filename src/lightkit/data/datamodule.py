"""DataModule: wraps map-style Datasets with seeded splits, per-split transforms and loader defaults."""

from __future__ import annotations

import numbers
import os
import random
import warnings
from collections.abc import Callable, Mapping, Sequence, Sized
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    WeightedRandomSampler,
    random_split,
)
from torchvision import tv_tensors

from lightkit._lightning import processed_counter, recount_batches
from lightkit._validation import (
    check_bool,
    check_choice,
    check_class_names,
    check_float,
    check_instance,
    check_int,
    check_seed,
    short_repr,
)
from lightkit.data._checks import check_dataset, check_first_sample
from lightkit.data._recorded import NotDescribable, describe_transform
from lightkit.data._splits import split_indices
from lightkit.data.datasets import ImageFileDataset, SegmentationDataset
from lightkit.data.loaders import (
    InMemoryLoader,
    ResumableLoader,
    check_device,
    check_generator_state,
    in_memory_tensors,
)

Transform = Callable[[Any], Any]


class TransformedDataset(Dataset):
    """Applies ``transform`` to the input of each ``(input, target, ...)`` sample of ``dataset``.

    A sample that is not a tuple or list is treated as the input alone. With ``paired`` (set
    automatically for a :class:`~lightkit.data.SegmentationDataset`), samples are
    ``(image, mask)`` pairs and the transform is called as ``transform(image, mask)`` with a
    ``tv_tensors.Image`` and a ``tv_tensors.Mask``, so geometric transforms move both alike.

    Example:
        >>> doubled = lk.data.TransformedDataset(my_dataset, lambda x: 2 * x)
        >>> x, y = doubled[0]
        >>> torch.equal(x, 2 * my_dataset[0][0]), y == my_dataset[0][1]  # the target untouched
        (True, tensor(True))
    """

    def __init__(self, dataset: Dataset, transform: Transform, paired: bool = False) -> None:
        check_dataset("TransformedDataset", "dataset", dataset, scan=False)
        if not callable(transform):
            raise TypeError(
                f"TransformedDataset: transform must be callable, got {short_repr(transform)} "
                f"({type(transform).__name__})"
            )
        check_bool("TransformedDataset", "paired", paired)
        self.dataset = dataset
        self.transform = transform
        self.paired = paired

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        if self.paired:
            image, mask = self.transform(tv_tensors.Image(sample[0]), tv_tensors.Mask(sample[1]))
            return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
        if isinstance(sample, (tuple, list)):
            return (self.transform(sample[0]), *sample[1:])
        return self.transform(sample)


class DataModule(L.LightningDataModule):
    """A LightningDataModule around your own map-style ``Dataset`` objects.

    ``setup()`` splits ``train`` into train and validation (seeded) when no ``val`` is given, and
    wraps each split with its transform: ``train_transform`` for training only, ``eval_transform``
    for validation, test and predict, so a training augmentation never leaks into evaluation.
    Loaders shuffle only the training split (seeded), pin memory when CUDA is available and keep
    workers alive between epochs; workers are seeded, so augmentation is reproducible under a
    seed. Datasets that are tensors in memory (a ``TensorDataset``, or a split of one) with no
    transform are served by :class:`~lightkit.data.InMemoryLoader`, which yields exactly the
    batches a DataLoader would, many times faster.

    Every argument is checked when the DataModule is built (a list of samples sample by sample);
    a dataset's first sample is checked in ``setup()``, so a dataset of numbers, strings or
    ``None`` targets fails there with its name and index, not inside a DataLoader worker.

    Args:
        train: The training dataset (samples ``(input, target)``).
        val: A validation dataset; when None, ``val_split`` of ``train`` is held out.
        test: An optional test dataset.
        predict: An optional dataset for ``trainer.predict``.
        val_split: Fraction of ``train`` held out for validation when ``val`` is None, in
            ``[0, 1)``; 0 disables validation.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes, or ``"auto"``: none for in-memory tensors
            without a transform, else one per CPU core this process may use minus one (at most 8).
            An explicit count may be 0 to 1024.
        train_transform: Applied to each training input.
        eval_transform: Applied to each validation, test and predict input.
        seed: Seed of the train/val split and of the training shuffle order, an integer in
            ``[0, 2**32 - 1]`` (the range Lightning's ``seed_everything`` takes).
        class_names: The name of each class (label ``i`` is ``class_names[i]``), or None.
            Recorded in checkpoints: ``lk.Predictor`` then returns names
            (``predict_labels``, ``class_names``), and so does ``lightkit serve``.
        sampler: ``"balanced"`` for imbalanced classes: each training epoch draws as many
            samples as the split holds, with replacement, each with probability proportional to
            1 / its class's count (``WeightedRandomSampler``), so every class is seen about
            equally often. Seeded from ``seed`` and resumed like the shuffle (under DDP,
            Lightning shards it with its ``DistributedSamplerWrapper``); the in-memory fast path
            draws the same way. Needs one integer label per sample. None: a plain shuffle.

    Attributes:
        split_indices: For data modules that cut the data you gave into new datasets
            (``TensorDataModule``, ``ImageFolderDataModule``, the built-in sets), after
            ``setup()``: per split, the row (or file, in sorted order) of your data behind each
            sample, ``{"train": [...], "val": [...], "test": [...]}``; empty otherwise (a
            ``val_split`` of your ``train`` dataset is a ``Subset``, which records its own
            indices). ``lk.interpret`` reports samples by these indices.

    Example:
        >>> dm = lk.data.DataModule(my_dataset, val_split=0.25, batch_size=32)  # 96 samples
        >>> dm.setup("fit")  # the trainer calls it; here to look at a batch
        >>> len(dm.train_dataloader()), len(dm.val_dataloader())
        (3, 1)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, y.shape
        (torch.Size([32, 8]), torch.Size([32]))
    """

    class_names: tuple[str, ...] | None = None

    def __init__(
        self,
        train: Dataset | None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        predict: Dataset | None = None,
        val_split: float = 0.1,
        batch_size: int = 32,
        num_workers: int | str = "auto",
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        sampler: str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if sampler is not None:
            check_choice(name, "sampler", sampler, ("balanced",))
        self.sampler = sampler
        if class_names is not None or type(self).class_names is None:  # a subclass may name them
            self.class_names = check_class_names(name, "class_names", class_names)
        batch_size = check_int(name, "batch_size", batch_size, minimum=1)
        check_float(name, "val_split", val_split, 0.0, 1.0, max_inclusive=False)
        _check_num_workers(name, num_workers)
        for what, fn in (("train_transform", train_transform), ("eval_transform", eval_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(
                    f"{name}: {what} must be callable or None, got {short_repr(fn)} "
                    f"({type(fn).__name__})"
                )
        seed = check_seed(name, "seed", seed)
        for what, ds in (("train", train), ("val", val), ("test", test), ("predict", predict)):
            check_dataset(name, what, ds)
        self.train = train
        self.val = val
        self.test = test
        self.predict = predict
        self.val_split = float(val_split)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.seed = seed
        self.device: str | None = None  # where the in-memory fast path keeps its tensors
        self._train_loader: DataLoader | InMemoryLoader | None = None
        self._pending_loader_state: dict[str, Any] | None = None
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None
        # Data modules that split the data you gave into new datasets record, per split, the
        # row (or file) of your data behind each of its samples: ``lk.interpret`` names them.
        self.split_indices: dict[str, list[int]] = {}
        self._inference: Any = _UNKNOWN  # inference_spec(), worked out once

    def setup(self, stage: str | None = None) -> None:
        """Split and wrap the datasets (idempotent; called by the Trainer on every process)."""
        if self.train_dataset is not None:
            return
        train = self.train
        if train is None:
            raise ValueError(f"{type(self).__name__}: no train dataset was given")
        _check_not_empty(type(self).__name__, "train", train)
        val = self.val
        if val is None and self.val_split > 0:
            n_val = round(len(train) * self.val_split)  # type: ignore[arg-type]
            n_train = len(train) - n_val  # type: ignore[arg-type]
            if n_val < 1 or n_train < 1:
                raise ValueError(
                    f"{type(self).__name__}: val_split={self.val_split} of {len(train)} training "  # type: ignore[arg-type]
                    f"samples leaves {n_train} for training and {n_val} for validation; both "
                    "need at least one sample"
                )
            generator = torch.Generator().manual_seed(self.seed)
            train, val = random_split(train, [n_train, n_val], generator=generator)
        for what, ds in (("val", val), ("test", self.test), ("predict", self.predict)):
            if ds is not None:
                _check_not_empty(type(self).__name__, what, ds)
        for what, ds in (
            ("train", self.train),
            ("val", self.val),
            ("test", self.test),
            ("predict", self.predict),
        ):
            check_first_sample(type(self).__name__, what, ds)
        self.train_dataset = _wrap(train, self.train_transform)
        self.val_dataset = _wrap(val, self.eval_transform)
        self.test_dataset = _wrap(self.test, self.eval_transform)
        self.predict_dataset = _wrap(self.predict, self.eval_transform)

    def inference_spec(self) -> dict[str, Any] | None:
        """How to turn an image file into a model input, as plain data (or None if unknown).

        Checkpoints record it, so that ``lk.Predictor`` and ``lightkit serve`` can predict from
        image files: the eval transform (``eval_transform``, else the ``transform`` attribute of
        a torchvision-style validation, test or train dataset) when it is an
        :func:`~lightkit.data.transforms.eval_preset` or a pipeline of deterministic torchvision
        steps (``Resize``, ``CenterCrop``, ``ToImage``/``ToTensor``, ``ToDtype``, ``Normalize``,
        ``Grayscale``, ``Pad``, v2 or v1), and the PIL mode of the training images. For image
        data whose ``eval_transform`` cannot be recorded, a warning says why (once).
        """
        if getattr(self, "_inference", _UNKNOWN) is _UNKNOWN:
            self._inference = self._describe_eval_transform()
        return self._inference

    def _describe_eval_transform(self) -> dict[str, Any] | None:
        transform = self.eval_transform
        given = transform is not None
        if transform is None:
            transform = next(
                (t for ds in (self.val, self.test, self.train) if (t := _own_transform(ds))),
                None,
            )
        if transform is None:
            return None
        mode = _raw_image_mode(self.train) if given else None
        try:
            spec = describe_transform(transform, mode or "RGB")
        except NotDescribable as err:
            if given and mode is not None:
                warnings.warn(
                    f"{type(self).__name__}: the eval_transform cannot be recorded in checkpoints: "
                    f"{err}. lk.Predictor and lightkit serve will need the transform given to "
                    "them (Predictor(..., transform=...)) to predict from image files",
                    stacklevel=3,
                )
            return None
        return {"transform": spec, "image_mode": mode or "RGB"}

    def train_targets(self) -> torch.Tensor:
        """The targets of the training split, in order, without running any transform (tensors
        and ``ImageFileDataset`` labels are read directly; other datasets are indexed once).
        Used by ``class_weights="balanced"`` and ``pos_weight="balanced"``."""
        if self.train_dataset is None:
            self.setup("fit")
        cached = getattr(self, "_train_targets", None)
        if cached is not None and cached[0] is self.train_dataset:
            return cached[1]
        targets = _targets(self.train_dataset)
        if targets is None:
            raise ValueError(
                f"{type(self).__name__}: the training samples have no targets to count "
                "(expected (input, target) pairs)"
            )
        self._train_targets = (self.train_dataset, targets)
        return targets

    # --- loaders ---------------------------------------------------------------------------------

    def train_dataloader(self) -> ResumableLoader | InMemoryLoader:
        loader = self._loader(
            self.train_dataset, "train", shuffle=True, weights=self._sample_weights()
        )
        assert isinstance(loader, (InMemoryLoader, ResumableLoader))  # training shuffles
        pending, self._pending_loader_state = self._pending_loader_state, None
        trainer = self.trainer
        if trainer is not None:
            # Checkpoints record how many batches the trainer processed, not how many were
            # prefetched, so a mid-epoch resume restarts at exactly the right batch.
            loader.position = processed_counter(trainer)
        key = "in_memory" if isinstance(loader, InMemoryLoader) else "resumable"
        if pending and key in pending:
            if isinstance(loader, InMemoryLoader):
                loader.load_state_dict(pending[key])
            else:
                loader.resume(pending[key])
            if trainer is not None:
                # Applied when the epoch starts iterating: Lightning restores its own batch
                # counts after asking for this loader when the scheduler needs the step count.
                loader.on_rebatch = lambda old, new: recount_batches(trainer, old, new)
        elif pending and pending.get("generator") is not None and key == "resumable":
            # A checkpoint from before the resumable loader: the shuffle generator as it was
            # when the checkpoint was written.
            loader.order_generator.set_state(pending["generator"])  # type: ignore[union-attr]
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: where the training data stands, for bit-identical resumes.

        Both training loaders (the in-memory one, and :class:`~lightkit.data.ResumableLoader`
        for other datasets) record the shuffle generator as the epoch began and the batches
        the trainer processed in it, so a run resumed mid-epoch continues with exactly the
        samples (and, for the DataLoader, the augmentations) it would have seen.
        """
        loader = self._train_loader
        if isinstance(loader, InMemoryLoader):
            state = loader.state_dict()
            return {"train_loader": {"in_memory": state}} if state else {}
        if isinstance(loader, ResumableLoader):
            return {"train_loader": {"resumable": loader.resume_state()}}
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied when the train loader is built, which Lightning does after restoring this
        # (and before its first use, even when the scheduler asks for the step count early).
        # The state comes from a checkpoint file: its layout is checked before anything uses it.
        owner = f"{type(self).__name__}.load_state_dict"
        check_instance(owner, "state_dict", state_dict, Mapping, "the dict state_dict() returned")
        pending = state_dict.get("train_loader")
        if pending is not None:
            name = "state_dict['train_loader']"
            check_instance(owner, name, pending, Mapping, "a dict")
            if pending.get("generator") is not None:
                check_generator_state(owner, f"{name}['generator']", pending["generator"])
            if pending.get("resumable") is not None:
                check_instance(
                    owner, f"{name}['resumable']", pending["resumable"], Mapping, "a dict"
                )
            if pending.get("in_memory") is not None:
                check_instance(
                    owner, f"{name}['in_memory']", pending["in_memory"], Mapping, "a dict"
                )
        self._pending_loader_state = pending

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None and self.train_dataset is not None:
            return []  # no validation: Lightning skips the loop
        return self._loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test")

    def predict_dataloader(self) -> DataLoader:
        """The ``predict`` dataset's loader; without one, the test split's (else the validation
        split's), with a warning naming it: its labels are not used."""
        dataset = self.predict_dataset
        if dataset is None and self.train_dataset is not None:
            split, dataset = next(
                (
                    (s, d)
                    for s, d in (("test", self.test_dataset), ("val", self.val_dataset))
                    if d is not None
                ),
                ("predict", None),
            )
            if dataset is None:
                raise ValueError(
                    f"{type(self).__name__}: nothing to predict: no predict dataset was given "
                    "(pass predict=<a Dataset of inputs>), and there is no test or validation "
                    "split to predict instead"
                )
            warnings.warn(
                f"{type(self).__name__}: no predict dataset was given; predicting the {split} "
                f"split ({len(dataset):,} samples; its labels are not used)",  # type: ignore[arg-type]
                stacklevel=2,
            )
        return self._loader(dataset, "predict")

    def _sample_weights(self) -> torch.Tensor | None:
        """``sampler="balanced"``: each training sample weighted by 1 / its class's count."""
        if getattr(self, "sampler", None) != "balanced":
            return None
        targets = self.train_targets()
        if targets.ndim != 1 or targets.is_floating_point():
            raise ValueError(
                f"{type(self).__name__}: sampler='balanced' needs one integer class label per "
                f"training sample, got targets of shape {tuple(targets.shape)} "
                f"({targets.dtype}); use class weights in the task instead"
            )
        labels = targets.long()
        if len(labels) and int(labels.min()) < 0:
            raise ValueError(
                f"{type(self).__name__}: sampler='balanced' found label {int(labels.min())} in "
                "the training split; class labels are integers from 0"
            )
        counts = torch.bincount(labels)
        return 1.0 / counts[labels].double()

    def _loader(
        self,
        dataset: Dataset | None,
        split: str,
        shuffle: bool = False,
        weights: torch.Tensor | None = None,
    ) -> DataLoader | InMemoryLoader:
        if dataset is None:
            if self.train_dataset is None:
                raise RuntimeError(
                    f"{type(self).__name__}: call setup() (the Trainer does) before asking for loaders"
                )
            raise ValueError(f"{type(self).__name__}: no {split} dataset was given")
        seed = self.seed + _SPLIT_SEED_OFFSET[split]
        tensors = in_memory_tensors(dataset)
        if tensors is not None and not self._distributed():
            # Fast path: whole-tensor indexing; the same batches as the DataLoader below.
            return InMemoryLoader(
                tensors,
                self.batch_size,
                shuffle=shuffle,
                seed=seed,
                device=self.device,
                weights=weights,
            )
        workers = self._resolve_workers(dataset)
        if shuffle:
            # Training: resumable mid-epoch with workers and under DDP (sharded per rank).
            trainer = self.trainer
            distributed = trainer is not None and trainer.world_size > 1
            return ResumableLoader(
                dataset,
                self.batch_size,
                seed,
                weights=weights,
                num_replicas=trainer.world_size if distributed else 1,
                rank=trainer.global_rank if distributed else 0,
                num_workers=workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=workers > 0,
                worker_init_fn=_seed_worker if workers > 0 else None,
            )
        generator = torch.Generator().manual_seed(seed)
        # Balanced: drawn with replacement from the loader's own generator, so checkpoints (which
        # save it) resume it; under DDP Lightning shards it (DistributedSamplerWrapper).
        sampler = (
            WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)
            if weights is not None
            else None
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            generator=generator,
            worker_init_fn=_seed_worker if workers > 0 else None,
        )

    def _distributed(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.world_size > 1

    def _resolve_workers(self, dataset: Dataset) -> int:
        if self.num_workers != "auto":
            return int(self.num_workers)
        if in_memory_tensors(dataset) is not None:
            return 0
        return auto_num_workers()


_UNKNOWN = object()


def _targets(dataset: Any) -> torch.Tensor | None:
    """The targets of ``dataset``'s samples (see ``DataModule.train_targets``), or None."""
    if isinstance(dataset, TransformedDataset):
        return _targets(dataset.dataset)  # transforms change inputs, not targets
    if isinstance(dataset, Subset):
        inner = _targets(dataset.dataset)
        return (
            inner[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
            if inner is not None
            else None
        )
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    labels = getattr(dataset, "labels", None)
    if isinstance(dataset, ImageFileDataset) and labels is not None:
        return torch.tensor(labels)
    known = getattr(dataset, "targets", None)  # torchvision datasets (ImageFolder, CIFAR, MNIST)
    if isinstance(known, (list, torch.Tensor)) and len(known) == len(dataset):
        return torch.as_tensor(known)
    targets = []
    for i in range(len(dataset)):  # each sample read once, only its target kept
        item = dataset[i]
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            return None
        targets.append(torch.as_tensor(item[1]))
    return torch.stack(targets) if targets else None


def _own_transform(dataset: Any) -> Any:
    """A torchvision-style dataset's ``transform`` (looking through ``Subset``), else None."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    return transform if callable(transform) else None


def _raw_image_mode(dataset: Any) -> str | None:
    """The PIL mode of the first training input, when the inputs are PIL images."""
    if dataset is None:
        return None
    try:
        item = dataset[0]
    except Exception:  # a dataset that cannot be read here says so in training, not now
        return None
    x = item[0] if isinstance(item, (tuple, list)) else item
    return x.mode if isinstance(x, Image.Image) and x.mode in ("RGB", "L") else None


def _wrap(dataset: Dataset | None, transform: Transform | None) -> Dataset | None:
    if dataset is None or transform is None:
        return dataset
    inner = dataset
    while isinstance(inner, Subset):
        inner = inner.dataset
    return TransformedDataset(dataset, transform, paired=isinstance(inner, SegmentationDataset))


# Each split's loader gets its own generator, so shuffling train never shifts another split.
_SPLIT_SEED_OFFSET = {"train": 0, "val": 1, "test": 2, "predict": 3}


def auto_num_workers() -> int:
    """DataLoader workers for ``num_workers="auto"``: one per CPU this process may use, minus
    one for the training loop, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(8, max(0, cpus - 1))


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in each worker from torch's per-worker seed (itself derived from the
    loader's seeded generator), so augmentations that use them are reproducible too."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _check_not_empty(owner: str, what: str, dataset: Any) -> None:
    if not isinstance(dataset, Sized):
        raise TypeError(
            f"{owner}: {what} must be a map-style Dataset with __len__ and __getitem__, "
            f"got {type(dataset).__name__}"
        )
    if len(dataset) == 0:
        raise ValueError(f"{owner}: the {what} dataset is empty (0 samples)")


#: More DataLoader workers than this is a typo or a hostile config, not a machine.
MAX_NUM_WORKERS = 1024


def _check_num_workers(owner: str, num_workers: Any) -> None:
    expected = f"'auto' or an integer in [0, {MAX_NUM_WORKERS}]"
    if isinstance(num_workers, bool) or not isinstance(num_workers, (numbers.Integral, str)):
        raise TypeError(
            f"{owner}: num_workers must be {expected}, got {short_repr(num_workers)} "
            f"({type(num_workers).__name__})"
        )
    if isinstance(num_workers, str):
        ok = num_workers == "auto"
    else:
        ok = 0 <= num_workers <= MAX_NUM_WORKERS
    if not ok:
        raise ValueError(f"{owner}: num_workers must be {expected}, got {num_workers!r}")


class TensorDataModule(DataModule):
    """A DataModule for arrays that fit in memory: ``x`` (and ``y``), split and served fast.

    Batches come from :class:`~lightkit.data.InMemoryLoader` (whole-tensor indexing, optionally
    resident on the GPU with ``device="cuda"``), which on a 2-core CPU delivered 23.7× the
    samples/s of ``DataLoader(TensorDataset(x, y))`` on tabular rows (``benchmarks/RESULTS.md``). Inputs and targets are
    checked for NaN and Inf before training starts; the error names the first bad sample.

    Args:
        x: Inputs, a tensor or numpy array with samples along the first dimension.
        y: Targets with the same first dimension, or None.
        val_split: Fraction held out for validation.
        test_split: Fraction held out for testing.
        batch_size: Samples per batch.
        seed: Seed of the splits and of the training shuffle order.
        stratify: Keep class proportions in every split (``y`` must hold integer labels).
        device: Keep the tensors on this device (``"cuda"``); None leaves them on the CPU and
            Lightning moves each batch.
        class_names: The name of each class, recorded in checkpoints (see ``DataModule``).

    Example:
        >>> x, y = my_dataset.tensors  # 96 samples: float inputs, integer labels
        >>> dm = lk.data.TensorDataModule(x, y, val_split=0.25, batch_size=32, stratify=True)
        >>> dm.setup("fit")
        >>> len(dm.train_dataloader()), len(dm.val_dataloader())
        (3, 1)
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        val_split: float = 0.1,
        test_split: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        stratify: bool = False,
        device: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        name = type(self).__name__
        tensors = [_as_tensor(name, "x", x)] + ([_as_tensor(name, "y", y)] if y is not None else [])
        if len(tensors) == 2 and len(tensors[0]) != len(tensors[1]):
            raise ValueError(
                f"{name}: x has {len(tensors[0])} samples but y has {len(tensors[1])}; "
                "expected the same number"
            )
        for arg, t in zip(("x", "y"), tensors, strict=False):
            _check_finite(name, arg, t)
        check_float(name, "val_split", val_split, 0.0, 1.0, max_inclusive=False)
        check_float(name, "test_split", test_split, 0.0, 1.0, max_inclusive=False)
        if val_split + test_split >= 1.0:
            raise ValueError(
                f"{name}: val_split={val_split!r} and test_split={test_split!r} leave nothing for "
                "training; expected val_split + test_split < 1"
            )
        check_bool(name, "stratify", stratify)
        if stratify and (y is None or tensors[1].is_floating_point() or tensors[1].ndim != 1):
            raise ValueError(f"{name}: stratify=True needs y to be a 1-D tensor of integer labels")
        check_device(name, "device", device)
        super().__init__(
            None,
            val_split=val_split,
            batch_size=batch_size,
            seed=seed,
            num_workers=0,
            class_names=class_names,
        )
        self.tensors = tuple(tensors)
        self.test_split = float(test_split)
        self.stratify = stratify
        self.device = device

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        tensors = self.tensors
        labels = tensors[1].tolist() if self.stratify else None
        test_idx, val_idx, train_idx = split_indices(
            len(tensors[0]), [self.test_split, self.val_split], self.seed, labels
        )
        for what, idx in (
            ("training", train_idx),
            ("validation", val_idx if self.val_split else [0]),
        ):
            if not idx:
                raise ValueError(
                    f"{type(self).__name__}: the split leaves no {what} samples "
                    f"(val_split={self.val_split}, test_split={self.test_split}, n={len(tensors[0])})"
                )

        def subset(idx: list[int]) -> TensorDataset:
            index = torch.tensor(idx, dtype=torch.long)
            return TensorDataset(*(t[index] for t in tensors))

        self.train = subset(train_idx)
        self.val = subset(val_idx) if val_idx else None
        self.test = subset(test_idx) if test_idx else None
        self.split_indices = {"train": train_idx, "val": val_idx, "test": test_idx}
        super().setup(stage)  # the base class wraps the splits; val is set, so it splits nothing


def _as_tensor(owner: str, name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        try:
            tensor = torch.from_numpy(value)
        except TypeError as err:  # object, string or other arrays torch has no dtype for
            raise TypeError(
                f"{owner}: {name} must hold numbers, got a numpy array of dtype {value.dtype} "
                f"(shape {value.shape}); convert it, for example with {name}.astype(np.float32)"
            ) from err
    else:
        raise TypeError(
            f"{owner}: {name} must be a torch.Tensor or numpy array, got {short_repr(value)} "
            f"({type(value).__name__})"
        )
    if tensor.ndim == 0 or len(tensor) == 0:
        raise ValueError(
            f"{owner}: {name} is empty (shape {tuple(tensor.shape)}); expected samples along dim 0"
        )
    if tensor.dtype == torch.float64:
        tensor = tensor.float()  # models train in float32; float64 inputs would fail in the net
    return tensor


def _check_finite(owner: str, name: str, tensor: torch.Tensor) -> None:
    if not tensor.is_floating_point():
        return
    bad = ~torch.isfinite(tensor.reshape(len(tensor), -1)).all(dim=1)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        count = int(bad.sum())
        raise ValueError(
            f"{owner}: {name} has NaN or Inf values in {count} sample(s); the first is sample "
            f"{index}: {tensor[index].flatten()[:8].tolist()}"
        )


__all__ = ["DataModule", "TensorDataModule", "TransformedDataset", "auto_num_workers"]
