"""RNGState: saves the global RNGs in checkpoints and restores them on resume."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from lightkit._lightning import skip_unused_step_hooks
from lightkit._validation import short_repr
from lightkit.checkpointing import CheckpointError


@skip_unused_step_hooks
class RNGState(Callback):
    """Keep torch, CUDA, numpy and Python RNG states in every checkpoint; restore them on resume.

    Dropout masks, random augmentations drawn in the main process and anything else that uses
    the global generators then continue after a resume exactly as in an uninterrupted run. The
    states are stored as tensors and plain lists, so checkpoints still load with
    ``weights_only=True``. They are applied when training starts, after everything that
    restoring and setting up the run might draw. ``lk.make_trainer`` adds this callback.

    Example:
        >>> trainer = L.Trainer(callbacks=[lk.callbacks.RNGState()])  # lk.make_trainer adds it
        >>> states = torch.load(checkpoint, weights_only=True)["callbacks"]["RNGState"]
        >>> sorted(states)  # what a checkpoint from lk.make_trainer's run holds
        ['cuda', 'numpy', 'python', 'torch']
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        version, internal, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": [version, list(internal), gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Read from a checkpoint: checked now, so a malformed state is named instead of failing
        # deep inside torch, numpy or random when training starts.
        _check_state(state_dict)
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


def _check_state(state: Any) -> None:
    def bad(key: str, expected: str) -> CheckpointError:
        value = state.get(key) if isinstance(state, dict) else state
        return CheckpointError(
            f"RNGState: the checkpoint's RNG state {key!r} is malformed: expected {expected}, got "
            f"{short_repr(value, 60)}"
        )

    if not isinstance(state, dict):
        raise bad("(whole state)", "a dict")
    if not state:
        return
    torch_state = state.get("torch")
    if not (
        isinstance(torch_state, torch.Tensor)
        and torch_state.dtype == torch.uint8
        and torch_state.shape == torch.get_rng_state().shape
    ):
        raise bad("torch", "torch.get_rng_state()'s uint8 tensor")
    cuda = state.get("cuda", [])
    if not (
        isinstance(cuda, (list, tuple))
        and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda)
    ):
        raise bad("cuda", "a list of uint8 tensors")
    numpy_state = state.get("numpy")
    if not (
        isinstance(numpy_state, (list, tuple))
        and len(numpy_state) == 5
        and numpy_state[0] == "MT19937"
        and isinstance(numpy_state[1], (list, tuple))
        and len(numpy_state[1]) == 624
        and all(isinstance(k, int) and 0 <= k < 2**32 for k in numpy_state[1])
        and isinstance(numpy_state[2], int)
        and 0 <= numpy_state[2] <= 624
        and isinstance(numpy_state[3], int)
        and isinstance(numpy_state[4], float)
    ):
        raise bad("numpy", "numpy.random.get_state() as a list")
    python_state = state.get("python")
    if not (
        isinstance(python_state, (list, tuple))
        and len(python_state) == 3
        and isinstance(python_state[1], (list, tuple))
        and len(python_state[1]) == 625
        and all(isinstance(k, int) and 0 <= k < 2**32 for k in python_state[1][:624])
    ):
        raise bad("python", "random.getstate() as a list")
    try:  # the last word of a Mersenne Twister state is its position, as random checks itself
        random.Random().setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    except (TypeError, ValueError) as err:
        raise bad("python", f"random.getstate() as a list ({err})") from None
