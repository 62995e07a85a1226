"""RNGState: the torch, numpy and Python RNG states travel in checkpoints and are checked on resume."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import resume_from, tamper_checkpoint, train_checkpoint
from lightkit.callbacks import RNGState


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real checkpoint of a ClassificationModule around a lightkit MLP."""
    return train_checkpoint(tmp_path_factory.mktemp("trained"))


def _draws() -> tuple[list[float], list[float], list[float]]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_torch_numpy_and_python_states_are_restored_from_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    _draws()  # somewhere in the middle of each stream
    path = tmp_path / "rng.ckpt"
    torch.save({"callbacks": {"RNGState": RNGState().state_dict()}}, path)
    expected = _draws()  # what an uninterrupted run draws next
    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    unrestored = _draws()
    assert all(a != b for a, b in zip(unrestored, expected, strict=True))  # the test can tell
    callback = RNGState()
    callback.load_state_dict(torch.load(path, weights_only=True)["callbacks"]["RNGState"])
    callback.on_train_start(None, None)  # where the states are applied when a run resumes
    torch_draws, numpy_draws, python_draws = _draws()
    assert torch_draws == expected[0], "torch's RNG state was not restored"
    assert numpy_draws == expected[1], "numpy's RNG state was not restored"
    assert python_draws == expected[2], "Python's RNG state was not restored"


def test_malformed_rng_state_in_a_checkpoint_is_named_on_resume(trained, tmp_path):
    from lightkit.checkpointing import CheckpointError

    def edit(c):
        (key,) = [k for k in c["callbacks"] if "RNGState" in k]
        c["callbacks"][key]["numpy"] = ["MT19937", [1, 2, 3], 0, 0, 0.0]

    path = tamper_checkpoint(trained, tmp_path / "rng.ckpt", edit)
    with pytest.raises(CheckpointError, match="RNG state 'numpy' is malformed"):
        resume_from(path, tmp_path)
