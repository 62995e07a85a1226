"""Images to every logger that takes them: TensorBoard's ``add_image`` and MLflow's ``log_image``.

The one place lightkit sends a picture to a logger (validation figures, interpretation plots);
loggers that take no images (CSV) are skipped. Nothing here imports mlflow: an ``MLFlowLogger``
exists only when mlflow is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger

IMAGE_LOGGERS = (TensorBoardLogger, MLFlowLogger)


def image_loggers(loggers: Iterable[Logger]) -> list[Logger]:
    """The loggers among ``loggers`` (``trainer.loggers``) that :func:`log_image` writes to."""
    return [logger for logger in loggers if isinstance(logger, IMAGE_LOGGERS)]


def log_image(loggers: Iterable[Logger], tag: str, image: torch.Tensor, step: int) -> None:
    """Send ``image`` to every logger among ``loggers`` that takes images.

    TensorBoard gets it with ``add_image(tag, image, step)``; MLflow as a time-stepped image of
    the logger's run (``log_image(run_id, image, key=tag, step=step)``: the run's "images"
    artifacts, shown per step in MLflow's UI; characters MLflow refuses in a key become ``_``).

    Args:
        loggers: Usually ``trainer.loggers``; the others are skipped.
        tag: The image's name, e.g. ``"val/confusion_matrix"``.
        image: ``3×H×W`` (or ``1×H×W``), floats in [0, 1] or ``uint8``.
        step: The training step it belongs to (``trainer.global_step``).

    Example:
        >>> log_image(trainer.loggers, "val/confusion_matrix", confusion_image(matrix), step)
    """
    pixels = None
    for logger in image_loggers(loggers):
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, step)
        else:
            if pixels is None:
                pixels = _hwc_uint8(image)
            key = re.sub(r"[^a-zA-Z0-9_\-./ ]", "_", tag)
            logger.experiment.log_image(logger.run_id, pixels, key=key, step=step)


def _hwc_uint8(image: torch.Tensor) -> Any:
    """A ``C×H×W`` float-in-[0, 1] or uint8 tensor as an ``H×W×3`` uint8 numpy array."""
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image.permute(1, 2, 0).contiguous().numpy()


__all__ = ["IMAGE_LOGGERS", "image_loggers", "log_image"]
