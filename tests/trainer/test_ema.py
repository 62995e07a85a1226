"""make_trainer(ema=...): an exponential moving average of the weights, used for validation,
checkpoints, Predictor and export, surviving a kill and resume bit-identically."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk
from helpers import (
    DIGITS_MLP_SECTIONS,
    assert_ships_the_averaged_weights,
    blobs_datamodule,
    flat_weights,
    quiet_fit_options,
    seeded_mlp_task,
)

_module, _options, _dm = seeded_mlp_task, quiet_fit_options, blobs_datamodule


def test_a_killed_ema_run_resumes_bit_identically(tmp_path):
    whole = _module()
    lk.fit(whole, _dm(), max_epochs=3, ema=0.9, **_options(tmp_path / "whole"))
    part = _module()
    lk.fit(part, _dm(), max_epochs=1, ema=0.9, **_options(tmp_path / "part"))
    resumed = _module()
    lk.fit(resumed, _dm(), max_epochs=3, ema=0.9, resume=True, **_options(tmp_path / "part"))
    torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)


def test_checkpoints_predictor_and_export_use_the_averaged_weights(tmp_path):
    module = _module()
    trainer = lk.fit(module, _dm(), max_epochs=2, ema=0.9, **_options(tmp_path))
    last = trainer.checkpoint_callback.last_model_path
    # After fit the module holds the average (Lightning copies it in at the end of training).
    assert_ships_the_averaged_weights(module, last, tmp_path)


@pytest.mark.parametrize(
    ("value", "error"), [(-0.1, ValueError), (1.0, ValueError), ("0.9", TypeError)]
)
def test_bad_decays_are_named(tmp_path, value, error):
    with pytest.raises(error, match=r"make_trainer: ema must be a number in \(0, 1\)"):
        lk.make_trainer(ema=value, default_root_dir=tmp_path)


def test_ema_from_a_config(tmp_path):
    from lightkit.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(
        """
trainer:
  max_epochs: 1
  limit_train_batches: 3
  limit_val_batches: 1
  enable_progress_bar: false
  ema: 0.99
"""
        + DIGITS_MLP_SECTIONS
    )
    assert (
        main(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'runs'}"])
        == 0
    )
    checkpoint = torch.load(
        tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert "current_model_state" in checkpoint and "averaging_state" in checkpoint
