"""diagnose(): "my loss does not go down" checks: data, wiring, loss at init, activations, overfit, LR."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import torch

from lightkit._validation import check_bool, check_instance, check_int, check_path, check_seed
from lightkit.diagnosis._activations import check_activations
from lightkit.diagnosis._batch_independence import check_batch_independence
from lightkit.diagnosis._data import check_data, first_batches
from lightkit.diagnosis._init_loss import check_init_loss
from lightkit.diagnosis._training import (
    check_gradients,
    check_lr,
    overfit_one_batch,
    train_at_configured_lr,
)
from lightkit.diagnosis.report import SEVERITIES as SEVERITIES
from lightkit.diagnosis.report import Finding, Report

_PROBE_BATCHES = 4  # batches the init-loss and activation checks average over


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
        >>> report = lk.diagnose(module, dm, overfit_steps=60, lr_test=False)  # quick checks
        >>> print(report)
        lightkit diagnose: no errors
        [ok  ] data: 72 samples: finite, scaled sensibly
        ...
        >>> report.ok
        True
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
    batches = first_batches(datamodule, data_batches)
    if not batches:
        raise ValueError("diagnose: the datamodule's train_dataloader() yields no batches")
    report.findings += check_data(module, batches)
    if any(f.severity == "error" and f.check == "data" for f in report.findings):
        report.findings.append(
            Finding("overfit", "warning", "skipped: fix the data errors above first")
        )
        return report
    torch.manual_seed(seed)
    probe = copy.deepcopy(module)  # these three checks train nothing: one copy serves them all
    report.findings.append(check_batch_independence(probe, batches[0]))
    report.findings.append(check_init_loss(probe, batches[:_PROBE_BATCHES]))
    report.findings.append(check_activations(probe, batches[:_PROBE_BATCHES]))
    del probe
    torch.manual_seed(seed)  # the checks below see the same random numbers as without these
    report.findings += check_gradients(copy.deepcopy(module), batches[0])
    report.findings.append(overfit_one_batch(copy.deepcopy(module), batches[0], overfit_steps))
    if lr_test:
        trial = train_at_configured_lr(copy.deepcopy(module), batches)
        report.findings += check_lr(module, datamodule, report, default_root_dir, seed, trial)
    return report


__all__ = ["Finding", "Report", "diagnose"]
