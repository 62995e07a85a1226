"""make_trainer(ema=...): an exponential moving average of the weights, used for validation,
checkpoints, Predictor and export, surviving a kill and resume bit-identically."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk
from helpers import DIGITS_MLP_SECTIONS, flat_weights, make_blobs


def _module():
    torch.manual_seed(0)
    return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), 3)


def _options(root, **kwargs):
    return dict(default_root_dir=root, logger=False, enable_progress_bar=False, verbose=False,
                enable_model_summary=False, seed=0, **kwargs)  # fmt: skip


def _dm():
    return lk.data.DataModule(make_blobs(128), batch_size=32)


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
    checkpoint = torch.load(last, weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged)  # two different sets
    # After fit the module holds the average (Lightning copies it in at the end of training).
    for key, value in averaged.items():
        torch.testing.assert_close(module.state_dict()[key], value, rtol=0, atol=0)
    predictor = lk.Predictor.from_checkpoint(last, device="cpu")
    x = torch.randn(5, 8)
    with torch.no_grad():
        eager = module.eval()(x).softmax(1)
    torch.testing.assert_close(predictor.predict(x), eager)
    path = lk.export.to_torchscript(predictor.module, x[:1], tmp_path / "model.pt")
    scripted = torch.jit.load(str(path))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x).softmax(1), eager, rtol=1e-5, atol=1e-6)


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
