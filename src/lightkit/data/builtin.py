"""Built-in datasets that need no download: scikit-learn's bundled data and generated shapes."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lightkit._validation import check_choice, check_float, check_instance, check_int, check_seed
from lightkit.data.datamodule import DataModule


class _BuiltinDataModule(DataModule):
    """A DataModule over tensors made in ``setup()``, split (seeded) into train, val and test."""

    def __init__(
        self,
        batch_size: int,
        val_split: float,
        test_split: float,
        seed: int,
        num_workers: int | str,
    ) -> None:
        name = type(self).__name__
        check_float(
            name, "test_split", test_split, 0.0, 1.0, min_inclusive=False, max_inclusive=False
        )
        check_float(name, "val_split", val_split, 0.0, 1.0, max_inclusive=False)
        if val_split >= 1.0 - test_split:
            raise ValueError(
                f"{name}: val_split must be in [0, 1 - test_split), got {val_split!r} "
                f"with test_split={test_split!r}"
            )
        # The datasets are built in setup(); the base class only keeps the loader settings.
        super().__init__(
            train=None,
            val_split=val_split,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.test_split = float(test_split)

    def make_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All inputs and targets, before splitting."""
        raise NotImplementedError

    def normalize(self, inputs: torch.Tensor, train_idx: torch.Tensor) -> torch.Tensor:
        """Normalize ``inputs`` with statistics of the training split (identity by default)."""
        return inputs

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        inputs, targets = self.make_tensors()
        n = len(targets)
        n_test, n_val = round(n * self.test_split), round(n * self.val_split)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        test_idx, val_idx, train_idx = (
            order[:n_test],
            order[n_test : n_test + n_val],
            order[n_test + n_val :],
        )
        inputs = self.normalize(inputs, train_idx)
        self.train = TensorDataset(inputs[train_idx], targets[train_idx])
        self.val = TensorDataset(inputs[val_idx], targets[val_idx]) if n_val else None
        self.test = TensorDataset(inputs[test_idx], targets[test_idx])
        self.val_split = 0.0  # split above
        super().setup(stage)
        self.split_indices = {
            "train": train_idx.tolist(),
            "val": val_idx.tolist(),
            "test": test_idx.tolist(),
        }


class DigitsDataModule(_BuiltinDataModule):
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
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, dm.num_classes  # 8×8 grayscale digits
        (torch.Size([64, 1, 8, 8]), 10)
        >>> module = lk.ClassificationModule(lk.models.ConvNet(1, 10), num_classes=10)
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
        super().__init__(batch_size, val_split, test_split, seed, num_workers)
        self.save_hyperparameters()
        self.class_names = tuple(str(digit) for digit in range(10))

    def prepare_data(self) -> None:
        _load_digits()  # fails early, with install advice, when scikit-learn is missing

    def make_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _load_digits()

    def normalize(self, inputs: torch.Tensor, train_idx: torch.Tensor) -> torch.Tensor:
        train = inputs[train_idx]
        return (inputs - train.mean()) / train.std()


class ShapesDataModule(_BuiltinDataModule):
    """Generated segmentation data: circles and rectangles on noise, with their masks.

    Images are ``3×image_size×image_size`` floats in about ``[0, 1]``: uniform noise with one to
    three shapes of random colours and sizes (so colour says nothing about the class), plus a
    little Gaussian noise. Masks are ``image_size×image_size`` integers: 0 background, 1 circle,
    2 rectangle (later shapes cover earlier ones). Generation is seeded and takes well under a
    second for the default size (about 0.5 s on a laptop core).

    Args:
        num_samples: Images to generate.
        image_size: Height and width.
        batch_size: Samples per batch.
        val_split: Fraction of samples used for validation.
        test_split: Fraction of samples used for testing.
        seed: Seed of the generation, the splits and the training shuffle order.
        num_workers: DataLoader workers (``"auto"`` picks 0: the data are in-memory tensors).

    Example:
        >>> dm = lk.data.ShapesDataModule(num_samples=64, image_size=32)
        >>> module = lk.SegmentationModule(lk.models.UNet(3, 3), num_classes=dm.num_classes)
        >>> dm.setup("fit")
        >>> images, masks = next(iter(dm.train_dataloader()))
        >>> images.shape, masks.shape
        (torch.Size([32, 3, 32, 32]), torch.Size([32, 32, 32]))
    """

    num_classes = 3
    class_names = ("background", "circle", "rectangle")

    def __init__(
        self,
        num_samples: int = 1000,
        image_size: int = 64,
        batch_size: int = 32,
        val_split: float = 0.1,
        test_split: float = 0.1,
        seed: int = 0,
        num_workers: int | str = "auto",
    ) -> None:
        num_samples = check_int("ShapesDataModule", "num_samples", num_samples, minimum=3)
        image_size = check_int("ShapesDataModule", "image_size", image_size, minimum=8)
        super().__init__(batch_size, val_split, test_split, seed, num_workers)
        self.num_samples = num_samples
        self.image_size = image_size
        self.save_hyperparameters()

    def make_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_shapes(self.num_samples, self.image_size, self.seed)


