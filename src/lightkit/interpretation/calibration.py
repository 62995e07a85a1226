"""calibrate(): temperature scaling fitted on the validation split, recorded in the checkpoint."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from lightkit._metadata import MAX_TEMPERATURE, MIN_TEMPERATURE, CheckpointMetadata
from lightkit._validation import check_instance, check_int, check_path
from lightkit.checkpointing import AtomicCheckpointIO, CheckpointError, load_checkpoint
from lightkit.interpretation._collect import collect, split_loader
from lightkit.interpretation.report import expected_calibration_error
from lightkit.outputs import scale_logits

_KINDS = ("multiclass", "binary", "multilabel")


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` fitted and how much it helped, on the split it was fitted on.

    Attributes:
        temperature: The fitted temperature: logits are divided by it at inference (above 1:
            the model was over-confident).
        ece_before: Expected calibration error of the raw probabilities.
        ece_after: Expected calibration error with the temperature.
        nll_before: Mean negative log-likelihood (the loss) of the raw logits.
        nll_after: The same with the temperature.
        samples: Samples it was fitted on.
        checkpoint: The checkpoint file the temperature was written into, or None.

    Example:
        >>> result = lk.interpretation.Calibration(
        ...     temperature=1.8, ece_before=0.061, ece_after=0.012, nll_before=0.41,
        ...     nll_after=0.35, samples=500,
        ... )  # what lk.calibrate returns
        >>> print(result)
        lk.calibrate: temperature 1.8 on 500 samples; ECE 0.0610 -> 0.0120, NLL 0.4100 -> 0.3500
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    samples: int
    checkpoint: str | None = None

    def __str__(self) -> str:
        text = (
            f"lk.calibrate: temperature {self.temperature:.4g} on {self.samples:,} samples; "
            f"ECE {self.ece_before:.4f} -> {self.ece_after:.4f}, "
            f"NLL {self.nll_before:.4f} -> {self.nll_after:.4f}"
        )
        return text + (f"; recorded in {self.checkpoint}" if self.checkpoint else "")


def _nll(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "multiclass":
        return F.cross_entropy(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target.float())


def _ece(kind: str, logits: torch.Tensor, target: torch.Tensor, n: int) -> float:
    probs = logits.softmax(-1) if kind == "multiclass" else logits.sigmoid()
    return expected_calibration_error(kind, probs, target, n)


def fit_temperature(
    kind: str, logits: torch.Tensor, target: torch.Tensor, max_iter: int, bias: float = 0.0
) -> float:
    """The temperature minimising the negative log-likelihood of ``(logits - bias) / T + bias``
    (L-BFGS on ``log T``, so T stays positive), clamped to lightkit's recorded range.
    ``bias`` is the decision threshold's logit for binary and multilabel outputs (0 for 0.5)."""
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _nll(kind, (logits - bias) / log_t.exp() + bias, target)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    value = float(log_t.detach().exp())
    if not math.isfinite(value):
        value = MAX_TEMPERATURE if float(log_t.detach()) > 0 else MIN_TEMPERATURE
    return min(max(value, MIN_TEMPERATURE), MAX_TEMPERATURE)


