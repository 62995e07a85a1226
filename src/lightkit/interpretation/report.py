"""InterpretationReport: where a trained model is wrong, and whether its probabilities can be trusted."""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchmetrics.functional import classification as tmc
from torchmetrics.functional import regression as tmr

from lightkit._validation import check_bool, check_path
from lightkit.interpretation._collect import Collected
from lightkit.outputs import scale_logits

N_BINS = 15  # reliability diagram and expected calibration error
MAX_CONFUSED = 20
MAX_CURVES = 10  # ROC and PR curves drawn: the classes with the lowest AUROC beyond this
MAX_GRID = 32  # images in the top-loss picture


class Confusion(NamedTuple):
    """One off-diagonal cell of the confusion matrix: ``count`` samples of class ``true``
    predicted as ``predicted`` (class names when known, else indices).

    Example:
        >>> cell = lk.interpretation.Confusion(true="cat", predicted="dog", count=12)
        >>> true, predicted, count = cell  # a NamedTuple
        >>> f"{count} {true}s taken for {predicted}s"
        '12 cats taken for dogs'
    """

    true: Any
    predicted: Any
    count: int


@dataclass
class InterpretationReport:
    """What :func:`lightkit.interpret` found on one split. Print it for tables; ``save`` it for
    pictures.

    Attributes:
        kind: The task kind (``TaskOutputs.kind``): ``"multiclass"``, ``"binary"``,
            ``"multilabel"``, ``"segmentation"`` or ``"values"`` (regression).
        split: ``"val"`` or ``"test"``.
        num_samples: Samples read.
        metrics: Summary numbers: ``accuracy``, ``macro_f1``, ``auroc`` (classification);
            ``mae``, ``rmse``, ``r2`` (regression); ``miou``, ``pixel_accuracy``
            (segmentation); ``mean_loss`` always.
        per_class: One dict per class (label, for multilabel): ``class``, ``name``,
            ``precision``, ``recall``, ``f1``, ``support`` and ``auroc``, ``average_precision``
            (classification); ``iou``, ``precision``, ``recall``, ``support`` in pixels
            (segmentation). Empty for regression. ``pandas.DataFrame(report.per_class)`` makes
            a table of it.
        most_confused: :class:`Confusion` rows ``(true, predicted, count)``, largest first (at
            most 20; multiclass, binary, segmentation in pixels).
        top_losses: The highest-loss samples, highest first: dicts with ``index`` (the sample's
            index in the data you gave: see ``lk.interpret``), ``position`` (in the split's
            loader), ``loss``, ``target``, ``pred``, ``confidence`` (classification), ``path``
            (when the sample came from a file).
        ece: Expected calibration error (classification; 15 equal-width bins, torchmetrics),
            of the probabilities inference returns: after the module's temperature, if any.
        ece_uncalibrated: The ECE without the temperature, when the module has one.
        temperature: The module's temperature (``lk.calibrate``), or None.
        class_names: The class names used in the rows, when known.
        folder: Where :meth:`save` last wrote, or None.

    Example:
        >>> report = lk.interpret(module, dm)  # an InterpretationReport
        >>> report.kind, report.split, report.num_samples
        ('multiclass', 'val', 24)
        >>> [row["class"] for row in report.per_class]
        [0, 1, 2]
    """

    kind: str
    split: str
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    most_confused: list[Confusion] = field(default_factory=list)
    top_losses: list[dict[str, Any]] = field(default_factory=list)
    ece: float | None = None
    ece_uncalibrated: float | None = None
    temperature: float | None = None
    class_names: tuple[str, ...] | None = None
    folder: Path | None = None
    # What the pictures are drawn from (not part of to_dict()).
    plots: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what ``report.json`` holds)."""
        return {
            "kind": self.kind,
            "split": self.split,
            "num_samples": self.num_samples,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "most_confused": [c._asdict() for c in self.most_confused],
            "top_losses": self.top_losses,
            "ece": self.ece,
            "ece_uncalibrated": self.ece_uncalibrated,
            "temperature": self.temperature,
            "class_names": list(self.class_names) if self.class_names else None,
        }

    def records(self, table: str = "per_class") -> list[dict[str, Any]]:
        """One table as a list of flat dicts (``pandas.DataFrame(report.records("top_losses"))``).

        Args:
            table: ``"per_class"``, ``"most_confused"`` or ``"top_losses"``.
        """
        if table == "per_class":
            return [dict(row) for row in self.per_class]
        if table == "most_confused":
            return [c._asdict() for c in self.most_confused]
        if table == "top_losses":
            return [dict(row) for row in self.top_losses]
        raise ValueError(
            f"InterpretationReport.records: table must be 'per_class', 'most_confused' or "
            f"'top_losses', got {table!r}"
        )

    def figures(self) -> dict[str, np.ndarray]:
        """The pictures, drawn now: name -> ``H×W×3`` uint8 RGB array (see :meth:`save`)."""
        from lightkit.interpretation._figures import draw_figures

        return draw_figures(self)

    def save(self, folder: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the pictures as PNG files and the numbers as ``report.json`` into ``folder``.

        Pictures by task: ``confusion_matrix.png``, ``roc.png``, ``precision_recall.png``,
        ``reliability.png`` and ``top_losses.png`` (image inputs) for classification;
        ``predicted_vs_true.png`` and ``residuals.png`` for regression; ``per_class_iou.png``,
        ``confusion_matrix.png`` and ``worst.png`` for segmentation.

        Args:
            folder: The folder (created if missing).
            overwrite: Replace files of the same names in ``folder``; without it, any of them
                already there (an earlier report, a picture of yours) is an error and nothing
                is written.

        Returns:
            The files written.
        """
        from PIL import Image

        check_path("InterpretationReport.save", "folder", folder, "a folder path")
        check_bool("InterpretationReport.save", "overwrite", overwrite)
        folder = Path(folder)
        summary = folder / "report.json"
        pictures = self.figures()
        targets = [folder / f"{name}.png" for name in pictures] + [summary]
        taken = [p.name for p in targets if p.exists()]
        if taken and not overwrite:
            raise FileExistsError(
                f"InterpretationReport.save: {str(folder)!r} already holds "
                f"{', '.join(taken[:4])}{' ...' if len(taken) > 4 else ''}; choose another "
                "folder or pass overwrite=True"
            )
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, pixels in pictures.items():
            path = folder / f"{name}.png"
            Image.fromarray(pixels).save(path)
            written.append(path)
        summary.write_text(json.dumps(self.to_dict(), indent=2, default=_plain) + "\n")
        written.append(summary)
        self.folder = folder
        return written

    def __str__(self) -> str:
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=110, color_system=None, force_terminal=False)
        for part in self._renderables():
            console.print(part)
        return buffer.getvalue().rstrip()

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield from self._renderables()

    def _renderables(self) -> list[Any]:
        from rich.table import Table
        from rich.text import Text  # cells are text, never markup: "[cat, dog]" stays as it is

        head = f"lk.interpret: {self.kind} model on the {self.split} split, {self.num_samples:,} samples"
        parts: list[Any] = [Text(head)]
        numbers = {**self.metrics}
        if self.ece is not None:
            numbers["ece"] = self.ece
        if self.ece_uncalibrated is not None:
            numbers["ece (before temperature)"] = self.ece_uncalibrated
        if self.temperature is not None:
            numbers["temperature"] = self.temperature
        parts.append(Text("  ".join(f"{k} {_fmt(v)}" for k, v in numbers.items())))
        if self.per_class:
            shown = self.per_class[:50]
            table = Table(
                title="per class"
                + (f" (first 50 of {len(self.per_class)})" if len(self.per_class) > 50 else ""),
                title_justify="left",
            )
            columns = [k for k in shown[0] if k != "class"]
            table.add_column("class", justify="right")
            for column in columns:
                table.add_column(column, justify="left" if column == "name" else "right")
            for row in shown:
                table.add_row(str(row["class"]), *(Text(_fmt(row[c])) for c in columns))
            parts.append(table)
        if self.most_confused:
            table = Table(title="most confused", title_justify="left")
            for column in ("true", "predicted", "count"):
                table.add_column(column, justify="right" if column == "count" else "left")
            for c in self.most_confused[:10]:
                table.add_row(Text(str(c.true)), Text(str(c.predicted)), f"{c.count:,}")
            parts.append(table)
        if self.top_losses:
            table = Table(title="top losses", title_justify="left")
            columns = [k for k in ("index", "loss", "target", "pred", "confidence", "path")
                       if any(row.get(k) is not None for row in self.top_losses)]  # fmt: skip
            for column in columns:
                table.add_column(column, justify="left" if column == "path" else "right")
            for row in self.top_losses:
                table.add_row(*(Text(_fmt(row.get(c))) for c in columns))
            parts.append(table)
        if self.folder is not None:
            parts.append(Text(f"pictures: {self.folder}"))
        return parts


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    if isinstance(value, list):
        text = ", ".join(_fmt(v) for v in value[:6])
        return f"[{text}{', ...' if len(value) > 6 else ''}]"
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.tolist()
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _float(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


# --- building -----------------------------------------------------------------------------------


def build_report(
    collected: Collected,
    split: str,
    top_k: int,
    class_names: tuple[str, ...] | None,
    temperature: float | None,
    indices: list[int],
    paths: list[str | None] | None,
) -> InterpretationReport:
    """The report for what :func:`~lightkit.interpretation._collect.collect` gathered."""
    described = collected.outputs
    kind = described.kind
    names = class_names if class_names and len(class_names) == described.num_classes else None
    if class_names and names is None:
        warnings.warn(
            f"lk.interpret: {len(class_names)} class names for {described.num_classes} classes; "
            "classes are shown by index",
            stacklevel=3,
        )
    if names is not None and all(name == str(i) for i, name in enumerate(names)):
        names = None  # "0", "1", ...: the indices say it already
    report = InterpretationReport(
        kind=kind,
        split=split,
        num_samples=len(collected.losses),
        class_names=names,
        temperature=temperature,
    )
    report.metrics["mean_loss"] = float(collected.losses.mean())
    if kind in ("multiclass", "binary", "multilabel"):
        _classification(report, collected, temperature)
    elif kind == "segmentation":
        _segmentation(report, collected)
    else:
        _regression(report, collected)
    report.top_losses = _top_losses(report, collected, top_k, indices, paths)
    inputs = collected.worst_inputs
    if _are_images(inputs):
        assert inputs is not None
        if kind == "segmentation" and collected.worst_targets is not None:
            assert collected.worst_raw is not None
            shown = slice(0, min(4, len(inputs)))
            report.plots["worst"] = (
                inputs[shown],
                collected.worst_targets[shown],
                collected.worst_raw[shown],
            )
            report.plots["num_classes"] = described.num_classes
        elif kind in ("multiclass", "binary", "multilabel"):
            report.plots["worst_images"] = inputs[: min(top_k, MAX_GRID)]
    return report


def _are_images(x: torch.Tensor | None) -> bool:
    """``N×C×H×W`` with one or three channels (or four: RGBA)."""
    return isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] in (1, 3, 4) and len(x) > 0


