"""One pass over a data split: a module's raw outputs, per-sample losses and the worst samples."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import move_data_to_device
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    SequentialSampler,
    Subset,
)
from torchmetrics.classification import MulticlassConfusionMatrix

from lightkit._validation import check_choice
from lightkit.data import TransformedDataset
from lightkit.outputs import DescribedTask, TaskOutputs

SPLITS = ("val", "test")


@dataclass
class Collected:
    """What one pass over a split gathered (on the CPU).

    ``raw`` and ``target`` hold every sample's raw output and target, except for segmentation
    (a pixel confusion matrix and the per-image losses instead). ``worst_*`` hold the ``top_k``
    highest-loss samples, highest first, with their inputs when those are tensors.
    """

    outputs: TaskOutputs
    losses: torch.Tensor  # N, per sample, in loader order
    raw: torch.Tensor | None = None
    target: torch.Tensor | None = None
    confusion: torch.Tensor | None = None  # segmentation: C×C pixel counts (rows: true)
    worst_positions: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    worst_inputs: torch.Tensor | None = None
    worst_targets: torch.Tensor | None = None
    worst_raw: torch.Tensor | None = None


def split_loader(datamodule: L.LightningDataModule, split: str, owner: str) -> Any:
    """The data module's loader for ``split`` (``"val"`` or ``"test"``), set up."""
    check_choice(owner, "split", split, SPLITS)
    datamodule.prepare_data()
    datamodule.setup("fit" if split == "val" else "test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    if isinstance(loader, (list, tuple)):
        if not loader:
            raise ValueError(
                f"{owner}: the data module has no {split} data (its {split}_dataloader() is "
                "empty); give it a validation split (val=, val_split=) or use split='test'"
            )
        if len(loader) > 1:
            raise ValueError(
                f"{owner}: the data module has {len(loader)} {split} loaders; interpret reads one"
            )
        loader = loader[0]
    return _in_order(loader, owner, split)


def _in_order(loader: Any, owner: str, split: str) -> Any:
    """``loader``, or a DataLoader reading its dataset in order when it shuffles or batches by
    its own sampler: samples are then named by their index, and a ``batch_sampler`` (length
    buckets, say) would scramble the positions silently."""
    if not isinstance(loader, DataLoader):
        return loader
    sampler, batches = loader.sampler, loader.batch_sampler
    if (
        isinstance(sampler, SequentialSampler)
        and type(batches) is BatchSampler
        and isinstance(batches.sampler, SequentialSampler)
    ):
        return loader
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            f"{owner}: the {split} loader reads an IterableDataset, which has no sample order "
            "to name samples by; give interpret a map-style dataset"
        )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size or getattr(batches, "batch_size", None) or 64,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
    )


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the module's own mode restored after."""
    modes = {m: m.training for m in module.modules()}  # frozen BatchNorms stay in eval mode
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, training in modes.items():
            m.training = training


