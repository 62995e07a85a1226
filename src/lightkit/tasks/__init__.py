"""Task modules: LightningModules with the right loss, metrics and optimizer for each problem."""

from lightkit.tasks._bookkeeping import TaskBookkeeping
from lightkit.tasks._microbatching import MicrobatchError, OOMMicrobatching
from lightkit.tasks.base import TaskModule
from lightkit.tasks.classification import (
    BinaryClassificationModule,
    ClassificationModule,
    MultilabelClassificationModule,
)
from lightkit.tasks.regression import RegressionModule
from lightkit.tasks.segmentation import SegmentationModule

__all__ = [
    "BinaryClassificationModule",
    "ClassificationModule",
    "MicrobatchError",
    "MultilabelClassificationModule",
    "OOMMicrobatching",
    "RegressionModule",
    "SegmentationModule",
    "TaskBookkeeping",
    "TaskModule",
]