def _row(report: InterpretationReport, index: int, **fields: Any) -> dict[str, Any]:
    """A per-class row: the class index, its name when names are known, then ``fields``."""
    named = {"name": report.class_names[index]} if report.class_names else {}
    return {"class": index, **named, **fields}


def _label(report: InterpretationReport, index: int) -> Any:
    names = report.class_names
    return names[index] if names is not None and 0 <= index < len(names) else index


def _probabilities(described: Any, raw: torch.Tensor, temperature: float | None) -> torch.Tensor:
    """What inference returns: softmax (multiclass) or sigmoid of the calibrated logits."""
    logits = scale_logits(described, raw, temperature) if temperature is not None else raw
    if described.kind == "multiclass":
        return logits.softmax(-1)
    logits = logits.view(-1) if described.kind == "binary" else logits
    return logits.sigmoid()


def _hard_targets(kind: str, target: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    if kind == "multiclass":
        if target.is_floating_point() and target.shape == raw.shape:  # soft labels
            return target.argmax(-1)
        return target.long().view(-1)
    if kind == "binary":
        return (target.view(-1) > 0.5).long()
    return (target > 0.5).long()


def expected_calibration_error(
    kind: str, probs: torch.Tensor, target: torch.Tensor, n: int
) -> float:
    """torchmetrics' ECE (15 equal-width bins) of the probabilities inference returns."""
    if kind == "multiclass":
        value = tmc.multiclass_calibration_error(probs, target, n, n_bins=N_BINS, norm="l1")
    else:  # binary; multilabel: every (sample, label) probability as one binary prediction
        value = tmc.binary_calibration_error(probs.flatten(), target.flatten(), n_bins=N_BINS)
    return float(value)


def reliability_bins(kind: str, probs: torch.Tensor, target: torch.Tensor) -> dict[str, list]:
    """Per equal-width confidence bin: mean confidence, accuracy (observed frequency) and count,
    as torchmetrics' calibration error bins them."""
    if kind == "multiclass":
        confidence, predicted = probs.max(-1)
        correct = (predicted == target).float()
    else:
        confidence, correct = probs.flatten(), target.flatten().float()
    bins = torch.clamp((confidence * N_BINS).long(), max=N_BINS - 1)
    count = torch.bincount(bins, minlength=N_BINS).float()
    conf = torch.bincount(bins, weights=confidence, minlength=N_BINS) / count.clamp(min=1)
    acc = torch.bincount(bins, weights=correct, minlength=N_BINS) / count.clamp(min=1)
    return {"confidence": conf.tolist(), "accuracy": acc.tolist(), "count": count.long().tolist()}


def _classification(
    report: InterpretationReport, collected: Collected, temperature: float | None
) -> None:
    kind, described = report.kind, collected.outputs
    raw, target = collected.raw, collected.target
    assert raw is not None and target is not None
    n = described.num_classes
    assert n is not None
    hard = _hard_targets(kind, target, raw)
    probs = _probabilities(described, raw, temperature)
    report.ece = expected_calibration_error(kind, probs, hard, n)
    if temperature is not None:
        report.ece_uncalibrated = expected_calibration_error(
            kind, _probabilities(described, raw, None), hard, n
        )
    report.plots["reliability"] = reliability_bins(kind, probs, hard)
    # torchmetrics warns when a class has no positive sample (its AUROC is undefined): the
    # report shows those as empty cells instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if kind == "multilabel":
            _multilabel(report, probs, hard, n, described.threshold)
        else:
            _per_class(report, collected.outputs, probs, hard)


def _per_class(
    report: InterpretationReport, described: Any, probs: torch.Tensor, hard: torch.Tensor
) -> None:
    kind, n = report.kind, described.num_classes
    if kind == "binary":
        predicted = (probs > described.threshold).long()
        scores = torch.stack([1 - probs, probs], -1)  # the two classes, one-vs-rest
    else:
        predicted, scores = probs.argmax(-1), probs
    classes = 2 if kind == "binary" else n
    matrix = tmc.multiclass_confusion_matrix(predicted, hard, classes)
    args = (predicted, hard, classes)
    precision = tmc.multiclass_precision(*args, average="none")
    recall = tmc.multiclass_recall(*args, average="none")
    f1 = tmc.multiclass_f1_score(*args, average="none")
    auroc = tmc.multiclass_auroc(scores, hard, classes, average="none")
    ap = tmc.multiclass_average_precision(scores, hard, classes, average="none")
    support = matrix.sum(1)
    _class_rows(report, precision, recall, f1, support, auroc, ap, support > 0)
    present = support > 0
    report.metrics["accuracy"] = float(matrix.diagonal().sum() / matrix.sum().clamp(min=1))
    report.metrics["macro_f1"] = float(f1[present].mean()) if present.any() else 0.0
    if kind == "binary":
        report.metrics["auroc"] = float(tmc.binary_auroc(probs, hard))
    elif present.all():
        report.metrics["auroc"] = float(auroc.mean())
    report.most_confused = _most_confused(report, matrix)
    report.plots["confusion"] = matrix
    if kind == "binary":
        _curves(report, {1: (probs, hard)})
    else:
        _curves(report, {c: (scores[:, c], (hard == c).long()) for c in range(n) if support[c] > 0})


def _class_rows(
    report: InterpretationReport,
    precision: torch.Tensor,
    recall: torch.Tensor,
    f1: torch.Tensor,
    support: torch.Tensor,
    auroc: torch.Tensor,
    ap: torch.Tensor,
    ranked: torch.Tensor,
) -> None:
    """``report.per_class`` from per-class scores; AUROC only where ``ranked`` (the class has
    positives and negatives), average precision where it has positives."""
    report.per_class = [
        _row(
            report,
            c,
            precision=float(precision[c]),
            recall=float(recall[c]),
            f1=float(f1[c]),
            support=int(support[c]),
            auroc=_float(auroc[c]) if ranked[c] else None,
            average_precision=_float(ap[c]) if support[c] > 0 else None,
        )
        for c in range(len(support))
    ]
    report.plots["auroc"] = {c: row["auroc"] for c, row in enumerate(report.per_class)}
    report.plots["ap"] = {c: row["average_precision"] for c, row in enumerate(report.per_class)}


def _multilabel(
    report: InterpretationReport, probs: torch.Tensor, hard: torch.Tensor, n: int, threshold: float
) -> None:
    args = (probs, hard, n)
    precision = tmc.multilabel_precision(*args, threshold=threshold, average="none")
    recall = tmc.multilabel_recall(*args, threshold=threshold, average="none")
    f1 = tmc.multilabel_f1_score(*args, threshold=threshold, average="none")
    auroc = tmc.multilabel_auroc(*args, average="none")
    ap = tmc.multilabel_average_precision(*args, average="none")
    support = hard.sum(0)
    _class_rows(
        report, precision, recall, f1, support, auroc, ap, (support > 0) & (support < len(hard))
    )
    report.metrics["exact_match"] = float(
        ((probs > threshold).long() == hard).all(1).float().mean()
    )
    report.metrics["macro_f1"] = float(f1.mean())
    _curves(
        report,
        {c: (probs[:, c], hard[:, c]) for c in range(n) if 0 < support[c] < len(hard)},
    )


def _curves(
    report: InterpretationReport, columns: dict[int, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Exact ROC and precision-recall curves (one-vs-rest) for at most MAX_CURVES classes: the
    ones with the lowest AUROC when there are more (exact curves sort once per class; binned ones
    loop over thresholds, far slower for large splits)."""
    auroc = report.plots.get("auroc", {})
    chosen = sorted(columns, key=lambda c: auroc.get(c) if auroc.get(c) is not None else 1.0)
    chosen = sorted(chosen[:MAX_CURVES])
    report.plots["roc"], report.plots["pr"] = {}, {}
    report.plots["curve_classes"] = len(columns)
    for c in chosen:
        scores, positive = columns[c]
        fpr, tpr, _ = tmc.binary_roc(scores, positive)
        precision, recall, _ = tmc.binary_precision_recall_curve(scores, positive)
        report.plots["roc"][c] = (fpr, tpr)
        report.plots["pr"][c] = (recall, precision)


def _most_confused(report: InterpretationReport, matrix: torch.Tensor) -> list[Confusion]:
    off = matrix.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    count = int((flat > 0).sum())
    values, cells = flat.topk(min(count, MAX_CONFUSED))
    n = matrix.shape[0]
    return [
        Confusion(_label(report, cell // n), _label(report, cell % n), int(value))
        for value, cell in zip(values.tolist(), cells.tolist(), strict=True)
    ]


def _segmentation(report: InterpretationReport, collected: Collected) -> None:
    matrix = collected.confusion
    assert matrix is not None
    tp = matrix.diagonal().double()
    true, predicted = matrix.sum(1).double(), matrix.sum(0).double()
    union = true + predicted - tp
    iou = tp / union.clamp(min=1)
    report.per_class = [
        _row(
            report,
            c,
            iou=float(iou[c]) if union[c] > 0 else None,
            precision=float(tp[c] / predicted[c]) if predicted[c] > 0 else None,
            recall=float(tp[c] / true[c]) if true[c] > 0 else None,
            support=int(true[c]),
        )
        for c in range(matrix.shape[0])
    ]
    present = union > 0
    report.metrics["miou"] = float(iou[present].mean()) if present.any() else 0.0
    report.metrics["pixel_accuracy"] = float(tp.sum() / matrix.sum().clamp(min=1))
    report.most_confused = _most_confused(report, matrix)
    report.plots["confusion"] = matrix


def _regression(report: InterpretationReport, collected: Collected) -> None:
    raw, target = collected.raw, collected.target
    assert raw is not None and target is not None
    pred, true = raw.float(), target.float().view(raw.shape)
    report.metrics["mae"] = float(tmr.mean_absolute_error(pred, true))
    report.metrics["rmse"] = float(tmr.mean_squared_error(pred, true)) ** 0.5
    if len(pred) > 1:
        flat = (pred.view(len(pred), -1), true.view(len(true), -1))
        report.metrics["r2"] = float(
            tmr.r2_score(*flat)
            if flat[0].shape[1] > 1
            else tmr.r2_score(flat[0].view(-1), flat[1].view(-1))
        )
    report.plots["values"] = (pred.flatten(), true.flatten())


def _value(tensor: torch.Tensor) -> Any:
    """One sample's value: a number, a short list, or for larger outputs (maps, sequences) a
    summary of their shape and mean, so a report of dense outputs stays small."""
    if tensor.numel() == 1:
        return tensor.item()
    if tensor.numel() <= 8:
        return tensor.flatten().tolist()
    return f"{'×'.join(map(str, tensor.shape))} values, mean {float(tensor.mean()):.4g}"


def _top_losses(
    report: InterpretationReport,
    collected: Collected,
    top_k: int,
    indices: list[int],
    paths: list[str | None] | None,
) -> list[dict[str, Any]]:
    kind, described = report.kind, collected.outputs
    rows = []
    raw = collected.worst_raw
    for rank, position in enumerate(collected.worst_positions.tolist()[:top_k]):
        row: dict[str, Any] = {
            "index": indices[position] if position < len(indices) else position,
            "position": position,
            "loss": float(collected.losses[position]),
        }
        target = collected.worst_targets[rank] if collected.worst_targets is not None else None
        out = raw[rank] if raw is not None else None
        if kind in ("multiclass", "binary") and out is not None and target is not None:
            probs = _probabilities(described, out[None], report.temperature)[0]
            if kind == "multiclass":
                confidence, predicted = probs.max(-1)
                true = _hard_targets(kind, target[None], out[None])[0]
            else:
                positive = float(probs) > described.threshold
                predicted = torch.tensor(int(positive))
                confidence = probs if positive else 1 - probs
                true = (target.view(-1)[0] > 0.5).long()
            row.update(
                target=_label(report, int(true)),
                pred=_label(report, int(predicted)),
                confidence=float(confidence),
            )
        elif kind == "multilabel" and out is not None and target is not None:
            probs = _probabilities(described, out[None], report.temperature)[0]
            row.update(
                target=[_label(report, c) for c in (target > 0.5).nonzero().flatten().tolist()],
                pred=[
                    _label(report, c)
                    for c in (probs > described.threshold).nonzero().flatten().tolist()
                ],
            )
        elif kind == "segmentation" and out is not None and target is not None:
            classes = range(described.num_classes)  # an ignored value (255, -100) is no class
            row.update(
                target=[_label(report, c) for c in target.unique().tolist() if c in classes],
                pred=[_label(report, c) for c in out.unique().tolist()],
            )
        elif out is not None and target is not None:
            row.update(target=_value(target.float()), pred=_value(out.float()))
        if paths is not None and position < len(paths):
            row["path"] = paths[position]
        rows.append(row)
    return rows


__all__ = [
    "Confusion",
    "InterpretationReport",
    "build_report",
    "expected_calibration_error",
    "reliability_bins",
]
