"""ValidationFigures: confusion matrix, prediction grids and segmentation overlays in TensorBoard."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger


class ValidationFigures(Callback):
    """At each validation epoch end, draw what the model gets right and wrong into TensorBoard.

    * multiclass classification: a confusion-matrix figure (``val/confusion_matrix``), counted
      over the whole validation set on the device (no per-step host sync);
    * image classification: a grid of the first validation images with predicted and true
      labels, wrong ones in red (``val/predictions``);
    * segmentation: image, true mask and predicted mask side by side (``val/segmentation``).

    Works with lightkit task modules (it reads their ``last_preds``) and a ``TensorBoardLogger``;
    otherwise it does nothing. ``lk.make_trainer`` adds it with its TensorBoard logger.

    Args:
        max_images: Most images in a prediction grid or overlay figure.
        max_classes: No confusion matrix above this many classes (it would be unreadable).

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.ValidationFigures(max_images=8)])
    """

    def __init__(self, max_images: int = 16, max_classes: int = 50) -> None:
        self.max_images = max_images
        self.max_classes = max_classes
        self._confusion: torch.Tensor | None = None
        self._sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _active(self, trainer: L.Trainer) -> TensorBoardLogger | None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return None
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._confusion = None
        self._sample = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        preds = getattr(pl_module, "last_preds", None)
        if self._active(trainer) is None or preds is None or not hasattr(pl_module, "unpack_batch"):
            return
        x, target = pl_module.unpack_batch(batch)
        kind = _kind(pl_module)
        if kind == "multiclass":
            num_classes = preds.shape[-1]
            if num_classes <= self.max_classes and target.ndim == 1:
                if self._confusion is None:
                    self._confusion = torch.zeros(
                        num_classes, num_classes, dtype=torch.long, device=preds.device
                    )
                index = target.long() * num_classes + preds.argmax(-1)
                self._confusion += torch.bincount(index, minlength=num_classes**2).view(
                    num_classes, num_classes
                )
        if (
            self._sample is None
            and isinstance(x, torch.Tensor)
            and x.ndim == 4
            and x.shape[1] in (1, 3)
        ):
            n = self.max_images if kind != "segmentation" else min(4, self.max_images)
            self._sample = (x[:n].detach(), target[:n].detach(), preds[:n].detach())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = self._active(trainer)
        if logger is None:
            return
        import matplotlib.pyplot as plt

        step = trainer.global_step
        kind = _kind(pl_module)
        figures = []
        if self._confusion is not None:
            figures.append(("val/confusion_matrix", confusion_figure(self._confusion.cpu())))
        if self._sample is not None:
            x, target, preds = (t.float().cpu() for t in self._sample)
            if kind == "segmentation":
                figures.append(
                    ("val/segmentation", segmentation_figure(x, target, preds.argmax(1)))
                )
            elif kind == "multiclass":
                figures.append(("val/predictions", prediction_grid(x, target, preds.argmax(-1))))
        for tag, figure in figures:
            logger.experiment.add_figure(tag, figure, global_step=step, close=True)
            plt.close(figure)
        self._confusion = None
        self._sample = None


def _kind(pl_module: L.LightningModule) -> str:
    from lightkit.tasks import ClassificationModule, SegmentationModule

    if isinstance(pl_module, SegmentationModule):
        return "segmentation"
    if isinstance(pl_module, ClassificationModule):
        return "multiclass"
    return "other"


def confusion_figure(matrix: torch.Tensor) -> Any:
    """A matplotlib figure of a confusion matrix (rows: true class, columns: predicted)."""
    import matplotlib.pyplot as plt

    n = matrix.shape[0]
    size = max(3.0, min(12.0, 0.45 * n + 2))
    figure, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    if n <= 20:
        peak = int(matrix.max()) or 1
        for i in range(n):
            for j in range(n):
                value = int(matrix[i, j])
                ax.text(j, i, value, ha="center", va="center", fontsize=8,
                        color="white" if value > peak / 2 else "black")  # fmt: skip
    accuracy = matrix.diag().sum().item() / max(1, matrix.sum().item())
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    figure.tight_layout()
    return figure


def _show(image: torch.Tensor) -> Any:
    """A CHW tensor (any scale) as an HWC or HW array in [0, 1] for imshow."""
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else image * 0
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def prediction_grid(x: torch.Tensor, target: torch.Tensor, predicted: torch.Tensor) -> Any:
    """A grid of images titled ``predicted/true``; wrong predictions in red."""
    import matplotlib.pyplot as plt

    n = x.shape[0]
    cols = min(8, n)
    rows = -(-n // cols)
    figure, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(_show(x[i]), cmap="gray" if x.shape[1] == 1 else None)
        right = int(predicted[i]) == int(target[i])
        ax.set_title(
            f"{int(predicted[i])}/{int(target[i])}", fontsize=9, color="black" if right else "red"
        )
    figure.suptitle("predicted/true", fontsize=10)
    figure.tight_layout()
    return figure


def segmentation_figure(x: torch.Tensor, target: torch.Tensor, predicted: torch.Tensor) -> Any:
    """Rows of image | true mask | predicted mask (masks overlaid on the image)."""
    import matplotlib.pyplot as plt

    n = x.shape[0]
    figure, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    classes = max(int(target.max()), int(predicted.max()), 1)
    for i in range(n):
        image = _show(x[i])
        cmap = "gray" if x.shape[1] == 1 else None
        for j, (title, mask) in enumerate(
            (("image", None), ("true", target[i]), ("predicted", predicted[i]))
        ):
            ax = axes[i, j]
            ax.axis("off")
            ax.imshow(image, cmap=cmap)
            if mask is not None:
                ax.imshow(mask.numpy(), alpha=0.5, cmap="tab10", vmin=0, vmax=max(classes, 9))
            if i == 0:
                ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


__all__ = ["ValidationFigures", "confusion_figure", "prediction_grid", "segmentation_figure"]
