"""make_trainer(swa=...): the equal average of each epoch's weights from a start epoch on, used
for validation, checkpoints, Predictor and export, surviving a resume bit-identically."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import lightkit as lk
from helpers import (
    assert_ships_the_averaged_weights,
    blobs_datamodule,
    flat_weights,
    quiet_fit_options,
    seeded_mlp_task,
)

_module, _options, _dm = seeded_mlp_task, quiet_fit_options, blobs_datamodule


class EpochWeights(Callback):
    """The trained (raw) weights at the end of every epoch, and the val/loss each epoch logged."""

    def __init__(self):
        self.weights, self.val_losses = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights.append(flat_weights(pl_module).clone())

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val_losses.append(float(trainer.callback_metrics["val/loss"]))


def test_the_module_ends_with_the_mean_of_the_averaged_epochs_and_validation_saw_it(tmp_path):
    module, seen = _module(), EpochWeights()
    trainer = lk.fit(module, _dm(), max_epochs=4, swa=2, callbacks=[seen], **_options(tmp_path))
    expected = torch.stack(seen.weights[2:]).mean(0)  # epochs 2 and 3
    torch.testing.assert_close(flat_weights(module), expected, rtol=1e-6, atol=1e-7)
    # The last epoch's val/loss was measured on the average the module now holds.
    again = trainer.validate(module, datamodule=_dm(), verbose=False)[0]["val/loss"]
    assert again == pytest.approx(seen.val_losses[-1], rel=1e-5)
    # Epochs before the start were validated on the trained weights: the first val/loss is
    # that of the raw weights, as a run without SWA logs it.
    plain_seen = EpochWeights()
    lk.fit(_module(), _dm(), max_epochs=1, callbacks=[plain_seen], **_options(tmp_path / "plain"))
    assert seen.val_losses[0] == pytest.approx(plain_seen.val_losses[0], rel=1e-6)


def test_checkpoints_hold_the_raw_weights_before_the_start_and_the_average_after(tmp_path):
    module = _module()
    trainer = lk.fit(module, _dm(), max_epochs=3, swa=1, **_options(tmp_path))
    last = trainer.checkpoint_callback.last_model_path
    assert int(torch.load(last, weights_only=True)["averaging_state"]["n_averaged"]) == 2
    assert_ships_the_averaged_weights(module, last, tmp_path)

    before = _module()
    trainer = lk.fit(before, _dm(), max_epochs=1, swa=1, **_options(tmp_path / "before"))
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert int(checkpoint["averaging_state"]["n_averaged"]) == 0
    for key, value in checkpoint["state_dict"].items():  # the trained weights, not the start's
        torch.testing.assert_close(before.state_dict()[key], value, rtol=0, atol=0)


def test_a_resumed_swa_run_ends_bit_identical(tmp_path):
    whole = _module()
    lk.fit(whole, _dm(), max_epochs=4, swa=0.5, **_options(tmp_path / "whole"))
    for stop in (1, 3):  # before averaging starts, and after
        part = _module()
        root = tmp_path / f"part{stop}"
        lk.fit(part, _dm(), max_epochs=stop, swa=2, **_options(root))
        resumed = _module()
        lk.fit(resumed, _dm(), max_epochs=4, swa=0.5, resume=True, **_options(root))
        torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)


def test_a_run_that_ends_before_the_start_keeps_its_weights_and_says_so(tmp_path):
    module = _module()
    with pytest.warns(UserWarning, match="nothing will be averaged"):
        trainer = lk.make_trainer(max_epochs=2, swa=5, **_options(tmp_path))
        with pytest.warns(UserWarning, match="before averaging started"):
            trainer.fit(module, datamodule=_dm())
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(module.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, ValueError),
        (1.0, ValueError),
        (0.0, ValueError),
        (float("nan"), ValueError),
        (True, TypeError),
        ("0.5", TypeError),
    ],
)
def test_bad_starts_are_named(tmp_path, value, error):
    with pytest.raises(error, match=r"make_trainer: swa must be the epoch averaging starts at"):
        lk.make_trainer(swa=value, default_root_dir=tmp_path)
    with pytest.raises(error, match=r"SWAWeightAveraging: start must be"):
        lk.callbacks.SWAWeightAveraging(start=value)


def test_ema_and_swa_together_and_a_fraction_without_max_epochs_are_errors(tmp_path):
    with pytest.raises(ValueError, match="ema and swa are two ways to average the weights"):
        lk.make_trainer(ema=0.9, swa=0.5, default_root_dir=tmp_path)
    trainer = lk.make_trainer(max_epochs=-1, max_steps=8, swa=0.5, **_options(tmp_path))
    with pytest.raises(ValueError, match="fraction of max_epochs, but the run has max_epochs=-1"):
        trainer.fit(_module(), datamodule=_dm())


def test_swa_from_a_config(tmp_path):
    from helpers import DIGITS_MLP_SECTIONS
    from lightkit.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(
        """
trainer:
  max_epochs: 2
  limit_train_batches: 3
  limit_val_batches: 1
  enable_progress_bar: false
  swa: 1
"""
        + DIGITS_MLP_SECTIONS
    )
    root = tmp_path / "runs"
    assert main(["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]) == 0
    checkpoint = torch.load(root / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(checkpoint["averaging_state"]["n_averaged"]) == 1
