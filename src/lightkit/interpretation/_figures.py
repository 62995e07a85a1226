"""The pictures of an InterpretationReport, drawn with matplotlib's object API (no pyplot state)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from lightkit.callbacks.figures import PALETTE, segmentation_image

# An InterpretationReport (not imported: report.py imports this module to draw).
Report = Any

MAX_ANNOTATED = 15  # confusion matrix cells show counts up to this many classes


def _pixels(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def draw_figures(report: Report) -> dict[str, np.ndarray]:
    """Every picture the report has data for: name -> ``H×W×3`` uint8 RGB."""
    plots = report.plots
    drawn: dict[str, np.ndarray] = {}
    if "confusion" in plots:
        drawn["confusion_matrix"] = _pixels(_confusion(report, plots["confusion"]))
    if plots.get("roc"):
        drawn["roc"] = _pixels(_curves(report, "roc"))
        drawn["precision_recall"] = _pixels(_curves(report, "pr"))
    if "reliability" in plots:
        drawn["reliability"] = _pixels(_reliability(report, plots["reliability"]))
    if report.kind == "segmentation":
        drawn["per_class_iou"] = _pixels(_iou_bars(report))
        worst = plots.get("worst")
        if worst is not None:
            drawn["worst"] = _pixels(_worst_segmentation(report, *worst))
    elif "worst_images" in plots:
        drawn["top_losses"] = _pixels(_top_loss_grid(report, plots["worst_images"]))
    if "values" in plots:
        pred, true = plots["values"]
        drawn["predicted_vs_true"] = _pixels(_predicted_vs_true(report, pred, true))
        drawn["residuals"] = _pixels(_residuals(report, pred, true))
    return drawn


def _name(report: Report, index: int, width: int = 24) -> str:
    """``"<index> <name>"`` (the index alone without names, or when the name is the index),
    long names cut to ``width`` characters."""
    names = report.class_names
    if names is None or names[index] == str(index):
        return str(index)
    name = names[index] if len(names[index]) <= width else names[index][: width - 1] + "…"
    return f"{index} {name}"


def _confusion(report: Report, matrix: torch.Tensor) -> Figure:
    n = matrix.shape[0]
    counts = matrix.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    side = min(16.0, max(5.0, 0.55 * n + 2.5))
    figure = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, format=PercentFormatter(1.0))
    bar.set_label("share of the true class (row-normalised)")
    unit = " pixels" if report.kind == "segmentation" else ""
    axes.set_title(f"Confusion matrix, {report.split} split (cells: count{unit} and row share)")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    labels = [_name(report, i) for i in range(n)]
    if n <= 40:
        axes.set_xticks(range(n), labels, rotation=45 if report.class_names else 0, ha="right")
        axes.set_yticks(range(n), labels)
    if n <= MAX_ANNOTATED:
        for t in range(n):
            for p in range(n):
                count = int(counts[t, p])
                if count == 0:  # faint, so the errors stand out
                    axes.text(p, t, "0", ha="center", va="center", color="#b0b0b0", fontsize=8)
                    continue
                colour = "white" if rates[t, p] > 0.5 else "black"
                axes.text(p, t, f"{count:,}\n{rates[t, p]:.0%}", ha="center", va="center",
                          color=colour, fontsize=8)  # fmt: skip
    return figure


def _curves(report: Report, which: str) -> Figure:
    roc = which == "roc"
    curves = report.plots[which]
    score = "auroc" if roc else "ap"
    figure = Figure(figsize=(9.0, 5.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    chosen = sorted(curves)
    for c in chosen:
        x, y = curves[c]
        value = report.plots.get(score, {}).get(c)
        label = _name(report, c) + (f" ({score.upper()} {value:.3f})" if value is not None else "")
        axes.plot(x.numpy(), y.numpy(), label=label, linewidth=1.5)
    if roc:
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate (recall)")
        title = "ROC curves"
    else:
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        title = "Precision-recall curves"
    total = report.plots.get("curve_classes", len(curves))
    extra = f"\n({len(chosen)} classes of {total}: the lowest AUROC)" if len(chosen) < total else ""
    axes.set_title(f"{title}, {report.split} split, one-vs-rest{extra}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="class")
    return figure


def _reliability(report: Report, bins: dict[str, list]) -> Figure:
    figure = Figure(figsize=(6.5, 6.0), dpi=100, layout="constrained")
    axes, counts = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    width = 1.0 / len(bins["count"])
    centres = (np.arange(len(bins["count"])) + 0.5) * width
    filled = np.array(bins["count"]) > 0
    accuracy = np.array(bins["accuracy"])
    axes.bar(centres[filled], accuracy[filled], width=width * 0.95, color="#3b75af",
             edgecolor="black", linewidth=0.5, label="observed (per confidence bin)")  # fmt: skip
    confidence = np.array(bins["confidence"])
    gap = confidence - accuracy
    axes.bar(centres[filled], np.abs(gap)[filled], bottom=np.minimum(accuracy, confidence)[filled],
             width=width * 0.95, fill=False, hatch="//", edgecolor="#c0141a", linewidth=0.8,
             label="gap to the mean confidence")  # fmt: skip
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    multiclass = report.kind == "multiclass"
    axes.set_ylabel("accuracy" if multiclass else "observed frequency of positives")
    text = f"ECE {report.ece:.3f}" if report.ece is not None else ""
    if report.ece_uncalibrated is not None:
        text += f"\n(without the temperature {report.temperature:.3g}: ECE {report.ece_uncalibrated:.3f})"
    axes.set_title(f"Reliability diagram, {report.split} split: {text}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    counts.bar(centres, bins["count"], width=width * 0.95, color="grey")
    counts.set_xlabel(
        "confidence (top-class probability)" if multiclass else "predicted probability"
    )
    counts.set_ylabel("samples")
    return figure


def _as_image(x: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """One ``C×H×W`` input as something imshow draws: min-max scaled, grey for one channel."""
    x = x.float()
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-8)
    if x.shape[0] == 1:
        return x[0].numpy(), "gray"
    return x[:3].permute(1, 2, 0).numpy(), None


def _short(value: Any, width: int = 28) -> str:
    """A label (or list of labels) as a title line of at most ``width`` characters."""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _top_loss_grid(report: Report, images: torch.Tensor) -> Figure:
    rows = report.top_losses[: len(images)]
    columns = min(4, len(rows))
    lines = (len(rows) + columns - 1) // columns
    figure = Figure(figsize=(3.0 * columns, 3.3 * lines + 0.5), dpi=100, layout="constrained")
    figure.suptitle(
        f"Highest-loss samples, {report.split} split (#index in your data; red: wrong, green: right)"
    )
    grid = figure.subplots(lines, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, row, image in zip(grid.flat, rows, images, strict=False):
        pixels, cmap = _as_image(image)
        axes.imshow(pixels, cmap=cmap, interpolation="nearest")
        right = row.get("target") == row.get("pred")
        title = (
            f"#{row['index']}  loss {row['loss']:.2f}\ntrue: {_short(row.get('target'))}\n"
            f"pred: {_short(row.get('pred'))}"
        )
        if row.get("confidence") is not None:
            title += f" ({row['confidence']:.0%})"
        axes.set_title(title, fontsize=9, color="#1a7f33" if right else "#c0141a", loc="left")
    return figure


def _iou_bars(report: Report) -> Figure:
    rows = report.per_class
    figure = Figure(figsize=(max(5.0, 0.5 * len(rows) + 2), 4.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    values = [r["iou"] if r["iou"] is not None else 0.0 for r in rows]
    labels = [_name(report, r["class"]) for r in rows]
    bars = axes.bar(range(len(rows)), values, color="#3b75af")
    axes.bar_label(bars, labels=[f"{v:.2f}" if r["iou"] is not None else "absent"
                                 for v, r in zip(values, rows, strict=True)], fontsize=8)  # fmt: skip
    axes.set_xticks(range(len(rows)), labels, rotation=45 if report.class_names else 0, ha="right")
    axes.set_xlabel("class")
    axes.set_ylabel("IoU (intersection over union)")
    axes.set_ylim(0, 1.1)
    axes.set_title(
        f"Per-class IoU, {report.split} split (mIoU {report.metrics.get('miou', 0):.3f})"
    )
    axes.grid(axis="y", alpha=0.3)
    return figure


def _worst_segmentation(
    report: Report, images: torch.Tensor, masks: torch.Tensor, predicted: torch.Tensor
) -> Figure:
    n = report.plots.get("num_classes", int(max(masks.max(), predicted.max())) + 1)
    grid = segmentation_image(images, masks.long(), predicted.long(), n)
    figure = Figure(figsize=(7.5, 2.6 * len(images) + 0.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    legend = [
        Patch(color=PALETTE[c % len(PALETTE)].tolist(), label=_name(report, c)) for c in range(n)
    ]
    axes.legend(handles=legend, title="mask colour: class", loc="upper center",
                bbox_to_anchor=(0.5, -0.06), ncols=min(n, 3), fontsize=8)  # fmt: skip
    axes.set_xticks([grid.shape[-1] * (k + 0.5) / 3 for k in range(3)],
                    ["image", "true mask", "predicted mask"])  # fmt: skip
    rows = report.top_losses[: len(images)]
    axes.set_yticks([grid.shape[-2] * (k + 0.5) / len(rows) for k in range(len(rows))],
                    [f"#{r['index']}\nloss {r['loss']:.2f}" for r in rows])  # fmt: skip
    axes.set_title(f"Highest-loss images, {report.split} split (masks over the image)")
    return figure


def _predicted_vs_true(report: Report, pred: torch.Tensor, true: torch.Tensor) -> Figure:
    figure = Figure(figsize=(6.0, 5.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(true.numpy(), pred.numpy(), s=8, alpha=0.5, label="samples")
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect prediction")
    axes.set_xlabel("true value")
    axes.set_ylabel("predicted value")
    metrics = report.metrics
    axes.set_title(
        f"Predicted vs true, {report.split} split (MAE {metrics.get('mae', 0):.3g}"
        + (f", R² {metrics['r2']:.3f}" if "r2" in metrics else "")
        + ")"
    )
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def _residuals(report: Report, pred: torch.Tensor, true: torch.Tensor) -> Figure:
    figure = Figure(figsize=(6.0, 5.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(pred.numpy(), (true - pred).numpy(), s=8, alpha=0.5, label="samples")
    axes.axhline(0.0, linestyle="--", color="grey", label="no error")
    axes.set_xlabel("predicted value")
    axes.set_ylabel("residual (true - predicted)")
    axes.set_title(f"Residuals, {report.split} split")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    return figure


__all__ = ["draw_figures"]
