"""RNGState: the torch, numpy and Python RNG states travel in checkpoints and are checked on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import resume_from, tamper_checkpoint, train_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real checkpoint of a ClassificationModule around a lightkit MLP."""
    return train_checkpoint(tmp_path_factory.mktemp("trained"))


def test_malformed_rng_state_in_a_checkpoint_is_named_on_resume(trained, tmp_path):
    from lightkit.checkpointing import CheckpointError

    def edit(c):
        (key,) = [k for k in c["callbacks"] if "RNGState" in k]
        c["callbacks"][key]["numpy"] = ["MT19937", [1, 2, 3], 0, 0, 0.0]

    path = tamper_checkpoint(trained, tmp_path / "rng.ckpt", edit)
    with pytest.raises(CheckpointError, match="RNG state 'numpy' is malformed"):
        resume_from(path, tmp_path)
