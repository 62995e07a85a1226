"""Task modules: LightningModules with the right loss, metrics and optimizer for each problem."""

from lightkit.tasks.base import TaskModule
from lightkit.tasks.classification import ClassificationModule

__all__ = ["ClassificationModule", "TaskModule"]
