"""Data modules and datasets: your own Datasets with splits and transforms, and built-in data."""

from lightkit.data.builtin import DigitsDataModule, ShapesDataModule, make_shapes
from lightkit.data.datamodule import DataModule, TransformedDataset

__all__ = [
    "DataModule",
    "DigitsDataModule",
    "ShapesDataModule",
    "TransformedDataset",
    "make_shapes",
]
