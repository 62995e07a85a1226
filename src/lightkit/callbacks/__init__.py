"""Callbacks that lightkit's trainer presets use; each works with a plain ``lightning.Trainer``."""

from lightkit.callbacks.figures import ValidationFigures
from lightkit.callbacks.finetuning import FineTuning
from lightkit.callbacks.gpu_memory import GPUMemoryMonitor
from lightkit.callbacks.grad_norm import GradientNormMonitor
from lightkit.callbacks.hparams import HParamsMetrics
from lightkit.callbacks.model_checkpoint import ModelCheckpoint
from lightkit.callbacks.model_summary import TorchinfoSummary
from lightkit.callbacks.nan_guard import NaNGuard, NonFiniteError
from lightkit.callbacks.no_validation import NoValidationFallback
from lightkit.callbacks.predictions import PredictionWriter
from lightkit.callbacks.progress import PlainProgressBar
from lightkit.callbacks.rng_state import RNGState
from lightkit.callbacks.weight_averaging import SWAWeightAveraging

__all__ = [
    "FineTuning",
    "GPUMemoryMonitor",
    "GradientNormMonitor",
    "HParamsMetrics",
    "ModelCheckpoint",
    "NaNGuard",
    "NoValidationFallback",
    "NonFiniteError",
    "PlainProgressBar",
    "PredictionWriter",
    "RNGState",
    "SWAWeightAveraging",
    "TorchinfoSummary",
    "ValidationFigures",
]
