"""The checks that train a copy: gradient flow, one-batch overfit, the learning rate."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from lightkit.diagnosis.report import Finding, Report
from lightkit.tuning import lr_range_test


def _loss(module: Any, batch: Any) -> torch.Tensor:
    x, y = module.unpack_batch(batch)
    return module.compute_loss(module(x), y)


def check_gradients(module: Any, batch: Any) -> list[Finding]:
    """Gradient flow after one backward pass: missing, vanishing, exploding, non-finite."""
    module.train()
    module.zero_grad(set_to_none=True)
    loss = _loss(module, batch)
    if not loss.requires_grad:
        return [Finding(
            "gradients", "error", "the loss does not depend on any trainable parameter (it is detached)",
            "look for .detach(), .item(), torch.no_grad() or numpy round trips between the "
            "model's output and the loss",
        )]  # fmt: skip
    loss.backward()
    findings = []
    layers: dict[str, list[float]] = {}
    no_grad = []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            no_grad.append(name)
            continue
        layers.setdefault(name.rsplit(".", 1)[0], []).append(float(p.grad.norm()))
    if no_grad:
        shown = ", ".join(no_grad[:6]) + (" ..." if len(no_grad) > 6 else "")
        findings.append(Finding(
            "gradients", "warning" if layers else "error",
            f"{len(no_grad)} parameter tensor(s) get no gradient: {shown}",
            "unused layers, or a detach between them and the loss; for DDP also pass "
            "strategy='ddp_find_unused_parameters_true'",
        ))  # fmt: skip
    norms = {name: math.sqrt(sum(v * v for v in values)) for name, values in layers.items()}
    bad = [n for n, v in norms.items() if not math.isfinite(v)]
    if bad:
        findings.append(Finding("gradients", "error", f"non-finite gradients in {', '.join(bad[:6])}",
                                "lower the learning rate, check the loss for log(0) or division by zero"))  # fmt: skip
        return findings
    zero = [n for n, v in norms.items() if v == 0]
    huge = [n for n, v in norms.items() if v > 1e3]
    if zero:
        findings.append(Finding(
            "gradients", "warning", f"all-zero gradients in {', '.join(zero[:6])} (vanishing)",
            "dead ReLUs or saturated activations: try normalization layers, another init, a "
            "lower learning rate",
        ))  # fmt: skip
    if huge:
        findings.append(Finding(
            "gradients", "warning",
            "exploding gradients: " + ", ".join(f"{n} {norms[n]:.3g}" for n in huge[:6]),
            "gradient_clip_val=1.0, a lower learning rate, standardized inputs and targets",
        ))  # fmt: skip
    if norms and not zero and not huge:
        low, high = min(norms.values()), max(norms.values())
        findings.append(
            Finding(
                "gradients", "ok", f"{len(norms)} layers, gradient norms {low:.2g} to {high:.2g}"
            )
        )
    return findings


def overfit_one_batch(module: Any, batch: Any, steps: int) -> Finding:
    """Train ``module`` on one batch with Adam: does the loss fall below a tenth of its start?"""
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return Finding(
            "overfit", "error", "the model has no trainable parameters", "check requires_grad"
        )
    optimizer = torch.optim.Adam(params, lr=3e-3)
    first = last = None
    best = math.inf
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(module, batch)
        if not loss.requires_grad:
            return Finding("overfit", "error", "the loss is detached from the parameters: nothing can learn",
                           "remove the .detach()/no_grad between model output and loss")  # fmt: skip
        value = float(loss.detach())
        if not math.isfinite(value):
            return Finding("overfit", "error", f"the loss became {value} while overfitting one batch",
                           "check the loss for log(0), the inputs for extreme values")  # fmt: skip
        first = value if first is None else first
        last, best = value, min(best, value)
        if best <= 0.1 * first or best < 1e-3:
            break
        loss.backward()
        optimizer.step()
    assert first is not None and last is not None
    if best <= 0.1 * first or best < 1e-3:
        return Finding("overfit", "ok", f"one batch overfits: loss {first:.4g} -> {best:.4g}")
    if abs(best - first) <= 1e-6 * max(1.0, abs(first)):
        return Finding(
            "overfit", "error", f"the loss did not move in {steps} steps on one batch ({first:.4g})",
            "gradients do not reach the parameters: a detached loss, frozen layers, or an output "
            "that does not depend on the input",
        )  # fmt: skip
    return Finding(
        "overfit", "error",
        f"could not overfit one batch: loss {first:.4g} -> {best:.4g} in {steps} steps",
        "the model or the loss wiring is suspect: check that outputs and targets match the "
        "loss (logits, not probabilities; class indices vs one-hot), and that the model can "
        "represent the task (capacity, no bottleneck)",
    )  # fmt: skip


def _configured_lr(module: Any) -> float | None:
    spec = getattr(module, "hparams", {}).get("optimizer")
    if isinstance(spec, dict):
        lr = spec.get("init_args", {}).get("lr")
        return float(lr) if isinstance(lr, (int, float)) else None
    return None


def _lowest_loss_lr(lrs: list[float], losses: list[float], beta: float = 0.98) -> float | None:
    """The learning rate of the lowest smoothed loss of a range test.

    Lightning's range test debiases its running average with one step too many, which pulls its
    first values down by up to half; undo that before looking for the minimum, and skip the
    first few points, where the average has seen too little to mean anything.
    """
    fixed = [
        (lr, loss * (1 - beta ** (k + 2)) / (1 - beta ** (k + 1)))
        for k, (lr, loss) in enumerate(zip(lrs, losses, strict=False))
        if math.isfinite(loss)
    ][5:]
    return min(fixed, key=lambda pair: pair[1])[0] if fixed else None


def train_at_configured_lr(module: Any, batches: list[Any], steps: int = 60) -> Finding | None:
    """Train a copy with the module's own optimizer for a few dozen steps: does the loss fall?

    The range test can mislead (on unstandardized data its loss curve is noise, and its lowest
    point may sit at the highest rate); this asks the question directly, with the configured
    optimizer and learning rate on the first training batches, in turn.
    """
    factory = getattr(module, "optimizer_factory", None)
    params = [p for p in module.parameters() if p.requires_grad]
    if not callable(factory) or not params:
        return None
    module.train()
    optimizer = factory(params)
    losses = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(module, batches[step % len(batches)])
        value = float(loss.detach())
        if not math.isfinite(value):
            return Finding(
                "learning rate", "error",
                f"training with the configured optimizer diverged: the loss became {value} at "
                f"step {step + 1}",
                "lower the learning rate (the range test below suggests one), standardize the "
                "inputs, or clip gradients (gradient_clip_val)",
            )  # fmt: skip
        losses.append(value)
        loss.backward()
        optimizer.step()
    window = min(len(batches), steps // 3)  # whole passes over the batches: like with like
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    configured = _configured_lr(module)
    where = f" (lr={configured:.2g})" if configured is not None else ""
    peak = max(losses[1:])
    if peak > 10 * max(losses[0], 1e-8):
        return Finding(
            "learning rate", "error",
            f"training with the configured optimizer{where} is unstable: the loss jumped from "
            f"{losses[0]:.4g} to {peak:.4g} within {steps} steps",
            "lower the learning rate (the range test below suggests one), standardize the "
            "inputs, or clip gradients (gradient_clip_val)",
        )  # fmt: skip
    if last >= first:
        return Finding(
            "learning rate", "error",
            f"training with the configured optimizer{where} does not lower the loss: mean "
            f"{first:.4g} over the first {window} steps, {last:.4g} over the last {window}",
            "lower the learning rate (the range test below suggests one); standardize the "
            "inputs if the data check warns about their scale",
        )  # fmt: skip
    return Finding(
        "learning rate", "ok",
        f"training with the configured optimizer{where} lowers the loss: {first:.4g} -> "
        f"{last:.4g} in {steps} steps",
    )  # fmt: skip


def check_lr(
    module: Any, datamodule: Any, report: Report, root: Any, seed: int, trial: Finding | None
) -> list[Finding]:
    """One finding from the range test and the trial run at the configured rate (if any)."""
    kwargs = {"default_root_dir": root, "seed": seed}
    try:
        found = lr_range_test(
            copy.deepcopy(module),
            datamodule,
            min_lr=1e-6,
            max_lr=10.0,
            num_training=80,
            trainer_kwargs=kwargs,
        )
    except ValueError as err:
        return [trial or Finding("learning rate", "warning", f"no range test: {err}")]
    lr, plot = found.suggestion, found.plot
    report.suggested_lr, report.lr_plot = lr, plot
    # Beyond the learning rate of the lowest (smoothed) loss, the loss climbs: training there
    # is unstable.
    lowest = _lowest_loss_lr(found.lrs, found.losses) or lr
    configured = _configured_lr(module)
    seen = f"suggested {lr:.2g}, lowest loss at {lowest:.2g} (plot: {plot})"
    problems = []
    if configured is not None and configured > 3 * lowest:
        problems.append(
            f"the configured learning rate {configured:.2g} is far above where the loss stops "
            "falling"
        )
    failed = trial is not None and trial.severity == "error"
    if failed:
        problems.append(trial.message)
    if not problems:
        said = [f"configured {configured:.2g}"] if configured is not None else []
        said += [trial.message] if trial is not None else []
        return [Finding("learning rate", "ok", "; ".join([*said, seen]))]
    severity = "error" if failed or configured > 30 * lowest else "warning"
    return [Finding(
        "learning rate", severity, "; ".join([*problems, seen]),
        f"optimizer=lk.optim.<name>(lr={lr:.2g}), or a warmup scheduler (lk.optim.warmup_cosine)"
        + ("; standardize the inputs, or clip gradients (gradient_clip_val)" if failed else ""),
    )]  # fmt: skip


__all__ = ["check_gradients", "check_lr", "overfit_one_batch", "train_at_configured_lr"]