def make_shapes(
    num_samples: int, image_size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` images (``N×3×S×S`` float) and masks (``N×S×S`` long) of random shapes.

    Example:
        >>> images, masks = lk.data.make_shapes(4, image_size=32)
        >>> images.shape, masks.shape
        (torch.Size([4, 3, 32, 32]), torch.Size([4, 32, 32]))
        >>> masks.unique()  # background and two kinds of shape
        tensor([0, 1, 2])
    """
    num_samples = check_int("make_shapes", "num_samples", num_samples, minimum=1)
    image_size = check_int("make_shapes", "image_size", image_size, minimum=8)
    seed = check_seed("make_shapes", "seed", seed)
    g = torch.Generator().manual_seed(seed)
    n, size, slots = num_samples, image_size, 3
    low, high = max(2, size // 10), max(3, size // 4)

    def uniform(a: float, b: float, *shape: int) -> torch.Tensor:
        return a + (b - a) * torch.rand(*shape, generator=g)

    images = torch.rand(n, 3, size, size, generator=g) * 0.5
    masks = torch.zeros(n, size, size, dtype=torch.long)
    count = torch.randint(1, slots + 1, (n,), generator=g)
    kind = torch.randint(1, 3, (n, slots), generator=g)  # 1 circle, 2 rectangle
    centre = uniform(0, size - 1, n, slots, 2)
    half = uniform(low, high, n, slots, 2)  # radius (circles) or half height/width (rectangles)
    color = uniform(0.5, 1.0, n, slots, 3)
    yy = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    xx = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    for k in range(slots):  # later shapes cover earlier ones
        dy = yy - centre[:, k, 0].view(n, 1, 1)
        dx = xx - centre[:, k, 1].view(n, 1, 1)
        circle = dy**2 + dx**2 <= half[:, k, 0].view(n, 1, 1) ** 2
        rect = (dy.abs() <= half[:, k, 0].view(n, 1, 1)) & (dx.abs() <= half[:, k, 1].view(n, 1, 1))
        is_circle = (kind[:, k] == 1).view(n, 1, 1)
        region = torch.where(is_circle, circle, rect) & (count > k).view(n, 1, 1)
        images = torch.where(region.unsqueeze(1), color[:, k].view(n, 3, 1, 1), images)
        masks = torch.where(region, kind[:, k].view(n, 1, 1), masks)
    images += 0.05 * torch.randn(images.shape, generator=g)
    return images, masks


class SklearnDataModule(_BuiltinDataModule):
    """A tabular dataset bundled with scikit-learn (no download), standardized and split.

    ``"breast_cancer"``: 569 samples × 30 features, binary target (1 benign, 0 malignant) as
    float 0/1 for :class:`~lightkit.BinaryClassificationModule`. ``"diabetes"``: 442 samples ×
    10 features, a disease-progression value for :class:`~lightkit.RegressionModule`,
    standardized with the training split's mean and std (``target_mean`` and ``target_std``
    convert predictions back). Features are standardized with training statistics. Handy in
    LightningCLI configs (``examples/configs``). Needs scikit-learn (the ``examples`` extra).

    Args:
        name: ``"breast_cancer"`` or ``"diabetes"``.
        batch_size: Samples per batch.
        val_split: Fraction of all samples used for validation.
        test_split: Fraction of all samples used for testing.
        seed: Seed of the splits and of the training shuffle order.
        num_workers: DataLoader workers (``"auto"`` picks 0: the data are in-memory tensors).

    Example:
        >>> dm = lk.data.SklearnDataModule("diabetes", batch_size=32)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, y.shape  # ten standardized features, one target value each
        (torch.Size([32, 10]), torch.Size([32, 1]))
    """

    DATASETS = ("breast_cancer", "diabetes")

    def __init__(
        self,
        name: str = "breast_cancer",
        batch_size: int = 32,
        val_split: float = 0.15,
        test_split: float = 0.2,
        seed: int = 0,
        num_workers: int | str = "auto",
    ) -> None:
        check_instance("SklearnDataModule", "name", name, str, "a dataset name (str)")
        check_choice("SklearnDataModule", "name", name, self.DATASETS)
        super().__init__(batch_size, val_split, test_split, seed, num_workers)
        self.save_hyperparameters()
        self.name = name
        # scikit-learn's target names: 0 is malignant, 1 benign
        self.class_names = ("malignant", "benign") if name == "breast_cancer" else None
        self.target_mean, self.target_std = 0.0, 1.0

    @property
    def num_features(self) -> int:
        return 30 if self.name == "breast_cancer" else 10

    def prepare_data(self) -> None:
        _sklearn(self.name)

    def make_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        data = _sklearn(self.name)
        x = torch.tensor(data.data, dtype=torch.float32)
        y = torch.tensor(data.target, dtype=torch.float32)
        return x, y if self.name == "breast_cancer" else y.unsqueeze(1)

    def normalize(self, inputs: torch.Tensor, train_idx: torch.Tensor) -> torch.Tensor:
        train = inputs[train_idx]
        return (inputs - train.mean(0)) / train.std(0)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        super().setup(stage)
        if self.name == "diabetes":
            # Standardize the target with the training split's statistics too.
            y = self.train.tensors[1]
            self.target_mean, self.target_std = float(y.mean()), float(y.std())
            for split in ("train_dataset", "val_dataset", "test_dataset"):
                ds = getattr(self, split)
                if ds is not None:
                    x, t = ds.tensors
                    setattr(self, split, TensorDataset(x, (t - self.target_mean) / self.target_std))


def _sklearn(name: str) -> object:
    try:
        from sklearn import datasets
    except ImportError as err:
        raise ImportError(
            "SklearnDataModule needs scikit-learn, which ships these datasets: "
            'pip install "lightkit[examples]"'
        ) from err
    return getattr(datasets, f"load_{name}")()


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


__all__ = ["DigitsDataModule", "ShapesDataModule", "SklearnDataModule", "make_shapes"]
