"""Dataset checks shared by the data modules: each error names the owner, the argument and the sample."""

from __future__ import annotations

import numbers
import os
import random
from collections.abc import Mapping, Sized
from typing import Any

import numpy as np
import torch

from lightkit._validation import short_repr
from lightkit.data.loaders import in_memory_tensors

DATASET_EXPECTED = "a map-style Dataset of (input, target) samples"


def check_dataset(owner: str, name: str, dataset: Any, scan: bool = True) -> None:
    """``dataset`` is None or a map-style dataset; a plain list or tuple is checked sample by
    sample (cheap: nothing is loaded), other datasets by their first sample in ``setup()``."""
    if dataset is None:
        return
    if isinstance(dataset, (torch.Tensor, np.ndarray)):
        raise TypeError(
            f"{owner}: {name} must be {DATASET_EXPECTED}, got a {type(dataset).__name__} of shape "
            f"{tuple(dataset.shape)}; wrap arrays as torch.utils.data.TensorDataset(x, y) or use "
            "lk.data.TensorDataModule(x, y)"
        )
    if isinstance(dataset, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{owner}: {name} must be {DATASET_EXPECTED}, got the path {short_repr(dataset)}; for a "
            "folder of class subfolders use lk.data.ImageFolderDataModule(root, image_size)"
        )
    if isinstance(dataset, Mapping):
        raise TypeError(
            f"{owner}: {name} must be {DATASET_EXPECTED}, got a {type(dataset).__name__} with keys "
            f"{short_repr(list(dataset))}; for arrays x and y use "
            "torch.utils.data.TensorDataset(x, y)"
        )
    if not isinstance(dataset, Sized) or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"{owner}: {name} must be a map-style Dataset with __len__ and __getitem__, got "
            f"{short_repr(dataset)} ({type(dataset).__name__})"
        )
    if scan and isinstance(dataset, (list, tuple)) and len(dataset):
        first = dataset[0]
        for index, sample in enumerate(dataset):
            check_sample(owner, name, index, sample, first)


def check_first_sample(owner: str, name: str, dataset: Any) -> None:
    """Read sample 0 of a dataset that is not in-memory tensors or a list (those are checked
    already), without moving any random number generator, and check its structure."""
    if dataset is None or isinstance(dataset, (list, tuple)) or len(dataset) == 0:
        return
    if in_memory_tensors(dataset) is not None:
        return
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            sample = dataset[0]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
    check_sample(owner, name, 0, sample, sample)


def check_sample(owner: str, name: str, index: int, sample: Any, first: Any) -> None:
    """A sample is an ``(input, target, ...)`` tuple or list, a dict, or an input alone (a tensor,
    array or image); not a number, a string or None, which no model step can unpack."""
    is_seq = isinstance(sample, (tuple, list))
    if is_seq:
        if not any(item is None for item in sample) and (
            isinstance(first, (tuple, list)) and len(sample) == len(first)
        ):
            return  # the common case, kept cheap: a list of a million samples takes about a second
    elif not (sample is None or isinstance(sample, (str, bytes, numbers.Number))) and not (
        isinstance(first, (tuple, list))
    ):
        return
    where = f"{owner}: {name} sample {index}"
    if sample is None or isinstance(sample, (str, bytes, numbers.Number)):
        raise TypeError(
            f"{where} is {short_repr(sample)} ({type(sample).__name__}); expected an (input, "
            "target) pair such as (tensor, label), or an input alone (a tensor, array or image)"
        )
    if is_seq:
        for position, item in enumerate(sample):
            if item is None:
                raise TypeError(
                    f"{where} has None at position {position}: {short_repr(sample)}; a "
                    "DataLoader cannot batch None"
                )

    def layout(s: Any) -> str:
        if isinstance(s, (tuple, list)):
            return f"{len(s)} item{'' if len(s) == 1 else 's'}"
        return f"a {type(s).__name__}"

    raise ValueError(
        f"{where} has {layout(sample)} but sample 0 has {layout(first)}: "
        f"{short_repr(sample)}; every sample needs the same layout"
    )
