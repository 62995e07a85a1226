"""PredictionWriter: ``trainer.predict`` outputs written to a CSV file, with class names."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from lightkit._validation import check_path
from lightkit.outputs import DescribedTask, TaskOutputs


class PredictionWriter(BasePredictionWriter):
    """Write each predicted batch to ``predictions.csv`` as it comes: one row per sample.

    The rows follow the module's :meth:`~lightkit.TaskModule.task_outputs` and name classes by
    the module's ``class_names`` (recorded from the data module) where it has them, else by
    index:

    * multiclass: ``index, label, p_<class>...`` (the predicted class and each probability);
    * binary: ``index, label, probability`` (of the positive class);
    * multilabel: ``index, labels, p_<label>...`` (the labels present, joined by ``;``);
    * segmentation: ``index, mask``; each predicted mask is saved as a PNG of class indices
      (``<csv name>_masks/<index>.png``, beside the CSV);
    * values (regression, your own outputs): ``index, output`` or ``output_0, output_1, ...``.

    ``index`` is the sample's position in the predict loader (the dataset index where Lightning
    tracks it). Under DDP every process writes its own file (``predictions_rank<k>.csv``). An
    existing file is never overwritten: the next free name (``predictions-1.csv``...) is used.
    ``lightkit predict`` adds this callback and prints where it wrote.

    Args:
        path: The CSV file; default ``predictions.csv`` in the trainer's log folder (its
            ``default_root_dir`` without a logger).

    Example:
        >>> writer = lk.callbacks.PredictionWriter("preds.csv")
        >>> trainer = L.Trainer(callbacks=[writer], logger=False, enable_progress_bar=False)
        >>> trainer.predict(module, datamodule=dm, return_predictions=False)
        >>> writer.written, writer.count  # the file and its rows
        (PosixPath('preds.csv'), 24)
        >>> print(open("preds.csv").readline().strip())
        index,label,p_0,p_1,p_2
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(write_interval="batch")
        if path is not None:
            check_path("PredictionWriter", "path", path, "a CSV file path")
        self.path = Path(path) if path is not None else None
        self.written: Path | None = None
        self.count = 0
        self._file: TextIO | None = None
        self._csv: Any = None
        self._outputs: TaskOutputs = TaskOutputs()
        self._names: list[str] | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._outputs = (
            pl_module.task_outputs() if isinstance(pl_module, DescribedTask) else TaskOutputs()
        )
        names = getattr(pl_module, "class_names", None)
        fits = isinstance(names, (list, tuple)) and len(names) == self._outputs.num_classes
        self._names = [str(n) for n in names] if fits else None  # type: ignore[union-attr]
        self.count = 0
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        wanted = self.path or folder / "predictions.csv"
        if trainer.world_size > 1:
            wanted = wanted.with_name(f"{wanted.stem}_rank{trainer.global_rank}{wanted.suffix}")
        wanted.parent.mkdir(parents=True, exist_ok=True)
        self._file, self.written = _open_new(wanted)
        self._csv = csv.writer(self._file)
        self._header_written = False

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if self._csv is None:
            return
        if not isinstance(prediction, torch.Tensor):
            if not getattr(self, "_warned", False):
                self._warned = True
                rank_zero_warn(
                    f"PredictionWriter: predict_step returned {type(prediction).__name__}, not a "
                    "tensor; such batches are not written"
                )
            return
        prediction = prediction.detach().float().cpu()
        n = prediction.shape[0] if prediction.ndim else 1
        indices = list(batch_indices) if batch_indices is not None else []
        if len(indices) != n:
            indices = list(range(self.count, self.count + n))
        rows = self._rows(prediction.reshape(n, *prediction.shape[1:]), indices)
        if not self._header_written:
            self._csv.writerow(self._header(prediction))
            self._header_written = True
        self._csv.writerows(rows)
        self.count += n

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, err: BaseException
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._csv = None, None

    # --- rows ------------------------------------------------------------------------------------

    def _name(self, index: int) -> str:
        return self._names[index] if self._names is not None else str(index)

    def _header(self, prediction: torch.Tensor) -> list[str]:
        kind, count = self._outputs.kind, self._outputs.num_classes or 0
        if kind == "multiclass":
            return ["index", "label", *[f"p_{self._name(i)}" for i in range(count)]]
        if kind == "binary":
            return ["index", "label", "probability"]
        if kind == "multilabel":
            return ["index", "labels", *[f"p_{self._name(i)}" for i in range(count)]]
        if kind == "segmentation":
            return ["index", "mask"]
        width = int(np.prod(prediction.shape[1:])) if prediction.ndim > 1 else 1
        return (
            ["index", "output"] if width == 1 else ["index", *[f"output_{i}" for i in range(width)]]
        )

    def _rows(self, prediction: torch.Tensor, indices: list[int]) -> list[list[Any]]:
        kind, threshold = self._outputs.kind, self._outputs.threshold
        if kind == "multiclass":
            labels = prediction.argmax(-1).tolist()
            return [
                [i, self._name(c), *_numbers(row)]
                for i, c, row in zip(indices, labels, prediction.tolist(), strict=True)
            ]
        if kind == "binary":
            probs = prediction.reshape(-1).tolist()
            return [
                [i, self._name(int(p > threshold)), f"{p:.6g}"]
                for i, p in zip(indices, probs, strict=True)
            ]
        if kind == "multilabel":
            return [
                [
                    i,
                    ";".join(self._name(k) for k, p in enumerate(row) if p > threshold),
                    *_numbers(row),
                ]
                for i, row in zip(indices, prediction.tolist(), strict=True)
            ]
        if kind == "segmentation":
            return [
                [i, self._save_mask(i, probs.argmax(0))]
                for i, probs in zip(indices, prediction, strict=True)
            ]
        flat = prediction.reshape(prediction.shape[0], -1).tolist()
        return [[i, *_numbers(row)] for i, row in zip(indices, flat, strict=True)]

    def _save_mask(self, index: int, mask: torch.Tensor) -> str:
        assert self.written is not None
        folder = self.written.parent / f"{self.written.stem}_masks"
        folder.mkdir(exist_ok=True)
        dtype = np.uint8 if (self._outputs.num_classes or 0) <= 256 else np.uint16
        target, _ = _open_new(folder / f"{index}.png", binary=True)
        with target:
            Image.fromarray(mask.numpy().astype(dtype)).save(target, format="PNG")
        return f"{folder.name}/{Path(target.name).name}"


def _numbers(row: list[float]) -> list[str]:
    return [f"{v:.6g}" for v in row]


def _open_new(path: Path, binary: bool = False) -> tuple[Any, Path]:
    """Create ``path`` (or ``<stem>-1<suffix>``, ``-2``... when it exists) exclusively."""
    candidate, k = path, 0
    while True:
        try:
            handle = open(candidate, "xb" if binary else "x", **({} if binary else {"newline": ""}))  # noqa: SIM115  # closed by the caller
            return handle, candidate
        except FileExistsError:
            k += 1
            candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")


__all__ = ["PredictionWriter"]
