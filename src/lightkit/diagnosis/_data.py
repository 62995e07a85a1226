"""The data checks of diagnose(): finite values, the task's label checks, input scale, label counts."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from lightkit.diagnosis.report import Finding
from lightkit.outputs import DescribedTask


def first_batches(datamodule: L.LightningDataModule, count: int) -> list[Any]:
    """The first ``count`` training batches, moved to the CPU."""
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


def check_data(module: Any, batches: list[Any]) -> list[Finding]:
    """The data findings over ``batches``; stops at the first NaN, Inf or failed label check."""
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


__all__ = ["check_data", "first_batches"]
