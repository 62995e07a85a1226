"""NaNGuard: a non-finite loss stops training, non-finite weights are never checkpointed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import make_blobs, mlp_run
from lightkit.callbacks import NonFiniteError
from lightkit.checkpointing import load_checkpoint


class _NaNAt(nn.Module):
    """A net whose output turns NaN at training step ``step``."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.step, self.calls = step, 0

    def forward(self, x):
        out = self.fc(x)
        if self.training:
            self.calls += 1
            if self.calls == self.step + 1:
                out = out * float("nan")
        return out


def test_nan_loss_stops_training_and_keeps_good_checkpoints(tmp_path):
    module = lk.ClassificationModule(_NaNAt(step=9), 3)
    trainer = lk.make_trainer(
        max_epochs=5,
        default_root_dir=tmp_path,
        checkpoint_every_n_steps=2,
        enable_progress_bar=False,
    )
    with pytest.raises(
        NonFiniteError, match=r"loss is nan at global step 9 .*Last good checkpoint: .*last\.ckpt"
    ):
        trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(128), batch_size=32))
    for path in Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"):
        state = load_checkpoint(path)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), path
        assert load_checkpoint(path)["global_step"] <= 9


def test_non_finite_weights_are_never_saved(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = mlp_run(tmp_path)
    with torch.no_grad():
        trainer.lightning_module.net.layers[0][0].weight[0, 0] = float("inf")
    before = set(Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"))
    with pytest.raises(
        NonFiniteError, match=r"parameter 'net\.layers\.0\.0\.weight' holds NaN or Inf"
    ):
        trainer.save_checkpoint(tmp_path / "bad.ckpt")
    assert not (tmp_path / "bad.ckpt").exists()
    assert set(Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt")) == before
    del module
