"""The batch_independence check: does a sample's output depend on other samples' inputs?"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightkit.diagnosis.report import Finding


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors in a net's output: a tensor, or tuples, lists and dicts of them."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def _per_sample(module: Any, x: torch.Tensor, detach: bool = True) -> list[torch.Tensor]:
    """The float outputs of ``module(x)`` with one row per sample, flattened to ``N×-1``."""
    n = len(x)
    outs = _tensors(module(x))
    return [
        (t.detach() if detach else t).float().reshape(n, -1)
        for t in outs
        if t.is_floating_point() and t.ndim >= 1 and t.shape[0] == n and t.numel()
    ]


def check_batch_independence(module: Any, batch: Any) -> Finding:
    """Perturb sample 0's input: do other samples' outputs move? Do gradients cross samples?"""
    name = "batch_independence"
    x, _ = module.unpack_batch(batch)
    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        return Finding(name, "ok", f"skipped: the inputs are a {type(x).__name__}, not a tensor")
    n = len(x)
    if n < 2:
        return Finding(name, "ok", "skipped: the first training batch has a single sample")
    module.eval()  # BatchNorm in train mode mixes samples by design; eval mode must not
    with torch.no_grad():
        before, again = _per_sample(module, x), _per_sample(module, x)
    if not before:
        return Finding(name, "ok", "skipped: no output has the batch size as its first dimension")
    scale = max(float(t.abs().max()) for t in before)
    tolerance = 1e-5 * scale + 1e-6
    if any(float((a - b).abs().max()) > tolerance for a, b in zip(before, again, strict=True)):
        return Finding(
            name, "warning",
            "skipped: in eval mode, two calls on the same batch give different outputs",
            "a random layer stays active in eval mode (dropout called with training=True, "
            "noise); if that is meant (Monte Carlo dropout), ignore this",
        )  # fmt: skip
    changed = x.clone()
    if x.is_floating_point():
        changed[0] += torch.randn_like(x[0]) * (float(x.float().std()) or 1.0)
    else:  # token ids and the like: put another sample's input in sample 0's place
        other = next((i for i in range(1, n) if not torch.equal(x[i], x[0])), None)
        if other is None:
            return Finding(name, "ok", f"skipped: the {n} inputs of the first batch are identical")
        changed[0] = x[other]
    with torch.no_grad():
        after = _per_sample(module, changed)
    moved = torch.stack([(a - b).abs().amax(1) for a, b in zip(before, after, strict=True)]).amax(0)
    mixed = (moved[1:] > tolerance).nonzero().flatten() + 1
    if len(mixed):
        worst = int(mixed[moved[mixed].argmax()])
        return Finding(
            name, "error",
            f"the output of sample {worst} changed (by {float(moved[worst]):.3g}; outputs up to "
            f"{scale:.3g}) when only sample 0's input changed ({len(mixed)} of the {n - 1} other "
            "samples' outputs changed): the forward mixes samples across the batch axis "
            "(a norm or softmax over dim 0, a wrong view/reshape, ...)",
            _mixing_advice(module),
        )  # fmt: skip
    seen = f"no output changes when another sample's input does ({n} samples, eval mode)"
    if not x.is_floating_point():
        return Finding(name, "ok", seen + " (no gradient check: the inputs are not floats)")
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        outs = _per_sample(module, inputs, detach=False)
        last = n - 1  # the other end of the batch from the sample perturbed above
        projected = sum((t[last] * torch.randn_like(t[last])).sum() for t in outs)
        grad = None
        if isinstance(projected, torch.Tensor) and projected.requires_grad:
            (grad,) = torch.autograd.grad(projected, inputs, allow_unused=True)
    if grad is None:
        return Finding(name, "ok", seen + " (no gradient check: no gradient reaches the inputs)")
    reach = grad.detach().float().reshape(n, -1).abs().amax(1)
    crossed = (reach > 1e-5 * float(reach[last]) + 1e-10).nonzero().flatten()
    crossed = crossed[crossed != last]
    if len(crossed):
        worst = int(crossed[reach[crossed].argmax()])
        return Finding(
            name, "error",
            f"the gradient of sample {last}'s output reaches the inputs of {len(crossed)} other "
            f"sample(s) (sample {worst}: up to {float(reach[worst]):.3g}, its own input: "
            f"{float(reach[last]):.3g}): the model mixes samples across the batch axis",
            _mixing_advice(module),
        )  # fmt: skip
    return Finding(name, "ok", seen + "; no gradient crosses between samples")


def _mixing_advice(module: nn.Module) -> str:
    advice = (
        "normalize over features, not the batch (dim=1 or -1, nn.LayerNorm); flatten with "
        "x.flatten(1) or x.reshape(len(x), -1), not x.view(-1, k); check transposes and "
        "permutes that move the batch axis, and batch_first= of nn.MultiheadAttention, nn.LSTM "
        "and nn.TransformerEncoderLayer"
    )
    if any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.track_running_stats
        for m in module.modules()
    ):
        advice += (
            "; BatchNorm with track_running_stats=False uses the batch's statistics in eval "
            "mode too, so a prediction depends on the rest of its batch"
        )
    return advice


__all__ = ["check_batch_independence"]
