"""Built-in datasets that need no download: scikit-learn's bundled 8×8 digits."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lightkit.data.datamodule import DataModule


class DigitsDataModule(DataModule):
    """scikit-learn's bundled handwritten digits (1,797 samples) as ``1×8×8`` float images.

    Pixels are scaled to ``[0, 1]`` and standardized with the training split's mean and std. The
    data are split (seeded) into test, validation and train. Needs scikit-learn (the ``examples``
    extra: ``pip install "lightkit[examples]"``); nothing is downloaded.

    Args:
        batch_size: Samples per batch.
        val_split: Fraction of all samples used for validation.
        test_split: Fraction of all samples used for testing.
        seed: Seed of the splits and of the training shuffle order.
        num_workers: DataLoader workers (``"auto"`` picks 0: the data are in-memory tensors).

    Example:
        >>> dm = lk.data.DigitsDataModule(batch_size=64)
        >>> trainer.fit(module, datamodule=dm)
    """

    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(
        self,
        batch_size: int = 32,
        val_split: float = 0.1,
        test_split: float = 0.2,
        seed: int = 0,
        num_workers: int | str = "auto",
    ) -> None:
        if not isinstance(test_split, (int, float)) or not 0.0 < test_split < 1.0:
            raise ValueError(
                f"DigitsDataModule: test_split must be a fraction in (0, 1), got {test_split!r}"
            )
        if not isinstance(val_split, (int, float)) or not 0.0 <= val_split < 1.0 - test_split:
            raise ValueError(
                f"DigitsDataModule: val_split must be in [0, 1 - test_split), got {val_split!r} "
                f"with test_split={test_split!r}"
            )
        # The datasets are built in setup().
        super().__init__(
            train=None,
            val_split=val_split,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.test_split = float(test_split)
        self.save_hyperparameters()

    def prepare_data(self) -> None:
        _load_digits()  # fails early, with install advice, when scikit-learn is missing

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        images, labels = _load_digits()
        n = len(labels)
        n_test = round(n * self.test_split)
        n_val = round(n * self.val_split)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(n, generator=generator)
        test_idx = order[:n_test]
        val_idx = order[n_test : n_test + n_val]
        train_idx = order[n_test + n_val :]
        mean, std = images[train_idx].mean(), images[train_idx].std()
        images = (images - mean) / std
        self.train = TensorDataset(images[train_idx], labels[train_idx])
        self.val = TensorDataset(images[val_idx], labels[val_idx]) if n_val else None
        self.test = TensorDataset(images[test_idx], labels[test_idx])
        self.val_split = 0.0  # the split is done above
        super().setup(stage)


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "DigitsDataModule needs scikit-learn, which ships the digits data: "
            'pip install "lightkit[examples]"'
        ) from err
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    return images, labels


__all__ = ["DigitsDataModule"]
