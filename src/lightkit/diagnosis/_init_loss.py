"""The init_loss check: the loss of the untrained outputs against ln C and the label entropy."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightkit.diagnosis.report import Finding
from lightkit.outputs import DescribedTask


def check_init_loss(module: Any, batches: list[Any]) -> Finding:
    """The loss of the untrained outputs against ln C (uniform) and the label entropy (prior)."""
    described = module.task_outputs() if isinstance(module, DescribedTask) else None
    kind = described.kind if described is not None else "values"
    module.train()  # where the first optimizer steps start; BatchNorm uses batch statistics
    pairs = []
    with torch.no_grad():
        for batch in batches:
            x, y = module.unpack_batch(batch)
            out = module(x)
            pairs.append((out, y, module.compute_loss(out, y) if kind == "values" else None))
    where = f"mean over {len(batches)} batch(es), train mode"
    if kind == "values":
        loss = sum(float(p[2].detach()) for p in pairs) / len(pairs)
        return Finding("init_loss", "ok", f"loss at init {loss:.4g} ({where}); no expected "
                       "value for outputs of kind 'values'")  # fmt: skip
    assert described is not None and described.num_classes is not None
    plain = _plain_init_loss(kind, described.num_classes, pairs)
    if isinstance(plain, str):
        return Finding("init_loss", "ok", f"not compared: {plain}")
    loss, uniform, prior, spread, rates = plain
    ln = "ln 2" if kind in ("binary", "multilabel") else f"ln {described.num_classes}"
    per = " per label" if kind in ("binary", "multilabel") else ""
    seen = (
        f"{loss:.4g}{per} ({where}); uniform outputs give {ln} = {uniform:.4g}, outputs at the "
        f"label frequencies {prior:.4g}"
    )
    if not math.isfinite(loss):
        return Finding("init_loss", "error", f"the untrained outputs are not finite: loss {seen}",
                       "look for log(0), division by zero or overflow in the forward")  # fmt: skip
    if loss <= 2 * uniform:  # default inits land within a few percent of ln C
        below = " (below the label entropy: pretrained?)" if loss < 0.5 * prior else ""
        return Finding("init_loss", "ok", f"loss at init {seen}{below}")
    head = _output_layer(module, rates.numel() if kind != "binary" else 1)
    shown = ", ".join(f"{r:.2f}" for r in rates.tolist()) if rates.numel() <= 10 else None
    if kind in ("multiclass", "segmentation"):
        bias = f"{head}.bias.data = torch.log(prior) with prior the class frequencies" + (
            f" (here torch.tensor([{shown}]))" if shown else ""
        )
    else:
        bias = f"{head}.bias.data = torch.logit(p) with p the positive rate per label" + (
            f" (here p = torch.tensor([{shown}]))" if shown else ""
        )
    return Finding(
        "init_loss", "warning",
        f"loss at init {seen}: {loss / uniform:.1f}× the uniform loss, the untrained outputs "
        f"are confidently wrong (logits spread {spread:.3g}: a large output layer, or large "
        "inputs)",
        f"start the output layer small and at the prior: nn.init.zeros_({head}.weight) (or "
        f"scale it by 0.01) and {bias}; standardize the inputs; make sure the outputs are raw "
        "logits (not scaled, exponentiated or probabilities)",
    )  # fmt: skip


def _plain_init_loss(
    kind: str, num_classes: int, pairs: list[tuple[Any, Any, Any]]
) -> tuple[float, float, float, float, torch.Tensor] | str:
    """(loss, uniform loss, label-entropy loss, logit spread, label rates) or why not compared.

    Plain cross-entropy (multiclass, segmentation) or binary cross-entropy (binary, multilabel):
    the module's own loss may add label smoothing, weights, focal or Dice terms, which move the
    number away from ``ln C``; the question here is only what the untrained outputs say.
    """
    logits, labels = [], []
    for out, y, _ in pairs:
        if not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor):
            return "the outputs or targets are not tensors"
        if kind == "multiclass" and out.ndim == 2 and y.shape == out.shape[:1]:
            logits.append(out)
            labels.append(y.long())
        elif kind == "segmentation" and out.ndim >= 3 and y.shape == (len(out), *out.shape[2:]):
            logits.append(out.movedim(1, -1).reshape(-1, out.shape[1]))
            labels.append(y.long().reshape(-1))
        elif kind in ("binary", "multilabel") and out.numel() == y.numel():
            width = 1 if kind == "binary" else num_classes
            logits.append(out.reshape(-1, width))
            labels.append(y.reshape(-1, width).float())
        else:
            shapes = f"outputs {tuple(out.shape)}, targets {tuple(y.shape)}"
            return f"{shapes} are not one label per sample (or pixel) of a {kind} task"
    z, t = torch.cat(logits).detach().float(), torch.cat(labels)
    if kind in ("multiclass", "segmentation"):
        if z.shape[1] != num_classes:
            return f"the outputs have {z.shape[1]} classes, the task {num_classes}"
        keep = (t >= 0) & (t < num_classes)  # ignore_index and the like
        z, t = z[keep], t[keep]
        if not len(t):
            return "no labelled samples"
        rates = torch.bincount(t, minlength=num_classes).float() / len(t)
        prior = float(-torch.xlogy(rates, rates).sum())
        loss = float(F.cross_entropy(z, t))
        return loss, math.log(num_classes), prior, float(z.std(1).mean()), rates
    rates = t.mean(0)
    prior = float(-(torch.xlogy(rates, rates) + torch.xlogy(1 - rates, 1 - rates)).mean())
    loss = float(F.binary_cross_entropy_with_logits(z, t))
    return loss, math.log(2), prior, float(z.pow(2).mean().sqrt()), rates


def _output_layer(module: nn.Module, width: int) -> str:
    """The name of the last Linear or convolution layer with ``width`` outputs, for advice."""
    found = "head"
    for name, m in module.named_modules():
        outputs = getattr(m, "out_features", None) or getattr(m, "out_channels", None)
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and outputs == width:
            found = name
    return found


__all__ = ["check_init_loss"]
