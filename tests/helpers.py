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


# --- helpers shared by several test files -------------------------------------------------------


def flat_weights(module: nn.Module) -> torch.Tensor:
    """Every parameter of ``module`` in one flat tensor (to compare runs bit for bit)."""
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def mlp_task(**kwargs: Any) -> lk.ClassificationModule:
    """A 3-class ClassificationModule around a lightkit ``MLP(8, 3, hidden=(32,))``."""
    net = lk.models.MLP(8, 3, hidden=(32,))
    return lk.ClassificationModule(net, num_classes=3, **kwargs)


def mlp_run(tmp_path: Any, **kwargs: Any) -> Any:
    """A trainer after two epochs of an ``MLP(8, 3)`` on 128 blobs in ``tmp_path/runs``."""
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path / "runs", enable_progress_bar=False, **kwargs
    )
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(128), batch_size=32))
    return trainer


def mlp_fit(tmp_path: Any, **kwargs: Any) -> Any:
    """``lk.fit`` of a fresh ``MLP(8, 3)`` on 128 blobs in ``tmp_path/runs`` (3 epochs, no logger)."""
    kwargs = {
        "max_epochs": 3,
        "default_root_dir": tmp_path / "runs",
        "enable_progress_bar": False,
        "logger": False,
        **kwargs,
    }
    return lk.fit(
        lk.ClassificationModule(lk.models.MLP(8, 3), 3),
        lk.data.DataModule(make_blobs(128), batch_size=32),
        **kwargs,
    )


def seeded_mlp_task() -> lk.ClassificationModule:
    """A 3-class ``MLP(8, 3, hidden=[16])`` task built after ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), 3)


def blobs_datamodule() -> lk.data.DataModule:
    """128 blobs in batches of 32 (the default validation split)."""
    return lk.data.DataModule(make_blobs(128), batch_size=32)


def quiet_fit_options(root: Any, **kwargs: Any) -> dict[str, Any]:
    """``lk.fit`` options for a silent, seeded run in ``root``: no logger, bar or summary."""
    return dict(default_root_dir=root, logger=False, enable_progress_bar=False, verbose=False,
                enable_model_summary=False, seed=0, **kwargs)  # fmt: skip


def assert_ships_the_averaged_weights(module: Any, last: Any, folder: Any) -> None:
    """After a weight-averaged fit: ``last`` holds the average and the raw weights apart, the
    module holds the average, and Predictor and TorchScript export predict with it."""
    checkpoint = torch.load(last, weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged)  # two different sets
    for key, value in averaged.items():
        torch.testing.assert_close(module.state_dict()[key], value, rtol=0, atol=0)
    predictor = lk.Predictor.from_checkpoint(last, device="cpu")
    x = torch.randn(5, 8)
    with torch.no_grad():
        eager = module.eval()(x).softmax(1)
    torch.testing.assert_close(predictor.predict(x), eager)
    path = lk.export.to_torchscript(predictor.module, x[:1], folder / "model.pt")
    with torch.no_grad():
        scripted = torch.jit.load(str(path))(x).softmax(1)
    torch.testing.assert_close(scripted, eager, rtol=1e-5, atol=1e-6)


def fit_one_epoch(module: lk.TaskModule, dataset: Any, fast_trainer_kwargs: dict) -> None:
    """One epoch of ``module`` on ``dataset`` without validation (batches of 16)."""
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(dataset, val_split=0.0, batch_size=16))


def binary_data() -> TensorDataset:
    """Two Gaussian blobs with float 0/1 targets."""
    x, y = make_blobs(n=256, num_classes=2).tensors
    return TensorDataset(x, y.float())  # float 0/1 targets are fine


def regression_data() -> TensorDataset:
    """A noisy linear function of 8 features: ``N×8`` inputs, ``N×1`` targets."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(256, 1, generator=g)
    return TensorDataset(x, y)


def row_images(n: int = 96) -> TensorDataset:
    """Three classes of 1×8×8 images: a bright row at the top, middle or bottom."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.3
    for i, label in enumerate(y.tolist()):
        x[i, 0, 1 + 3 * label] += 2.0
    return TensorDataset(x, y)


class RunsOutOfMemory(nn.Module):
    """A net that raises CUDA's OOM error for batches larger than ``limit`` (from ``epoch``)."""

    def __init__(self, limit: int, from_epoch: int = 0, error: Exception | None = None) -> None:
        super().__init__()
        self.limit, self.from_epoch = limit, from_epoch
        self.error = error or torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB"
        )
        self.epoch = 0
        self.layer = nn.Linear(8, 3)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batch_sizes.append(x.shape[0])
            if x.shape[0] > self.limit and self.epoch >= self.from_epoch:
                raise self.error
        return self.layer(x)


def write_image(path: Any, value: int, size: tuple[int, int] = (20, 16), mode: str = "RGB") -> Any:
    """Write a random 8-bit image of ``size`` (W, H) around ``value`` to ``path``; return ``path``."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    array = (rng.integers(0, 60, shape) + value).clip(0, 255).astype(np.uint8)
    Image.fromarray(array, mode=mode).save(path)
    return path


def write_sixteen_bit_png(path: Any, size: tuple[int, int] = (12, 10)) -> Any:
    """A 16-bit grayscale PNG (PIL mode I;16): left half 65535, right half 32768."""
    import numpy as np
    from PIL import Image

    array = np.full((size[1], size[0]), 65535, np.uint16)
    array[:, size[0] // 2 :] = 32768
    Image.fromarray(array).save(path)
    return path


def train_checkpoint(root: Any) -> Any:
    """The path of a real checkpoint of a ClassificationModule around a lightkit MLP (one epoch)."""
    from pathlib import Path

    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), num_classes=3)
    dm = lk.data.DataModule(make_blobs(128), val_split=0.25, batch_size=32)
    trainer = no_log_trainer(root, max_epochs=1)
    trainer.fit(module, datamodule=dm)
    return Path(trainer.checkpoint_callback.best_model_path)


def tamper_checkpoint(src: Any, dst: Any, edit: Any) -> Any:
    """Copy the checkpoint ``src`` to ``dst`` with ``edit(checkpoint)`` applied; return ``dst``."""
    checkpoint = torch.load(src, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, dst)
    return dst


def resume_from(path: Any, tmp_path: Any) -> None:
    """Resume a fresh module (as in ``train_checkpoint``) from ``path`` for one more epoch."""
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), num_classes=3)
    dm = lk.data.DataModule(make_blobs(128), val_split=0.25, batch_size=32)
    no_log_trainer(tmp_path / "runs", max_epochs=2).fit(module, datamodule=dm, ckpt_path=path)


def no_log_trainer(root: Any, max_epochs: int) -> Any:
    return lk.make_trainer(
        max_epochs=max_epochs,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )


# The model and data sections of a small config (an MLP on the built-in digits), for CLI tests.
DIGITS_MLP_SECTIONS = """
model:
  class_path: lightkit.ClassificationModule
  init_args:
    num_classes: 10
    net:
      class_path: lightkit.models.MLP
      init_args: {in_features: 64, out_features: 10, hidden: [16]}
data:
  class_path: lightkit.data.DigitsDataModule
"""
