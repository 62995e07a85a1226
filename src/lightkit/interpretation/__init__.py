"""interpret() and calibrate(): where a trained model is wrong, and probabilities it can be trusted with.

``lk.interpret`` reads one split with the trained module and returns an
:class:`InterpretationReport` (tables, pictures); ``lk.calibrate`` fits a temperature on the
validation split so the probabilities inference returns mean what they say.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lightkit._validation import check_instance, check_int
from lightkit.callbacks._images import image_loggers, log_image
from lightkit.interpretation._collect import collect, sample_identity, split_loader
from lightkit.interpretation.calibration import Calibration, calibrate
from lightkit.interpretation.report import Confusion, InterpretationReport, build_report

_AUTO = "auto"


def interpret(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    split: str = "val",
    top_k: int = 16,
    save_dir: str | os.PathLike[str] | None = _AUTO,
) -> InterpretationReport:
    """Where is the model wrong, and can its probabilities be trusted? One pass over a split.

    What the report holds depends on the task (the module's ``task_outputs()``, so your own
    TaskModule subclass gets the same report as the built-in tasks):

    * classification (multiclass, binary, multilabel): per-class precision, recall, F1,
      support, AUROC and average precision; the most confused class pairs; the highest-loss
      samples; ROC and precision-recall curves; calibration (a reliability diagram and the
      expected calibration error), all computed with torchmetrics;
    * regression: MAE, RMSE, R²; the samples with the largest squared error; predicted-vs-true
      and residual plots;
    * segmentation: per-class IoU, pixel confusions, the highest-loss images with their masks.

    Samples are named by ``index``, their index in the data you gave: the row of
    ``TensorDataModule``'s arrays, the index into your ``train`` dataset for a ``val_split``
    (any ``Subset``), the file (sorted) for ``ImageFolderDataModule``, with ``path`` when the
    sample came from a file. ``loss`` is the sample's unweighted loss (cross-entropy, binary
    cross-entropy averaged over labels, squared error; mean over pixels for segmentation);
    probabilities and ``confidence`` are what inference returns (after the module's temperature
    from :func:`calibrate`, if any).

    The module runs in eval mode with no autograd, on the device it is on; each submodule's mode
    is restored after. A module loaded with ``load_from_checkpoint`` works as it is. A loader
    that shuffles or batches by its own sampler is read in order instead (a DataLoader over the
    same dataset), so every sample keeps its index. Under DDP every process reads the whole
    split; only global rank 0 writes the pictures (call it on every rank, or on rank 0 alone).

    Args:
        module: A trained lightkit task module (anything with ``task_outputs()`` and
            ``unpack_batch()``).
        datamodule: Its data module; ``setup`` is called for you.
        split: ``"val"`` or ``"test"``.
        top_k: How many highest-loss samples to list (0: none).
        save_dir: Where to write the pictures (PNG) and ``report.json``. ``"auto"``: into the
            run folder, ``<run>/interpret/<split>`` (``-1``, ``-2``... when taken), where the
            run folder is the module's trainer's log folder, else that of the checkpoint it was
            loaded from; the pictures are also logged (tags ``interpret/<split>/<name>``) to
            the trainer's loggers that take images (TensorBoard, MLflow), else to a
            TensorBoard event file in the run folder. With no run folder, nothing is written.
            None: write nothing (call ``report.save(folder)`` yourself). A path: write there.

    Returns:
        An :class:`InterpretationReport`: ``print(report)`` for the tables, ``report.per_class``,
        ``report.most_confused``, ``report.top_losses``, ``report.ece``, ``report.save(dir)``.

    Example:
        >>> report = lk.interpret(module, dm)  # after trainer.fit(module, datamodule=dm)
        >>> print(report)  # rich tables: summary, per class, most confused, top losses
        lk.interpret: multiclass model on the val split, 24 samples
        mean_loss ...  accuracy ...
        >>> sorted(report.metrics)
        ['accuracy', 'auroc', 'macro_f1', 'mean_loss']
        >>> report.most_confused[0]
        Confusion(true=..., predicted=..., count=...)
    """
    check_instance(
        "interpret",
        "module",
        module,
        L.LightningModule,
        "a trained LightningModule (a lightkit task)",
    )
    check_instance(
        "interpret",
        "datamodule",
        datamodule,
        L.LightningDataModule,
        "a LightningDataModule (for example lk.data.DataModule(train, val=...))",
    )
    top_k = check_int("interpret", "top_k", top_k, 0, 10_000)
    if save_dir is not None and save_dir != _AUTO and not isinstance(save_dir, (str, os.PathLike)):
        raise TypeError(
            f"interpret: save_dir must be a folder path, 'auto' or None, got {save_dir!r}"
        )
    loader = split_loader(datamodule, split, "interpret")
    collected = collect(module, loader, top_k, "interpret", module.device)
    indices, paths = sample_identity(loader, datamodule, split, len(collected.losses))
    names = getattr(module, "class_names", None) or getattr(datamodule, "class_names", None)
    temperature = getattr(module, "temperature", None)
    report = build_report(
        collected,
        split,
        top_k,
        tuple(names) if names else None,
        temperature if isinstance(temperature, float) else None,
        indices,
        paths,
    )
    trainer = attached_trainer(module)
    if save_dir is None or (trainer is not None and trainer.global_rank != 0):
        return report  # under DDP only global rank 0 writes
    run = run_folder(module) if save_dir == _AUTO else None
    if save_dir == _AUTO and run is None:
        return report
    folder = _free_folder(run / "interpret" / split) if run is not None else Path(save_dir)
    report.save(folder)
    if run is not None:
        _log_pictures(module, run, report)
    return report


def run_folder(module: Any) -> Path | None:
    """The run folder of ``module``: its trainer's log folder, else that of the checkpoint it was
    loaded from (``<run>/checkpoints/<file>.ckpt``), else None."""
    trainer = attached_trainer(module)
    if trainer is not None:
        # Not trainer.log_dir: it broadcasts across processes, and under DDP interpret may run
        # on rank 0 alone.
        logger = trainer.logger
        folder = getattr(logger, "log_dir", None) if logger is not None else None
        return Path(folder or trainer.default_root_dir)
    loaded = getattr(module, "checkpoint_path", None)
    if isinstance(loaded, str):
        folder = Path(loaded).resolve().parent
        return folder.parent if folder.name == "checkpoints" else folder
    return None


def attached_trainer(module: Any) -> L.Trainer | None:
    """The trainer ``module`` is attached to (after ``fit``), else None."""
    try:
        return module.trainer
    except RuntimeError:  # Lightning: "... is not attached to a `Trainer`"
        return None


def _free_folder(folder: Path) -> Path:
    """``folder``, or ``folder-1``, ``folder-2``...: the first that does not exist yet."""
    candidate, k = folder, 0
    while candidate.exists():
        k += 1
        candidate = folder.with_name(f"{folder.name}-{k}")
    return candidate


def _log_pictures(module: Any, run: Path, report: InterpretationReport) -> None:
    """The pictures as images for the trainer's loggers that take them (TensorBoard, MLflow),
    else in a TensorBoard event file in ``run``."""
    from PIL import Image

    trainer = attached_trainer(module)
    loggers = image_loggers(trainer.loggers) if trainer is not None else []
    writer = None
    if loggers:
        step = trainer.global_step
    else:
        from torch.utils.tensorboard import SummaryWriter

        writer, step = SummaryWriter(log_dir=str(run)), 0
    try:
        assert report.folder is not None
        for png in sorted(report.folder.glob("*.png")):
            with Image.open(png) as image:
                pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
            tag = f"interpret/{report.split}/{png.stem}"
            if writer is None:
                log_image(loggers, tag, pixels, step)
            else:
                writer.add_image(tag, pixels, step)
    finally:
        if writer is not None:
            writer.close()
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):  # visible now, not at its next flush
                logger.experiment.flush()


__all__ = ["Calibration", "Confusion", "InterpretationReport", "calibrate", "interpret"]
