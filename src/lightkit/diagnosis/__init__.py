"""diagnose(): "my loss does not go down" checks: data, wiring, loss at init, activations, overfit, LR."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

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

    The module itself is not changed: every check works on a copy.

    * **data** (up to ``data_batches`` training batches): NaN or Inf in inputs or targets, the
      task's own label checks, constant input features, input scale (far from standardized), and
      for classification the label distribution (missing classes, imbalance);
    * **batch_independence** (first batch, eval mode): a sample's output must depend on its own
      input only. Sample 0's input is perturbed (float inputs: Gaussian noise of the inputs'
      scale; others: another sample's input) and every other sample's output must stay within
      ``1e-5 × max |output| + 1e-6``; then (float inputs) the gradient of a random projection of
      the last sample's output must be zero on every other sample's input. An error means the
      forward mixes samples: a norm or softmax over dim 0, a wrong ``view``/``reshape``, a
      ``batch_first`` mix-up. Eval mode because BatchNorm in train mode mixes samples by
      design; skipped when the inputs are not a tensor or the batch has one sample;
    * **init_loss** (up to 4 batches, train mode, no training): for classification kinds of
      ``module.task_outputs()``, the plain cross-entropy (multiclass, segmentation: ignored mask
      values left out) or per-label binary cross-entropy (binary, multilabel) of the untrained
      outputs, whatever the module's own loss adds (label smoothing, class weights, focal, Dice).
      Uniform outputs give ``ln C`` (``ln 2`` per label); outputs at the class frequencies give
      their entropy, which is lower. A warning when the loss is above ``2 × ln C`` (``2 × ln 2``):
      the outputs start confidently wrong (a large output layer, unscaled inputs);
      for ``"values"`` outputs the module's loss is reported with no expectation. Train mode
      because that is where the first optimizer steps start (BatchNorm's running statistics
      mean nothing yet);
    * **activations** (up to 4 batches, train mode, no gradients): per ``nn.ReLU``, ``nn.ReLU6``,
      ``nn.Hardtanh``, ``nn.Sigmoid`` and ``nn.Tanh`` call (a module called several times is
      counted per call), the share of units (features; channels of convolution outputs) that
      are stuck: dead ReLU and ReLU6 units never fire (output ``<= 0``, or 6, for every sample
      and position); Hardtanh, Sigmoid (below 0.01 or above 0.99) and Tanh (beyond ±0.99) units
      that saturate on at least 90% of their outputs. A warning when more than half of a call's
      units are stuck. Train mode as for the init loss. Functional calls (``F.relu``,
      ``torch.tanh``) cannot be watched; smooth activations (GELU, SiLU, LeakyReLU, ELU) keep a
      gradient and are not checked;
    * **gradient flow**: per layer, parameters that get no gradient, vanishing (all zero) or
      exploding (huge or non-finite) gradients after one backward pass;
    * **one-batch overfit**: a copy trains on one batch with Adam for up to ``overfit_steps``
      steps; a model and loss wired correctly drive the loss near zero (below a tenth of where
      it started). A loss that does not move, or no gradient at all, means the loss is detached
      from the parameters;
    * **learning rate** (``lr_test``): a range test (:func:`lightkit.find_lr`, plot saved in the
      run folder) and a comparison with the learning rate the module is configured with.

    The model checks run only when the data has no errors.

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
    probe = copy.deepcopy(module)  # these three checks train nothing: one copy serves them all
    report.findings.append(_check_batch_independence(probe, batches[0]))
    report.findings.append(_check_init_loss(probe, batches[:_PROBE_BATCHES]))
    report.findings.append(_check_activations(probe, batches[:_PROBE_BATCHES]))
    del probe
    torch.manual_seed(seed)  # the checks below see the same random numbers as without these
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


# --- before training: batch independence, loss at init, activations ---------------------------

_PROBE_BATCHES = 4  # batches the init-loss and activation checks average over
_SATURATE = "saturate on >= 90% of their outputs"


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


def _check_batch_independence(module: Any, batch: Any) -> Finding:
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


def _check_init_loss(module: Any, batches: list[Any]) -> Finding:
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


def _check_activations(module: Any, batches: list[Any]) -> Finding:
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
