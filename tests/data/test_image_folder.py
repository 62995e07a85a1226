"""ImageFolderDataModule: class folders of image files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lightkit as lk
from helpers import write_image, write_sixteen_bit_png


@pytest.fixture
def image_folder(tmp_path):
    """3 classes × 10 images, PNG and JPEG mixed, plus a non-image file that must be ignored."""
    root = tmp_path / "pets"
    for label, name in enumerate(["cat", "dog", "emu"]):
        for i in range(10):
            ext = ".png" if i % 2 else ".jpg"
            write_image(root / name / f"{i}{ext}", 60 * label + i)
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_datamodule(image_folder):
    dm = lk.data.ImageFolderDataModule(
        image_folder, image_size=12, val_split=0.2, test_split=0.2, batch_size=4, num_workers=0
    )
    assert dm.class_names == ["cat", "dog", "emu"] and dm.num_classes == 3
    dm.setup("fit")
    splits = {"train": dm.train_dataset, "val": dm.val_dataset, "test": dm.test_dataset}
    paths = {k: set(map(str, ds.paths)) for k, ds in splits.items()}
    assert sum(map(len, paths.values())) == 30
    assert not (
        paths["train"] & paths["val"]
        or paths["train"] & paths["test"]
        or paths["val"] & paths["test"]
    )
    for split, expected in (("train", 6), ("val", 2), ("test", 2)):  # stratified: per class
        labels = splits[split].labels
        assert [labels.count(c) for c in range(3)] == [expected] * 3
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 12, 12) and x.dtype == torch.float32 and y.dtype == torch.long
    again = lk.data.ImageFolderDataModule(image_folder, 12, val_split=0.2, test_split=0.2)
    again.setup("fit")
    assert set(map(str, again.val_dataset.paths)) == paths["val"]


def test_image_folder_trains(image_folder, fast_trainer_kwargs):
    dm = lk.data.ImageFolderDataModule(image_folder, 16, val_split=0.2, batch_size=8, mode="L")
    module = lk.ClassificationModule(
        lk.models.ConvNet(1, dm.num_classes, widths=(8, 16)), dm.num_classes
    )
    trainer = lk.make_trainer(max_epochs=2, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=dm)
    assert "val/acc" in trainer.callback_metrics


def test_augmentation_is_reproducible_with_workers(image_folder):
    def first_batch():
        dm = lk.data.ImageFolderDataModule(image_folder, 12, batch_size=6, num_workers=2, seed=7)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))[0]

    torch.testing.assert_close(first_batch(), first_batch(), rtol=0, atol=0)


def test_image_folder_errors(tmp_path, image_folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.data.ImageFolderDataModule(tmp_path / "nope", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        lk.data.ImageFolderDataModule(tmp_path / "empty", 8)
    (image_folder / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"class folder '.*zebra' has no images"):
        lk.data.ImageFolderDataModule(image_folder, 8)


def test_image_folder_reads_16_bit_png_and_float_tiff(tmp_path):
    root = tmp_path / "scans"
    for i in range(4):
        (root / "a").mkdir(parents=True, exist_ok=True)
        (root / "b").mkdir(parents=True, exist_ok=True)
        write_sixteen_bit_png(root / "a" / f"{i}.png", size=(8, 8))
        Image.fromarray(np.full((8, 8), 0.25, np.float32)).save(root / "b" / f"{i}.tiff")
    dm = lk.data.ImageFolderDataModule(
        root, 8, val_split=0.5, mode="L", mean=(0.0,), std=(1.0,), num_workers=0
    )
    dm.setup("fit")
    values = {}
    for x, y in dm.val_dataset:
        values.setdefault(y, set()).update(round(v, 4) for v in x.unique().tolist())
    assert values == {0: {0.5, 1.0}, 1: {0.25}}
