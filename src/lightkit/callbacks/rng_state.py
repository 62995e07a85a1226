"""RNGState: saves the global RNGs in checkpoints and restores them on resume."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RNGState(Callback):
    """Keep torch, CUDA, numpy and Python RNG states in every checkpoint; restore them on resume.

    Dropout masks, random augmentations drawn in the main process and anything else that uses
    the global generators then continue after a resume exactly as in an uninterrupted run. The
    states are stored as tensors and plain lists, so checkpoints still load with
    ``weights_only=True``. They are applied when training starts, after everything that
    restoring and setting up the run might draw. ``lk.make_trainer`` adds this callback.
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
