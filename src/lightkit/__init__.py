"""lightkit: reusable PyTorch Lightning building blocks.

Bring a ``torch.nn.Module`` and a ``Dataset``; lightkit supplies task modules with the right loss
and metrics, data modules with per-split transforms, and a preset ``lightning.Trainer``::

    import lightkit as lk

    dm = lk.data.DigitsDataModule()
    module = lk.ClassificationModule(lk.models.ConvNet(1, 10), num_classes=10)
    trainer = lk.make_trainer(max_epochs=20, seed=0)
    trainer.fit(module, datamodule=dm)
"""

from lightkit import callbacks, checkpointing, data, export, losses, models, optim, tasks
from lightkit._spec import UntrustedSpecError
from lightkit.cross_validation import cross_validate
from lightkit.diagnose import diagnose
from lightkit.fitting import fit
from lightkit.inference import Predictor
from lightkit.outputs import TaskOutputs
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

__version__ = "0.1.0"

__all__ = [
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
    "callbacks",
    "checkpointing",
    "cross_validate",
    "data",
    "diagnose",
    "export",
    "find_batch_size",
    "find_lr",
    "fit",
    "losses",
    "make_trainer",
    "models",
    "optim",
    "tasks",
]
