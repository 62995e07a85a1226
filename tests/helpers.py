"""Shared test helpers: tiny synthetic data, a tiny task and a logger that remembers what it got.

Like Lightning's ``BoringModel``: every test that needs "some task that trains" uses these, so a
test says only what it is about.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk


def make_blobs(
    n: int = 256, num_classes: int = 3, features: int = 8, seed: int = 0
) -> TensorDataset:
    """Gaussian blobs: an easy multiclass problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, features, generator=g) * 3
    y = torch.randint(0, num_classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, features, generator=g)
    return TensorDataset(x, y)


def tiny_net(features: int = 8, num_classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, num_classes))


def tiny_task(**kwargs: Any) -> lk.ClassificationModule:
    """A 3-class ClassificationModule on 8 features: trains on ``make_blobs`` in a second."""
    return lk.ClassificationModule(tiny_net(), num_classes=3, **kwargs)


def tiny_datamodule(n: int = 256, batch_size: int = 32, **kwargs: Any) -> lk.data.DataModule:
    return lk.data.DataModule(make_blobs(n), val_split=0.25, batch_size=batch_size, **kwargs)


class RecordingLogger(Logger):
    """A Lightning logger that keeps every ``log_metrics`` call: ``metrics[name] -> [(step, value)]``."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, list[tuple[int, float]]] = {}

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, float(value)))


def quiet_trainer(tmp_path: Any, **kwargs: Any) -> Any:
    """``lk.make_trainer`` for a test: temporary folder, no progress bar or summary, seeded."""
    options = {
        "max_epochs": 2,
        "default_root_dir": tmp_path / "runs",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "seed": 0,
    }
    options.update(kwargs)
    return lk.make_trainer(**options)
