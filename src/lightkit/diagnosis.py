"""diagnose(): "my loss does not go down" checks: data, one-batch overfit, gradient flow, LR range."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lightkit._validation import check_bool, check_instance, check_int, check_path, check_seed
from lightkit.outputs import DescribedTask
from lightkit.tuning import lr_range_test

SEVERITIES = ("ok", "warning", "error")


@dataclass
class Finding:
    """One result of :func:`diagnose`: which check, how bad, what was seen and what to try."""

    check: str
    severity: str
    message: str
    advice: str = ""

    def __str__(self) -> str:
        mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[self.severity]
        text = f"[{mark}] {self.check}: {self.message}"
        return text + (f"\n       try: {self.advice}" if self.advice else "")


@dataclass
class Report:
    """What :func:`diagnose` found. ``ok`` is False when any finding is an error."""

    findings: list[Finding] = field(default_factory=list)
    suggested_lr: float | None = None
    lr_plot: Path | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def problems(self) -> list[Finding]:
        """The warnings and errors."""
        return [f for f in self.findings if f.severity != "ok"]

    def __str__(self) -> str:
        head = "lightkit diagnose: " + (
            "no errors"
            if self.ok
            else f"{sum(f.severity == 'error' for f in self.findings)} error(s)"
        )
        warnings = sum(f.severity == "warning" for f in self.findings)
        if warnings:
            head += f", {warnings} warning(s)"
        return "\n".join([head, *map(str, self.findings)])


def diagnose(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    overfit_steps: int = 200,
    data_batches: int = 20,
    lr_test: bool = True,
    default_root_dir: str | Path = "runs",
    seed: int = 0,
) -> Report:
    """Check a model and its data for the usual reasons training fails, and say what to try.

    The module itself is not changed: every check trains a copy.

    * **data** (up to ``data_batches`` training batches): NaN or Inf in inputs or targets, the
      task's own label checks, constant input features, input scale (far from standardized), and
      for classification the label distribution (missing classes, imbalance);
    * **one-batch overfit**: a copy trains on one batch with Adam for up to ``overfit_steps``
      steps; a model and loss wired correctly drive the loss near zero (below a tenth of where
      it started). A loss that does not move, or no gradient at all, means the loss is detached
      from the parameters;
    * **gradient flow**: per layer, parameters that get no gradient, vanishing (all zero) or
      exploding (huge or non-finite) gradients after one backward pass;
    * **learning rate** (``lr_test``): a range test (:func:`lightkit.find_lr`, plot saved in the
      run folder) and a comparison with the learning rate the module is configured with.

    Args:
        module: A lightkit task module (or any LightningModule with ``unpack_batch`` and
            ``compute_loss``).
        datamodule: Its data.
        overfit_steps: Most steps of the one-batch overfit test.
        data_batches: Training batches the data checks read.
        lr_test: Run the learning-rate range test.
        default_root_dir: Where the LR test writes its run folder and plot.
        seed: Seed for the copies' training.

    Returns:
        A :class:`Report`: ``report.ok``, ``report.findings``, ``print(report)``.

    Example:
        >>> report = lk.diagnose(module, dm)
        >>> print(report)
    """
    check_instance(
        "diagnose", "module", module, L.LightningModule, "a LightningModule (a lightkit task)"
    )
    check_instance(
        "diagnose",
        "datamodule",
        datamodule,
        L.LightningDataModule,
        "a LightningDataModule (for example lk.data.DataModule(dataset))",
    )
    overfit_steps = check_int("diagnose", "overfit_steps", overfit_steps, 1)
    data_batches = check_int("diagnose", "data_batches", data_batches, 1)
    lr_test = check_bool("diagnose", "lr_test", lr_test)
    seed = check_seed("diagnose", "seed", seed)
    check_path("diagnose", "default_root_dir", default_root_dir, "a folder path")
    for name in ("unpack_batch", "compute_loss"):
        if not callable(getattr(module, name, None)):
            raise TypeError(
                f"diagnose: module needs a {name}() method (lightkit task modules have one)"
            )
    report = Report()
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches = _first_batches(datamodule, data_batches)
    if not batches:
        raise ValueError("diagnose: the datamodule's train_dataloader() yields no batches")
    report.findings += _check_data(module, batches)
    if any(f.severity == "error" and f.check == "data" for f in report.findings):
        report.findings.append(
            Finding("overfit", "warning", "skipped: fix the data errors above first")
        )
        return report
    torch.manual_seed(seed)
    report.findings += _check_gradients(copy.deepcopy(module), batches[0])
    report.findings.append(_overfit_one_batch(copy.deepcopy(module), batches[0], overfit_steps))
    if lr_test:
        trial = _train_at_configured_lr(copy.deepcopy(module), batches)
        report.findings += _check_lr(module, datamodule, report, default_root_dir, seed, trial)
    return report


# --- data --------------------------------------------------------------------------------------


def _first_batches(datamodule: L.LightningDataModule, count: int) -> list[Any]:
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append(_to_cpu(batch))  # the checks train copies on the CPU
        if len(batches) >= count:
            break
    return batches


def _to_cpu(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.cpu()
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_cpu(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_cpu(v) for k, v in batch.items()}
    return batch


def _check_data(module: Any, batches: list[Any]) -> list[Finding]:
    findings = []
    xs, ys = [], []
    for i, batch in enumerate(batches):
        x, y = module.unpack_batch(batch)
        for what, t in (("inputs", x), ("targets", y)):
            if (
                isinstance(t, torch.Tensor)
                and t.is_floating_point()
                and not torch.isfinite(t).all()
            ):
                bad = (
                    int((~torch.isfinite(t)).flatten(1).any(1).sum())
                    if t.ndim > 1
                    else int((~torch.isfinite(t)).sum())
                )
                findings.append(Finding(
                    "data", "error", f"training batch {i} has NaN or Inf in its {what} ({bad} sample(s))",
                    "find and fix or drop those samples (lk.data.TensorDataModule checks arrays up front)",
                ))  # fmt: skip
                return findings
        check = getattr(module, "check_batch", None)
        if callable(check):
            try:
                check(batch, i, "train")
            except (ValueError, TypeError) as err:
                findings.append(
                    Finding("data", "error", str(err), "fix the labels or the task's settings")
                )
                return findings
        xs.append(x.detach().float().cpu() if isinstance(x, torch.Tensor) else None)
        ys.append(y.detach().cpu() if isinstance(y, torch.Tensor) else None)
    if all(isinstance(x, torch.Tensor) for x in xs):
        findings += _check_inputs(torch.cat(xs))
    if all(isinstance(y, torch.Tensor) for y in ys):
        findings += _check_labels(module, torch.cat(ys))
    if not any(f.severity != "ok" for f in findings):
        findings.insert(
            0,
            Finding(
                "data",
                "ok",
                f"{sum(len(x) for x in xs if x is not None)} samples: finite, scaled sensibly",
            ),
        )
    return findings


def _check_inputs(x: torch.Tensor) -> list[Finding]:
    findings = []
    flat = x.flatten(1) if x.ndim > 1 else x[:, None]
    std = flat.std(0) if len(flat) > 1 else torch.ones(flat.shape[1])
    if float(flat.std()) == 0:
        return [
            Finding(
                "data",
                "error",
                "every input is the same constant",
                "check the dataset and transforms",
            )
        ]
    if x.ndim == 2:
        constant = (std == 0).nonzero().flatten().tolist()
        if constant:
            shown = ", ".join(map(str, constant[:10])) + (" ..." if len(constant) > 10 else "")
            findings.append(Finding(
                "data", "warning", f"{len(constant)} input feature(s) never change: {shown}",
                "drop them; they carry no information (and break standardization)",
            ))  # fmt: skip
    mean, spread = float(flat.mean()), float(flat.std())
    scale = float(flat.abs().max())
    if abs(mean) > 10 or spread > 100 or scale > 1e4 or spread < 1e-3:
        findings.append(Finding(
            "data", "warning",
            f"inputs are far from standardized (mean {mean:.3g}, std {spread:.3g}, max |x| {scale:.3g})",
            "standardize inputs with training-set statistics (lk.data.compute_mean_std, "
            "transforms.Normalize, or (x - mean) / std for tables)",
        ))  # fmt: skip
    return findings


def _check_labels(module: Any, y: torch.Tensor) -> list[Finding]:
    described = module.task_outputs() if isinstance(module, DescribedTask) else None
    if described is None or not described.per_sample_class or described.num_classes is None:
        return []
    counts = torch.bincount(y.long().flatten(), minlength=described.num_classes)
    findings = []
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        findings.append(Finding(
            "data", "warning", f"class(es) {missing} do not occur in {int(counts.sum())} training samples",
            "check the labels and the split (stratify=True keeps every class in every split)",
        ))  # fmt: skip
    present = counts[counts > 0]
    ratio = float(present.max() / present.min())
    shares = ", ".join(f"{c}: {n}" for c, n in enumerate(counts.tolist()[:20]))
    if ratio >= 10:
        findings.append(Finding(
            "data", "warning", f"classes are imbalanced {ratio:.0f}:1 ({shares})",
            "weight the loss: class_weights=\"balanced\" (ClassificationModule, "
            "MultilabelClassificationModule) or pos_weight=\"balanced\" "
            "(BinaryClassificationModule), or focal_gamma=2.0; and watch f1 or auroc rather "
            "than accuracy",
        ))  # fmt: skip
    else:
        findings.append(Finding("data", "ok", f"label counts {shares}"))
    return findings


# --- model -------------------------------------------------------------------------------------


def _loss(module: Any, batch: Any) -> torch.Tensor:
    x, y = module.unpack_batch(batch)
    return module.compute_loss(module(x), y)


def _check_gradients(module: Any, batch: Any) -> list[Finding]:
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


def _overfit_one_batch(module: Any, batch: Any, steps: int) -> Finding:
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


def _train_at_configured_lr(module: Any, batches: list[Any], steps: int = 60) -> Finding | None:
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


def _check_lr(
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


__all__ = ["Finding", "Report", "diagnose"]
