"""Data modules and datasets: your own Datasets with splits and transforms, and built-in data."""

import warnings
from typing import Any

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
from lightkit.data.kfold import KFoldDataModule
from lightkit.data.loaders import InMemoryLoader, ResumableLoader
from lightkit.data.streaming import StreamingDataModule, write_streaming

__all__ = [
    "BadImageError",
    "DataModule",
    "DigitsDataModule",
    "ImageFileDataset",
    "ImageFolderDataModule",
    "InMemoryLoader",
    "KFoldDataModule",
    "ResumableLoader",
    "SegmentationDataset",
    "ShapesDataModule",
    "SklearnDataModule",
    "StreamingDataModule",
    "TensorDataModule",
    "TransformedDataset",
    "compute_mean_std",
    "make_shapes",
    "transforms",
    "write_streaming",
]


def __getattr__(name: str) -> Any:
    # Deprecated alias (0.x): cross_validate trains models, so it moved up the layers to
    # lightkit.cross_validation (lk.cross_validate); it is imported only when the old name is used.
    if name == "cross_validate":
        warnings.warn(
            "lightkit.data.cross_validate moved to lightkit.cross_validation; use lk.cross_validate",
            DeprecationWarning,
            stacklevel=2,
        )
        from lightkit.cross_validation import cross_validate  # layering: deprecated alias

        return cross_validate
    raise AttributeError(f"module 'lightkit.data' has no attribute {name!r}")
