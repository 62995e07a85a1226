"""lightkit: reusable PyTorch Lightning building blocks.

Bring a ``torch.nn.Module`` and a ``Dataset``; lightkit supplies task modules with the right loss
and metrics, data modules with per-split transforms, and a preset ``lightning.Trainer``::

    import lightkit as lk

    dm = lk.data.DigitsDataModule()
    module = lk.ClassificationModule(lk.models.ConvNet(1, 10), num_classes=10)
    trainer = lk.make_trainer(max_epochs=20, seed=0)
    trainer.fit(module, datamodule=dm)

The names below are imported on first use (PEP 562): ``import lightkit`` itself does not import
Lightning (about 8 seconds on a small machine), so the ``lightkit`` command answers ``--help``,
``doctor`` and usage errors at once. ``benchmarks/cli_startup.py`` measures it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lightkit._version import VERSION as __version__

# name -> the module that defines it
_NAMES = {
    "BinaryClassificationModule": "lightkit.tasks",
    "ClassificationModule": "lightkit.tasks",
    "MultilabelClassificationModule": "lightkit.tasks",
    "Predictor": "lightkit.inference",
    "RegressionModule": "lightkit.tasks",
    "SegmentationModule": "lightkit.tasks",
    "TaskModule": "lightkit.tasks",
    "TaskOutputs": "lightkit.outputs",
    "UntrustedSpecError": "lightkit._spec",
    "calibrate": "lightkit.interpretation",
    "cross_validate": "lightkit.cross_validation",
    "diagnose": "lightkit.diagnosis",
    "find_batch_size": "lightkit.tuning",
    "fine_tune": "lightkit.fitting",
    "find_lr": "lightkit.tuning",
    "fit": "lightkit.fitting",
    "interpret": "lightkit.interpretation",
    "make_trainer": "lightkit.trainer",
    "sweep": "lightkit.sweeps",
}
_SUBPACKAGES = (
    "callbacks",
    "checkpointing",
    "data",
    "export",
    "losses",
    "models",
    "optim",
    "tasks",
)
# Modules reachable as attributes too (as they were when everything was imported at once), but
# not part of `from lightkit import *`.
_MODULES = (
    "cross_validation",
    "diagnosis",
    "fitting",
    "inference",
    "interpretation",
    "outputs",
    "runs",
    "serve",
    "sweeps",
    "trainer",
    "tuning",
)

__all__ = [  # _NAMES and _SUBPACKAGES, sorted (tests/test_package.py checks they agree)
    "BinaryClassificationModule",
    "ClassificationModule",
    "MultilabelClassificationModule",
    "Predictor",
    "RegressionModule",
    "SegmentationModule",
    "TaskModule",
    "TaskOutputs",
    "UntrustedSpecError",
    "__version__",
    "calibrate",
    "callbacks",
    "checkpointing",
    "cross_validate",
    "data",
    "diagnose",
    "export",
    "find_batch_size",
    "find_lr",
    "fine_tune",
    "fit",
    "interpret",
    "losses",
    "make_trainer",
    "models",
    "optim",
    "sweep",
    "tasks",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES or name in _MODULES:
        return importlib.import_module(f"lightkit.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'lightkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from lightkit import callbacks, checkpointing, data, export, losses, models, optim, tasks
    from lightkit._spec import UntrustedSpecError
    from lightkit.cross_validation import cross_validate
    from lightkit.diagnosis import diagnose
    from lightkit.fitting import fine_tune, fit
    from lightkit.inference import Predictor
    from lightkit.interpretation import calibrate, interpret
    from lightkit.outputs import TaskOutputs
    from lightkit.sweeps import sweep
    from lightkit.tasks import (
        BinaryClassificationModule,
        ClassificationModule,
        MultilabelClassificationModule,
        RegressionModule,
        SegmentationModule,
        TaskModule,
    )
    from lightkit.trainer import make_trainer
    from lightkit.tuning import find_batch_size, find_lr
