"""ValidationFigures: confusion matrix, prediction grids and segmentation overlays as images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from lightkit._lightning import skip_unused_step_hooks
from lightkit._validation import check_int
from lightkit.callbacks._drawing import (
    PALETTE,
    confusion_image,
    prediction_image,
    segmentation_image,
)
from lightkit.callbacks._images import image_loggers, log_image
from lightkit.outputs import DescribedTask, TaskOutputs


@skip_unused_step_hooks
class ValidationFigures(Callback):
    """At each validation epoch end, draw what the model gets right and wrong for the loggers.

    * ``val/confusion_matrix`` (multiclass and binary classification, at most ``max_classes``
      classes): rows are the true class, columns the predicted one, both titled and labelled
      ``<index> <name>`` (indices only without names; every 2nd, 5th, ... label when the classes
      are too many to label each). A cell's colour is its share of the true class (its row), the
      diagonal in green and errors in blue, explained by a colour bar (0% to 100%); cells large
      enough (every cell up to 10 classes) show their count and that share (``12`` over
      ``80%``), and a column ``n`` the samples of each true class. The title line gives the
      samples and the accuracy. Counted over the whole validation set on the device, summed
      across processes under DDP; targets outside the classes (an ignore label) are left out.
    * ``val/predictions`` (image classification): up to ``max_images`` validation images spread
      over the classes: the first ``max(1, max_images // C)`` images (in validation order) of
      each of the ``C`` classes, classes in index order (with many classes, one image of each
      of the first ``max_images``), taken from the whole epoch, so an ordered validation split
      shows every class. Each is framed green when the prediction is right and red when wrong,
      and captioned with the predicted class and its confidence (``cat 93%``: the softmax
      probability, or for binary tasks the sigmoid probability of the predicted class) above
      the true class (``true: dog``; grey when right).
    * ``val/segmentation``: rows of image, true mask and predicted mask over the image, for the
      first validation images (at most 4 rows).

    Classes are named by the module's ``class_names`` (recorded from the data module:
    ``ImageFolderDataModule``'s folders, ``class_names=``) when it has them, else by index.

    What to draw comes from the module's :meth:`~lightkit.TaskModule.task_outputs` (any module
    with ``task_outputs()`` and ``unpack_batch()``: every TaskModule, your own included), the
    predictions from the validation step's outputs (``{"loss": ..., "preds": <raw outputs>}``).

    Cost (``benchmarks/figures.py``): nothing on the training step. After each validation
    batch, a few small tensor operations on the device and no host sync (the confusion counts
    and the images' places in a buffer of ``max_images`` images, whatever the number of
    classes): about 0.3 ms for 256 images on a 2-core CPU. At epoch end, one copy to the host
    and the drawing with PIL's built-in font: about 30 ms for both figures with 10 classes.
    Under DDP each process samples its own images and rank zero draws its own.

    The images go to every logger that takes them: TensorBoard (``add_image``) and MLflow (the
    run's time-stepped images, ``log_image(..., key=tag, step=...)``); a logger that takes none
    (CSV) is skipped. With no such logger, nothing is collected or drawn. ``lk.make_trainer``
    adds it.

    Args:
        max_images: Most images in a prediction grid (segmentation shows at most 4 rows); 0 draws
            no grid.
        max_classes: No confusion matrix above this many classes.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.ValidationFigures(max_images=8)])
    """

    def __init__(self, max_images: int = 16, max_classes: int = 100) -> None:
        self.max_images = check_int("ValidationFigures", "max_images", max_images, minimum=0)
        self.max_classes = check_int("ValidationFigures", "max_classes", max_classes, minimum=0)
        self._confusion: torch.Tensor | None = None
        self._picks: _ClassSample | None = None  # classification: images spread over classes
        self._sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # segmentation
        self._outputs: TaskOutputs | None = None  # set per validation epoch; None: nothing to draw

    @staticmethod
    def _loggers(trainer: L.Trainer) -> list[Logger]:
        """The loggers that take images; none during the sanity check."""
        return [] if trainer.sanity_checking else image_loggers(trainer.loggers)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._confusion = self._picks = self._sample = None
        wanted = bool(self._loggers(trainer)) and isinstance(pl_module, DescribedTask)
        self._outputs = pl_module.task_outputs() if wanted else None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        described = self._outputs
        preds = outputs.get("preds") if isinstance(outputs, Mapping) else None
        if described is None or not isinstance(preds, torch.Tensor):
            return
        preds = preds.detach()
        x, target = pl_module.unpack_batch(batch)
        n = described.num_classes
        predicted = described.predicted(preds) if described.per_sample_class else None
        counted = predicted is not None and n <= self.max_classes
        if counted and isinstance(target, torch.Tensor) and target.shape == predicted.shape:
            if self._confusion is None:  # n × n cells and one for targets out of range
                self._confusion = torch.zeros(n * n + 1, dtype=torch.long, device=preds.device)
            true = target.long().flatten()
            cells = torch.where((true >= 0) & (true < n), true * n + predicted.flatten(), n * n)
            self._confusion.index_add_(0, cells, torch.ones_like(cells))  # bincount would sync
        images = isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] in (1, 3)
        if not images or self.max_images == 0:
            return
        if predicted is not None:
            labels = _class_targets(target, x.shape[0])
            if labels is not None and predicted.numel() == x.shape[0] > 0:
                predicted = predicted.reshape(-1)
                if self._picks is None:
                    self._picks = _ClassSample(self.max_images, n)
                self._picks.add(x.detach(), labels, predicted, _confidence(described, preds))
        elif described.kind == "segmentation" and self._sample is None:
            count = min(4, self.max_images)
            self._sample = (x[:count].detach(), target[:count].detach(), preds[:count])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = self._loggers(trainer)
        if not loggers:
            return
        confusion = self._confusion
        if confusion is not None and trainer.world_size > 1:
            confusion = trainer.strategy.reduce(confusion, reduce_op="sum")  # every rank takes part
        if trainer.is_global_zero:
            step, described = trainer.global_step, self._outputs
            names = _class_names(pl_module, described)
            if confusion is not None:
                n = round((confusion.numel() - 1) ** 0.5)
                matrix = confusion[:-1].view(n, n).cpu()
                image = confusion_image(matrix, class_names=names)
                log_image(loggers, "val/confusion_matrix", image, step)
            picked = self._picks.taken() if self._picks is not None else None
            if picked is not None:
                x, target, predicted, confidence = picked
                image = prediction_image(
                    x.float(), target, predicted, class_names=names, confidence=confidence
                )
                log_image(loggers, "val/predictions", image, step)
            if self._sample is not None:
                x, target, preds = (t.float().cpu() for t in self._sample)
                predicted = described.predicted(preds)
                image = segmentation_image(x, target.long(), predicted, described.num_classes)
                log_image(loggers, "val/segmentation", image, step)
        self._confusion = self._picks = self._sample = None


class _ClassSample:
    """Up to ``size`` images spread over ``num_classes`` classes, chosen on the device.

    ``per_class = max(1, size // num_classes)`` slots for each class in index order, so at most
    ``size`` slots (and one image buffer of that many) whatever the number of classes. Each
    batch's samples go to their class's next free slots: a sample's place within its class is
    the class's running count plus its rank in the batch (a cumulative sum over one-hot targets);
    each slot then takes the one sample meant for it, if any. No host sync until :meth:`taken`.
    """

    def __init__(self, size: int, num_classes: int) -> None:
        self.per_class = max(1, size // num_classes)
        self.classes = min(num_classes, -(-size // self.per_class))  # the classes with a slot
        self.size = min(size, self.classes * self.per_class)
        self.images: torch.Tensor | None = None  # allocated with the first batch, on its device

    def add(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        predicted: torch.Tensor,
        confidence: torch.Tensor,
    ) -> None:
        """Offer a batch: ``N`` images, their true and predicted classes and confidences."""
        if self.images is None:
            device = target.device
            self.counts = torch.zeros(self.classes, dtype=torch.long, device=device)
            self.class_ids = torch.arange(self.classes, device=device)
            self.slot_ids = torch.arange(self.size, device=device)
            self.images = x.new_zeros((self.size, *x.shape[1:]))
            self.targets = torch.full((self.size,), -1, dtype=torch.long, device=device)
            self.predicted = torch.zeros(self.size, dtype=torch.long, device=device)
            self.confidence = torch.zeros(self.size, device=device)
        elif x.shape[1:] != self.images.shape[1:]:
            return  # images of another size than the first batch's: not offered
        one_hot = (target[:, None] == self.class_ids).long()  # N × classes; zero rows: no slot
        place = ((one_hot.cumsum(0) - 1 + self.counts) * one_hot).sum(1)  # within its class
        slot = target * self.per_class + place
        slot = torch.where(one_hot.any(1) & (place < self.per_class), slot, -1)
        match = slot[None, :] == self.slot_ids[:, None]  # size × N, at most one sample a slot
        hit, source = match.any(1), match.long().argmax(1)
        self.images = torch.where(
            hit.view(-1, 1, 1, 1), x.index_select(0, source).to(self.images.dtype), self.images
        )
        self.targets = torch.where(hit, target[source], self.targets)
        self.predicted = torch.where(hit, predicted[source], self.predicted)
        self.confidence = torch.where(hit, confidence[source].float(), self.confidence)
        self.counts += one_hot.sum(0)

    def taken(self) -> tuple[torch.Tensor, ...] | None:
        """The filled slots on the host, in class order: images, targets, predicted, confidence;
        None when there are none."""
        if self.images is None:
            return None
        filled = (self.targets >= 0).cpu()
        if not filled.any():
            return None
        tensors = (self.images, self.targets, self.predicted, self.confidence)
        return tuple(t.cpu()[filled] for t in tensors)


def _class_targets(target: Any, count: int) -> torch.Tensor | None:
    """One class index per sample (``count`` of them), from class indices, 0/1 floats or soft
    (one-hot) rows; None for anything else."""
    if not isinstance(target, torch.Tensor) or target.ndim == 0 or target.shape[0] != count:
        return None
    if target.numel() == count:
        flat = target.reshape(-1)
        return flat.round().long() if flat.is_floating_point() else flat.long()
    if target.ndim == 2 and target.is_floating_point():
        return target.argmax(1)
    return None


def _confidence(described: TaskOutputs, preds: torch.Tensor) -> torch.Tensor:
    """The probability of each sample's predicted class: the softmax maximum (multiclass), the
    sigmoid probability or its complement (binary)."""
    if described.kind == "multiclass":
        return preds.float().softmax(-1).amax(-1)
    positive = preds.float().reshape(-1).sigmoid()
    return torch.where(positive > described.threshold, positive, 1 - positive)


def _class_names(pl_module: Any, described: TaskOutputs | None) -> list[str] | None:
    """The module's class names when they fit its classes (a binary task: two names)."""
    names = getattr(pl_module, "class_names", None)
    count = described.num_classes if described is not None else None
    if (
        isinstance(names, (list, tuple))
        and all(isinstance(n, str) for n in names)
        and len(names) == count
    ):
        return list(names)
    return None


__all__ = [
    "PALETTE",
    "ValidationFigures",
    "confusion_image",
    "prediction_image",
    "segmentation_image",
]