def calibrate(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    split: str = "val",
    checkpoint: str | os.PathLike[str] | None = None,
    max_iter: int = 100,
) -> Calibration:
    """Temperature scaling: fit one temperature on a held-out split so probabilities match accuracy.

    Modern nets are often over-confident: a "95%" prediction is right far less than 95% of the
    time. Dividing the logits by one temperature ``T`` (Guo et al., 2017) fixes most of it
    without changing which class is predicted (nor, for binary and multilabel outputs, which
    side of 0.5 a probability falls). ``T`` is fitted by minimising the negative log-likelihood
    on ``split`` (never the training split: there the model is over-confident by construction).

    The module's ``temperature`` is set; from then on ``predict_step``, ``lk.Predictor`` and
    ``lightkit serve`` divide raw outputs by it, and every checkpoint saved afterwards records
    it (``trainer.save_checkpoint``, or ``checkpoint=`` here). Training, validation metrics and
    exports (TorchScript, ONNX) keep the raw logits. ``lk.interpret`` then reports the ECE with
    and without it.

    Args:
        module: A trained multiclass, binary or multilabel classification module.
        datamodule: Its data module (``setup`` is called for you).
        split: ``"val"`` (default) or ``"test"``.
        checkpoint: A checkpoint of this very module (its weights are compared) to record the
            temperature in: the file is rewritten atomically with only the temperature added,
            so ``lk.Predictor.from_checkpoint`` and ``lightkit serve`` use it.
        max_iter: Most L-BFGS iterations.

    Returns:
        A :class:`Calibration` with the temperature and the ECE and NLL before and after.

    Example:
        >>> module = lk.ClassificationModule.load_from_checkpoint(checkpoint)  # a trained model
        >>> result = lk.calibrate(module, dm)  # checkpoint=...: also store it in that file
        >>> print(result)
        lk.calibrate: temperature ... on 24 samples; ECE ... -> ..., NLL ... -> ...
        >>> module.temperature == result.temperature  # predictions now use it
        True
    """
    check_instance("calibrate", "module", module, L.LightningModule, "a trained LightningModule")
    check_instance(
        "calibrate", "datamodule", datamodule, L.LightningDataModule, "a LightningDataModule"
    )
    max_iter = check_int("calibrate", "max_iter", max_iter, 1, 10_000)
    if checkpoint is not None:
        check_path("calibrate", "checkpoint", checkpoint, "a checkpoint file path")
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"calibrate: checkpoint {os.fspath(checkpoint)!r} does not exist"
            )
    if not hasattr(module, "temperature") or not callable(getattr(module, "task_outputs", None)):
        raise TypeError(
            f"calibrate: module must be a lightkit TaskModule (it stores the temperature), got "
            f"{type(module).__name__}"
        )
    kind = module.task_outputs().kind
    if kind not in _KINDS:
        raise ValueError(
            f"calibrate: temperature scaling is for classification (multiclass, binary, "
            f"multilabel) outputs; {type(module).__name__} has {kind!r} outputs"
        )
    if checkpoint is not None:  # before the pass: a wrong file fails at once
        saved = _checked_checkpoint(module, os.fspath(checkpoint))
    loader = split_loader(datamodule, split, "calibrate")
    collected = collect(module, loader, 0, "calibrate", module.device)
    assert collected.raw is not None and collected.target is not None
    logits, target = collected.raw.float(), collected.target
    n = module.task_outputs().num_classes
    if kind == "multiclass":
        if target.is_floating_point():
            raise ValueError(
                "calibrate: multiclass targets must be class indices, got floating-point "
                f"targets of shape {tuple(target.shape)}"
            )
        target = target.long().view(-1)
    elif kind == "binary":
        logits = logits.view(-1)
        target = (target.view(-1) > 0.5).long()
    else:
        target = (target > 0.5).long()
    described = module.task_outputs()
    bias = (
        0.0 if kind == "multiclass" else math.log(described.threshold / (1 - described.threshold))
    )
    temperature = fit_temperature(kind, logits, target, max_iter, bias)
    scaled = scale_logits(described, logits, temperature)
    result = Calibration(
        temperature=temperature,
        ece_before=_ece(kind, logits, target, n),
        ece_after=_ece(kind, scaled, target, n),
        nll_before=float(_nll(kind, logits, target)),
        nll_after=float(_nll(kind, scaled, target)),
        samples=len(target),
        checkpoint=os.fspath(checkpoint) if checkpoint is not None else None,
    )
    _warn_if_degenerate(result, kind, logits, target, split)
    if checkpoint is not None:
        _record(saved, os.fspath(checkpoint), temperature)
    module.temperature = temperature
    return result


def _warn_if_degenerate(
    result: Calibration, kind: str, logits: torch.Tensor, target: torch.Tensor, split: str
) -> None:
    """Say when the fit means little: no mistakes to learn from, the range's end, a worse ECE."""
    predicted = logits.argmax(-1) if kind == "multiclass" else (logits > 0).long()
    if bool((predicted == target).all()):
        warnings.warn(
            f"calibrate: the model makes no mistake on the {split} split, so the fitted "
            f"temperature ({result.temperature:.3g}) only sharpens its probabilities; calibrate "
            "on a larger or harder held-out split",
            stacklevel=3,
        )
    elif result.temperature in (MIN_TEMPERATURE, MAX_TEMPERATURE):
        warnings.warn(
            f"calibrate: the temperature reached the end of its range ({result.temperature:g}); "
            "the model's outputs carry (almost) no information on this split",
            stacklevel=3,
        )
    if result.ece_after > result.ece_before:
        warnings.warn(
            f"calibrate: the ECE rose on the {split} split ({result.ece_before:.4f} -> "
            f"{result.ece_after:.4f}) while the NLL fell ({result.nll_before:.4f} -> "
            f"{result.nll_after:.4f}); with few samples per bin the ECE is noisy",
            stacklevel=3,
        )


def _checked_checkpoint(module: Any, path: str) -> dict[str, Any]:
    """The checkpoint at ``path``, after checking it holds ``module``'s weights (a temperature
    fitted for other weights would be wrong for them)."""
    saved = load_checkpoint(path)
    state_dict = saved.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(
            f"calibrate: {path!r} has no 'state_dict'; is it a Lightning checkpoint?"
        )
    own = module.state_dict()
    differ = [
        key
        for key, value in own.items()
        if key in state_dict
        and isinstance(state_dict[key], torch.Tensor)
        and not (
            state_dict[key].shape == value.shape
            and torch.equal(state_dict[key].cpu(), value.detach().cpu())
        )
    ]
    missing = [key for key, _ in module.named_parameters() if key not in state_dict]
    if differ or missing:
        shown = ", ".join((differ + missing)[:4])
        raise ValueError(
            f"calibrate: {path!r} holds other weights than the module ({shown}); pass the "
            "checkpoint the module was loaded from, or save the calibrated module with "
            "trainer.save_checkpoint"
        )
    CheckpointMetadata.from_checkpoint(saved, path)  # refuses a malformed section
    return saved


def _record(saved: dict[str, Any], path: str, temperature: float) -> None:
    """Write ``temperature`` into the checked checkpoint ``saved`` at ``path``, atomically."""
    section = dict(saved.get(CheckpointMetadata.KEY) or {})
    section["temperature"] = temperature
    saved[CheckpointMetadata.KEY] = section
    AtomicCheckpointIO().save_checkpoint(saved, path)


__all__ = ["Calibration", "calibrate", "fit_temperature"]
