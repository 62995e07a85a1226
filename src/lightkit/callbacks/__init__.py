"""Callbacks that lightkit's trainer presets use; each works with a plain ``lightning.Trainer``."""

from lightkit.callbacks.nan_guard import NaNGuard, NonFiniteError
from lightkit.callbacks.rng_state import RNGState

__all__ = ["NaNGuard", "NonFiniteError", "RNGState"]