def per_sample_loss(
    described: TaskOutputs, raw: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> torch.Tensor:
    """Each sample's unweighted loss: cross-entropy (multiclass; segmentation: the mean over
    its pixels), binary cross-entropy (binary; multilabel: the mean over labels), squared error
    (values: the mean over outputs)."""
    kind = described.kind
    if kind == "multiclass":
        if target.is_floating_point() and target.shape == raw.shape:  # soft labels
            return -(target * raw.log_softmax(-1)).sum(-1)
        return F.cross_entropy(raw, target.long(), reduction="none")
    if kind == "binary":
        logits = raw.view(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw
        return F.binary_cross_entropy_with_logits(
            logits, target.view(logits.shape).float(), reduction="none"
        )
    if kind == "multilabel":
        return (
            F.binary_cross_entropy_with_logits(raw, target.float(), reduction="none")
            .flatten(1)
            .mean(1)
        )
    if kind == "segmentation":
        ignore = -100 if ignore_index is None else ignore_index
        pixels = F.cross_entropy(raw, target.long(), reduction="none", ignore_index=ignore)
        valid = (target != ignore).flatten(1).sum(1).clamp(min=1)
        return pixels.flatten(1).sum(1) / valid
    error = (raw.float() - target.float().view(raw.shape)) ** 2
    return error.flatten(1).mean(1) if error.ndim > 1 else error


def collect(
    module: L.LightningModule, loader: Any, top_k: int, owner: str, device: torch.device
) -> Collected:
    """Run ``module`` (eval mode, no autograd) over ``loader`` and gather what a report needs."""
    if not isinstance(module, DescribedTask):
        raise TypeError(
            f"{owner}: module needs task_outputs() and unpack_batch() (every lightkit "
            f"TaskModule has them), got {type(module).__name__}"
        )
    described = module.task_outputs()
    ignore_index = getattr(module, "ignore_index", None)
    segmentation = described.kind == "segmentation"
    confusion = (
        MulticlassConfusionMatrix(described.num_classes, ignore_index=ignore_index)
        if segmentation
        else None
    )
    raws, targets, losses = [], [], []
    worst: dict[str, torch.Tensor] | None = None
    seen = 0
    with evaluating(module):
        for batch_idx, batch in enumerate(loader):
            x, y = module.unpack_batch(move_data_to_device(batch, device))
            raw = module(x)
            if not isinstance(raw, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(
                    f"{owner}: batch {batch_idx}: expected tensor outputs and targets, got "
                    f"{type(raw).__name__} and {type(y).__name__}"
                )
            raw = raw.float()
            _check_batch(described, raw, y, ignore_index, batch_idx, owner)
            try:
                loss = per_sample_loss(described, raw, y, ignore_index).float()
            except (RuntimeError, ValueError, IndexError) as err:
                raise ValueError(
                    f"{owner}: batch {batch_idx}: the outputs {tuple(raw.shape)} and targets "
                    f"{tuple(y.shape)} do not fit a {described.kind} task "
                    f"({described.num_classes} classes): {err}"
                ) from None
            losses.append(loss.cpu())
            if segmentation:
                confusion.update(raw.argmax(1).cpu(), y.long().cpu())
            else:
                raws.append(raw.cpu())
                targets.append(y.cpu())
            if top_k:
                worst = _keep_worst(worst, top_k, seen, loss, x, y, raw, segmentation)
            seen += len(loss)
    if not losses:
        raise ValueError(f"{owner}: the loader yielded no batches")
    collected = Collected(
        outputs=described,
        losses=torch.cat(losses),
        raw=torch.cat(raws) if raws else None,
        target=torch.cat(targets) if targets else None,
        confusion=confusion.compute() if confusion is not None else None,
    )
    if worst is not None:
        collected.worst_positions = worst["positions"]
        collected.worst_inputs = worst.get("inputs")
        collected.worst_targets = worst.get("targets")
        collected.worst_raw = worst.get("raw")
    return collected


def _check_batch(
    described: TaskOutputs,
    raw: torch.Tensor,
    y: torch.Tensor,
    ignore_index: int | None,
    batch_idx: int,
    owner: str,
) -> None:
    """Outputs finite and of the task's width, class targets within the classes."""
    where = f"{owner}: batch {batch_idx}"
    if not bool(torch.isfinite(raw).all()):
        raise ValueError(
            f"{where}: the model's outputs hold NaN or Inf; check the weights (a diverged run?) "
            "and the inputs"
        )
    kind, n = described.kind, described.num_classes
    axis = {"multiclass": -1, "multilabel": -1, "segmentation": 1}.get(kind)
    if axis is not None and (raw.ndim < 2 or raw.shape[axis] != n):
        raise ValueError(
            f"{where}: outputs of shape {tuple(raw.shape)} for a {kind} task with {n} classes; "
            f"expected {n} per sample" + (" (N×C×H×W)" if kind == "segmentation" else " (N×C)")
        )
    if kind in ("multiclass", "segmentation") and not y.is_floating_point():
        valid = y if ignore_index is None else y[y != ignore_index]
        bad = valid[(valid < 0) | (valid >= n)]
        if bad.numel():
            raise ValueError(
                f"{where}: target {int(bad[0])} is not a class of this {n}-class task (classes "
                f"are 0 to {n - 1}"
                + (f", and {ignore_index} is ignored)" if ignore_index is not None else ")")
            )


def _keep_worst(
    kept: dict[str, torch.Tensor] | None,
    top_k: int,
    offset: int,
    loss: torch.Tensor,
    x: Any,
    y: torch.Tensor,
    raw: torch.Tensor,
    segmentation: bool,
) -> dict[str, torch.Tensor]:
    """The ``top_k`` highest losses so far (with their inputs, targets and outputs), highest first."""
    count = min(top_k, len(loss))
    values, order = loss.topk(count)
    batch = {
        "losses": values.cpu(),
        "positions": order.cpu() + offset,
        "targets": y[order].cpu(),
        # Segmentation keeps the predicted mask, not the C×H×W logits.
        "raw": (raw[order].argmax(1) if segmentation else raw[order]).cpu(),
    }
    if isinstance(x, torch.Tensor):
        batch["inputs"] = x[order].detach().float().cpu()
    if kept is None:
        return batch
    merged = {k: torch.cat([kept[k], batch[k]]) for k in batch if k in kept}
    values, order = merged["losses"].topk(min(top_k, len(merged["losses"])))
    return {k: v[order] for k, v in merged.items()}


def sample_identity(
    loader: Any, datamodule: Any, split: str, count: int
) -> tuple[list[int], list[str | None] | None]:
    """Each loader position's index in the data you gave, and its file when it came from one.

    Positions map through ``Subset`` s (a ``val_split`` of your dataset, k-fold) and the
    ``split_indices`` lightkit data modules record when they cut your data into new datasets.
    ``loader`` reads in order (see ``split_loader``).
    """
    positions = list(range(count))
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        dataset = getattr(datamodule, f"{split}_dataset", None)
    indices = positions
    while True:
        if isinstance(dataset, Subset):
            inner = list(dataset.indices)
            indices = [int(inner[i]) for i in indices]
            dataset = dataset.dataset
        elif isinstance(dataset, TransformedDataset):
            dataset = dataset.dataset
        else:
            break
    if dataset is None or len(indices) != count:
        return positions, None
    paths = _paths(dataset, indices)
    recorded = getattr(datamodule, "split_indices", None)
    rows = recorded.get(split) if isinstance(recorded, dict) else None
    with contextlib.suppress(TypeError):
        if rows is not None and len(rows) == len(dataset):
            indices = [int(rows[i]) for i in indices]
    return indices, paths


def _paths(dataset: Any, indices: list[int]) -> list[str | None] | None:
    """The file of each sample of ``dataset`` (``ImageFileDataset.paths``,
    ``SegmentationDataset.images``, torchvision's ``ImageFolder.samples``), else None."""
    files = getattr(dataset, "paths", None) or getattr(dataset, "images", None)
    if files is None:
        samples = getattr(dataset, "samples", None)
        if isinstance(samples, list) and samples and isinstance(samples[0], tuple):
            files = [s[0] for s in samples]
    if not isinstance(files, (list, tuple)) or len(files) != len(dataset):
        return None
    return [str(files[i]) for i in indices]


__all__ = [
    "SPLITS",
    "Collected",
    "collect",
    "evaluating",
    "per_sample_loss",
    "sample_identity",
    "split_loader",
]
