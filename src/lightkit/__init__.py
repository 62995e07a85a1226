"""lightkit: reusable PyTorch Lightning building blocks.

Bring a ``torch.nn.Module`` and a ``Dataset``; lightkit supplies task modules with the right loss
and metrics, data modules with per-split transforms, and a preset ``lightning.Trainer``::

    import lightkit as lk

    dm = lk.data.DigitsDataModule()
    module = lk.ClassificationModule(lk.models.ConvNet(1, 10), num_classes=10)
    trainer = lk.make_trainer(max_epochs=20, seed=0)
    trainer.fit(module, datamodule=dm)
"""

from lightkit import data, models, optim
from lightkit.tasks import ClassificationModule, TaskModule
from lightkit.trainer import make_trainer

__version__ = "0.1.0"

__all__ = [
    "ClassificationModule",
    "TaskModule",
    "__version__",
    "data",
    "make_trainer",
    "models",
    "optim",
]
