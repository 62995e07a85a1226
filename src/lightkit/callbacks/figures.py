"""ValidationFigures: confusion matrix, prediction grids and segmentation overlays in TensorBoard."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from lightkit._lightning import skip_unused_step_hooks
from lightkit.outputs import DescribedTask, TaskOutputs

# Distinct colours for mask classes (tab10), as 0..1 RGB.
PALETTE = torch.tensor(
    [
        [0.12, 0.47, 0.71], [1.00, 0.50, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50],
        [0.74, 0.74, 0.13], [0.09, 0.75, 0.81],
    ]
)  # fmt: skip
RIGHT, WRONG = torch.tensor([0.1, 0.7, 0.2]), torch.tensor([0.9, 0.1, 0.1])


@skip_unused_step_hooks
class ValidationFigures(Callback):
    """At each validation epoch end, draw what the model gets right and wrong into TensorBoard.

    * multiclass and binary classification: the confusion matrix as a heat map
      (``val/confusion_matrix``; rows: true class, columns: predicted; each row scaled to its
      class count), counted over the whole validation set on the device (summed across
      processes under DDP);
    * image classification: the first validation images, framed green where the prediction is
      right and red where it is wrong, each captioned with the predicted class (and the true one
      when it is wrong) (``val/predictions``);
    * segmentation: rows of image, true mask and predicted mask over the image
      (``val/segmentation``).

    Classes are named by the module's ``class_names`` (recorded from the data module:
    ``ImageFolderDataModule``'s folders, ``class_names=``) when it has them, else by index; the
    confusion matrix's rows are labelled ``<index> <name>`` and its columns by index.

    What to draw comes from the module's :meth:`~lightkit.TaskModule.task_outputs` (any module
    with ``task_outputs()`` and ``unpack_batch()``: every TaskModule, your own included), the
    predictions from the validation step's outputs (``{"loss": ..., "preds": <raw outputs>}``).
    Pictures are drawn with tensor operations and PIL's built-in font (no plotting library), about
    15 ms a figure on a laptop CPU (``benchmarks/figures.py``). Needs a ``TensorBoardLogger``; otherwise it does nothing. ``lk.make_trainer``
    adds it.

    Args:
        max_images: Most images in a prediction grid (segmentation shows at most 4 rows).
        max_classes: No confusion matrix above this many classes.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.ValidationFigures(max_images=8)])
    """

    def __init__(self, max_images: int = 16, max_classes: int = 100) -> None:
        self.max_images = max_images
        self.max_classes = max_classes
        self._confusion: torch.Tensor | None = None
        self._sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._outputs: TaskOutputs | None = None  # set per validation epoch; None: nothing to draw

    @staticmethod
    def _logger(trainer: L.Trainer) -> TensorBoardLogger | None:
        if trainer.sanity_checking:
            return None
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._confusion = None
        self._sample = None
        wanted = self._logger(trainer) is not None and isinstance(pl_module, DescribedTask)
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
        x, target = pl_module.unpack_batch(batch)
        n = described.num_classes
        if described.per_sample_class and n is not None and n <= self.max_classes:
            predicted = described.predicted(preds)
            if isinstance(target, torch.Tensor) and target.shape == predicted.shape:
                if self._confusion is None:
                    self._confusion = torch.zeros(n * n, dtype=torch.long, device=preds.device)
                cells = target.long().flatten() * n + predicted.flatten()
                self._confusion += torch.bincount(cells, minlength=n * n)
        if (
            self._sample is None
            and described.kind in ("multiclass", "binary", "segmentation")
            and isinstance(x, torch.Tensor)
            and x.ndim == 4
            and x.shape[1] in (1, 3)
        ):
            count = self.max_images if described.kind != "segmentation" else min(4, self.max_images)
            self._sample = (x[:count].detach(), target[:count].detach(), preds[:count].detach())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = self._logger(trainer)
        if logger is None:
            return
        confusion = self._confusion
        if confusion is not None and trainer.world_size > 1:
            confusion = trainer.strategy.reduce(confusion, reduce_op="sum")  # every rank takes part
        if trainer.is_global_zero:
            step, described = trainer.global_step, self._outputs
            names = _class_names(pl_module, described)
            if confusion is not None:
                n = round(confusion.numel() ** 0.5)
                image = confusion_image(confusion.view(n, n).cpu(), class_names=names)
                logger.experiment.add_image("val/confusion_matrix", image, step)
            if self._sample is not None:
                x, target, preds = (t.float().cpu() for t in self._sample)
                predicted = described.predicted(preds)
                if described.kind == "segmentation":
                    image = segmentation_image(x, target.long(), predicted, described.num_classes)
                    logger.experiment.add_image("val/segmentation", image, step)
                else:
                    image = prediction_image(
                        x, target.long().view(-1), predicted.view(-1), class_names=names
                    )
                    logger.experiment.add_image("val/predictions", image, step)
        self._confusion = None
        self._sample = None


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


@functools.cache
def _font() -> Any:
    return ImageFont.load_default(size=11)


def _fit(text: str, width: int, font: Any) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _to_tensor(canvas: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)


def confusion_image(
    matrix: torch.Tensor, size: int = 256, class_names: list[str] | None = None
) -> torch.Tensor:
    """A ``3×H×W`` heat map of a confusion matrix (rows: true, columns: predicted), white to blue
    by each row's share; the diagonal in green tones, so errors stand out. Rows are labelled
    ``<index> <name>`` (the index alone without names), columns by index, and cells large enough
    show their count."""
    n = matrix.shape[0]
    share = matrix.float() / matrix.sum(1, keepdim=True).clamp(min=1)
    blue = torch.tensor([0.03, 0.19, 0.42])[:, None, None]
    green = torch.tensor([0.0, 0.43, 0.17])[:, None, None]
    colour = torch.where(torch.eye(n, dtype=torch.bool), green, blue)
    image = 1 - share[None] * (1 - colour)  # white at 0, the full colour at 1
    cell = max(1, size // n)
    image = image.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    if cell >= 4:  # grid lines between cells
        image[:, ::cell, :] = 0.8
        image[:, :, ::cell] = 0.8
    if cell < 8:  # too small to label
        return image
    font = _font()
    rows = (
        [f"{i} {name}" for i, name in enumerate(class_names)]
        if class_names
        else [str(i) for i in range(n)]
    )
    left = min(110, max(34, 8 + max(int(font.getlength(r)) for r in rows)))
    top = 30
    side = cell * n
    canvas = Image.new("RGB", (left + side + 4, top + side + 4), "white")
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    canvas.paste(Image.fromarray(pixels), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 2), "predicted", fill="black", font=font)
    draw.text((2, top - 14), "true", fill="black", font=font)
    for i, row in enumerate(rows):
        middle = top + i * cell + cell // 2
        draw.text((2, middle), _fit(row, left - 6, font), fill="black", font=font, anchor="lm")
        draw.text(
            (left + i * cell + cell // 2, top - 2), str(i), fill="black", font=font, anchor="mb"
        )
    if cell >= 22:
        for t in range(n):
            for p in range(n):
                dark = share[t, p] > 0.5
                draw.text(
                    (left + p * cell + cell // 2, top + t * cell + cell // 2),
                    str(int(matrix[t, p])),
                    fill="white" if dark else "black",
                    font=font,
                    anchor="mm",
                )
    return _to_tensor(canvas)


def _to_rgb01(x: torch.Tensor) -> torch.Tensor:
    """``N×C×H×W`` images of any scale as ``N×3×H×W`` in [0, 1] (each image min-max scaled)."""
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    x = (x - low) / (high - low).clamp(min=1e-8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _upscale(x: torch.Tensor, minimum: int = 64) -> torch.Tensor:
    side = min(x.shape[-2:])
    if side >= minimum:
        return x
    factor = -(-minimum // side)
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def prediction_image(
    x: torch.Tensor,
    target: torch.Tensor,
    predicted: torch.Tensor,
    class_names: list[str] | None = None,
) -> torch.Tensor:
    """A grid of images framed green (right) or red (wrong), each captioned with the predicted
    class (and below it ``"true: cat"`` when wrong; indices without names)."""
    images = _upscale(_to_rgb01(x))
    right = (predicted == target).view(-1, 1, 1, 1)
    frame = torch.where(right, RIGHT.view(1, 3, 1, 1), WRONG.view(1, 3, 1, 1))
    framed = F.pad(images, (3, 3, 3, 3))
    border = torch.ones_like(framed, dtype=torch.bool)
    border[:, :, 3:-3, 3:-3] = False
    framed = torch.where(border, frame.expand_as(framed), framed)
    framed = torch.stack(
        [
            _captioned(image, int(t), int(p), class_names)
            for image, t, p in zip(framed, target.tolist(), predicted.tolist(), strict=True)
        ]
    )
    return make_grid(framed, nrow=8, padding=2, pad_value=1.0)


def _captioned(
    image: torch.Tensor, target: int, predicted: int, names: list[str] | None
) -> torch.Tensor:
    """``image`` with two lines below it: the prediction, and the truth when they differ."""

    def name(i: int) -> str:
        return names[i] if names is not None and 0 <= i < len(names) else str(i)

    font = _font()
    width = image.shape[-1]
    strip = Image.new("RGB", (width, 27), "white")
    draw = ImageDraw.Draw(strip)
    right = predicted == target
    draw.text(
        (2, 1), _fit(name(predicted), width - 4, font), fill="#1a7f33" if right else "#c0141a",
        font=font,
    )  # fmt: skip
    if not right:
        draw.text((2, 14), _fit(f"true: {name(target)}", width - 4, font), fill="black", font=font)
    return torch.cat([image, _to_tensor(strip)], dim=1)


def _overlay(images: torch.Tensor, masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    colours = PALETTE[masks.clamp(0, len(PALETTE) - 1) % len(PALETTE)].permute(0, 3, 1, 2)
    valid = ((masks >= 0) & (masks < num_classes))[:, None]
    return torch.where(valid, 0.5 * images + 0.5 * colours, images)


def segmentation_image(
    x: torch.Tensor, target: torch.Tensor, predicted: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Rows of image | true mask | predicted mask (masks blended over the image)."""
    images = _to_rgb01(x)
    rows = torch.stack(
        [images, _overlay(images, target, num_classes), _overlay(images, predicted, num_classes)], 1
    ).flatten(0, 1)
    return make_grid(_upscale(rows), nrow=3, padding=2, pad_value=1.0)


__all__ = ["ValidationFigures", "confusion_image", "prediction_image", "segmentation_image"]
