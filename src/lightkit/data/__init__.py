"""Data modules and datasets: your own Datasets with splits and transforms, and built-in data."""

from lightkit.data import transforms
from lightkit.data.builtin import (
    DigitsDataModule,
    ShapesDataModule,
    SklearnDataModule,
    make_shapes,
)
from lightkit.data.datamodule import DataModule, TensorDataModule, TransformedDataset
from lightkit.data.datasets import (
    BadImageError,
    ImageFileDataset,
    SegmentationDataset,
    compute_mean_std,
)
from lightkit.data.image_folder import ImageFolderDataModule
from lightkit.data.kfold import KFoldDataModule, cross_validate
from lightkit.data.loaders import InMemoryLoader

__all__ = [
    "BadImageError",
    "DataModule",
    "DigitsDataModule",
    "ImageFileDataset",
    "ImageFolderDataModule",
    "InMemoryLoader",
    "KFoldDataModule",
    "SegmentationDataset",
    "ShapesDataModule",
    "SklearnDataModule",
    "TensorDataModule",
    "TransformedDataset",
    "compute_mean_std",
    "cross_validate",
    "make_shapes",
    "transforms",
]
