"""The activations check: the share of units per activation call that never fire or saturate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightkit.diagnosis.report import Finding

_SATURATE = "saturate on >= 90% of their outputs"

# Watched activation modules: what a stuck unit does, the share of its outputs that may be live
# while it still counts as stuck, and where an output is stuck (no gradient through it).
_STUCK: dict[type, tuple[str, float, Callable[[Any, torch.Tensor], torch.Tensor]]] = {
    nn.ReLU: ("never fire", 0.0, lambda m, out: out <= 0),
    nn.ReLU6: ("never fire", 0.0, lambda m, out: (out <= 0) | (out >= 6)),
    nn.Hardtanh: (_SATURATE, 0.1, lambda m, out: (out <= m.min_val) | (out >= m.max_val)),
    nn.Sigmoid: (_SATURATE, 0.1, lambda m, out: (out < 0.01) | (out > 0.99)),
    nn.Tanh: (_SATURATE, 0.1, lambda m, out: out.abs() > 0.99),
}
# After these, a 3-D output is N×C×L (units along dim 1); after anything else N×L×features.
_CHANNELS_FIRST_3D = (
    nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.GroupNorm,
    nn.MaxPool1d, nn.AvgPool1d,
)  # fmt: skip


def check_activations(module: Any, batches: list[Any]) -> Finding:
    """The share of units per activation call that never fire or are (almost) always saturated."""
    watched = {}
    for name, m in module.named_modules():
        kind = next((k for k in _STUCK if isinstance(m, k)), None)  # ReLU6 before Hardtanh
        if kind is not None:
            watched[name] = (type(m).__name__, *_STUCK[kind])
    live: dict[tuple[str, int], tuple[torch.Tensor, int] | None] = {}  # (name, call): per unit
    calls: dict[str, int] = {}
    state: dict[str, nn.Module] = {}

    def after_activation(name: str, m: nn.Module, args: Any, out: Any) -> None:
        calls[name] = call = calls.get(name, 0) + 1
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.ndim == 0:
            return
        unstuck = ~watched[name][3](m, out.detach())
        if out.ndim == 1:  # one number per sample: a single unit
            per_unit = unstuck.reshape(1, -1)
        else:
            channels_first = out.ndim != 3 or isinstance(state.get("previous"), _CHANNELS_FIRST_3D)
            dim = 1 if channels_first else 2
            per_unit = unstuck.movedim(dim, 0).reshape(out.shape[dim], -1)
        key = (name, call)
        seen = live.get(key, (torch.zeros(len(per_unit)), 0))
        if seen is None or seen[0].shape != per_unit.shape[:1]:
            live[key] = None  # the units changed between batches: cannot count them
        else:
            live[key] = (seen[0] + per_unit.sum(1), seen[1] + per_unit.shape[1])

    def after_leaf(m: nn.Module, args: Any, out: Any) -> None:
        state["previous"] = m  # the last layer before an activation: which axis holds units

    handles = []
    for name, m in module.named_modules():
        if name in watched:
            handles.append(m.register_forward_hook(functools.partial(after_activation, name)))
        elif not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(after_leaf))
    module.train()  # as training starts: BatchNorm normalizes with the batch's statistics
    samples = 0
    try:
        with torch.no_grad():
            for batch in batches:
                x, _ = module.unpack_batch(batch)
                calls.clear()
                state.clear()
                module(x)
                samples += len(x) if isinstance(x, torch.Tensor) else 0
    finally:
        for handle in handles:
            handle.remove()
    shares = []  # (share of stuck units, units, label, verb)
    called_again = {name for name, call in live if call > 1}
    for (name, call), counts in live.items():
        if counts is None:
            continue
        kind, verb, allowed, _ = watched[name]
        stuck = counts[0] <= allowed * counts[1]
        label = f"{name} ({kind}" + (f", call {call})" if name in called_again else ")")
        shares.append((float(stuck.float().mean()), len(stuck), label, verb))
    if not shares:
        return Finding("activations", "ok", "no nn.ReLU, ReLU6, Hardtanh, Sigmoid or Tanh module "
                       "ran (functional calls such as F.relu cannot be watched)")  # fmt: skip
    shares.sort(key=lambda share: -share[0])
    bad = [share for share in shares if share[0] > 0.5]
    over = f" over {samples} samples" if samples else ""
    if not bad:
        share, _, label, verb = shares[0]
        worst = (
            f"at most {share:.0%} of a layer's units {verb}, in {label}"
            if share
            else "every unit is live"
        )
        return Finding("activations", "ok", f"{len(shares)} activation call(s){over}: {worst}")
    listed = "; ".join(f"{label}: {s:.0%} of {n} units {verb}" for s, n, label, verb in bad[:4])
    more = f"; and {len(bad) - 4} more" if len(bad) > 4 else ""
    advice = []
    if any(verb == "never fire" for *_, verb in bad):
        advice.append(
            "dead ReLUs: a lower learning rate, He init (nn.init.kaiming_normal_(w, "
            "nonlinearity='relu')) with zero biases, LeakyReLU or GELU, a normalization layer "
            "before the activation"
        )
    if any(verb == _SATURATE for *_, verb in bad):
        advice.append(
            "saturated units: Xavier init (nn.init.xavier_uniform_), smaller weights, a "
            "normalization layer before the activation"
        )
    return Finding(
        "activations", "warning", f"{listed}{more} ({samples or 'all'} samples, train mode)",
        "; ".join([*advice, "standardized inputs"]),
    )  # fmt: skip


__all__ = ["check_activations"]
