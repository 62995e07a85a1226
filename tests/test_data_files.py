"""File-backed data: image folders, image files, segmentation pairs, transforms, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

import lightkit as lk


def _write_image(path, value: int, size=(20, 16), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    array = (rng.integers(0, 60, shape) + value).clip(0, 255).astype(np.uint8)
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    """3 classes × 10 images, PNG and JPEG mixed, plus a non-image file that must be ignored."""
    root = tmp_path / "pets"
    for label, name in enumerate(["cat", "dog", "emu"]):
        for i in range(10):
            ext = ".png" if i % 2 else ".jpg"
            _write_image(root / name / f"{i}{ext}", 60 * label + i)
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


def test_truncated_file_is_named_or_skipped(tmp_path):
    good = [_write_image(tmp_path / f"{i}.png", i) for i in range(3)]
    bad = tmp_path / "broken.jpg"
    data = _write_image(tmp_path / "full.jpg", 9).read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    text = tmp_path / "fake.png"
    text.write_text("hello")
    ds = lk.data.ImageFileDataset([*good, bad], [0, 1, 0, 1])
    assert ds[0][0].shape == (3, 16, 20)
    with pytest.raises(lk.data.BadImageError, match=r"cannot read image file '.*broken\.jpg'"):
        ds[3]
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable file\(s\).*broken\.jpg.*fake\.png"):
        skipped = lk.data.ImageFileDataset([*good, bad, text], [0, 1, 0, 1, 0], on_bad_file="skip")
    assert len(skipped) == 3 and skipped.labels == [0, 1, 0]


def test_paths_and_labels_lengths_must_match(tmp_path):
    with pytest.raises(ValueError, match="got 2 paths but 3 labels"):
        lk.data.ImageFileDataset(["a.png", "b.png"], [0, 1, 2])


def _write_pair(tmp_path, i, size=(32, 24)):
    image = _write_image(tmp_path / f"img{i}.png", i, size)
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    mask[:, : size[0] // 2] = 1  # left half class 1
    mask[: size[1] // 3] = 2  # top third class 2
    mask_path = tmp_path / f"mask{i}.png"
    Image.fromarray(mask, mode="L").save(mask_path)
    return image, mask_path


def test_segmentation_dataset_keeps_image_and_mask_aligned(tmp_path):
    image_path, mask_path = _write_pair(tmp_path, 0)
    # Encode the mask into the image: then any misalignment after transforms shows up.
    mask = np.array(Image.open(mask_path))
    Image.fromarray((mask * 100).astype(np.uint8), mode="L").convert("RGB").save(image_path)
    tf = lk.data.transforms.train_preset(
        16, mean=(0, 0, 0), std=(1, 1, 1), color_jitter=0, rotation=30
    )
    ds = lk.data.SegmentationDataset([image_path], [mask_path], transform=tf)
    torch.manual_seed(0)
    for _ in range(10):
        image, mask = ds[0]
        assert image.shape == (3, 16, 16) and mask.shape == (16, 16) and mask.dtype == torch.long
        assert set(mask.unique().tolist()) <= {0, 1, 2}  # nearest interpolation: no new values
        # Pixels of the image recode the mask (up to the edges that bilinear resampling blurs).
        recoded = (image[0] * 255 / 100).round().long()
        assert (recoded == mask).float().mean() > 0.8


def test_segmentation_dataset_without_transform(tmp_path):
    image, mask = _write_pair(tmp_path, 1)
    x, m = lk.data.SegmentationDataset([image], [mask])[0]
    assert x.shape == (3, 24, 32) and x.max() <= 1 and m.shape == (24, 32)
    assert m[0, 0] == 2 and m[-1, 0] == 1 and m[-1, -1] == 0


def test_segmentation_size_mismatch_names_both_files(tmp_path):
    image, _ = _write_pair(tmp_path, 0, size=(32, 24))
    _, mask = _write_pair(tmp_path, 1, size=(30, 24))
    with pytest.raises(
        ValueError, match=r"mask '.*mask1\.png' is 30×24 but its image '.*img0\.png' is 32×24"
    ):
        lk.data.SegmentationDataset([image], [mask])
    with pytest.raises(ValueError, match="got 1 images but 2 masks"):
        lk.data.SegmentationDataset([image], [mask, mask])


def test_presets_accept_image_mask_pairs_and_grayscale():
    image = tv_tensors.Image(torch.randint(0, 255, (1, 40, 30), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.randint(0, 3, (40, 30)))
    for tf in (
        lk.data.transforms.train_preset(24, mean=(0.5,), std=(0.2,)),
        lk.data.transforms.eval_preset(24, (0.5,), (0.2,)),
    ):
        x, m = tf(image, mask)
        assert x.shape == (1, 24, 24) and x.dtype == torch.float32 and m.shape == (24, 24)
        assert m.dtype == torch.int64
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        lk.data.transforms.eval_preset(0)


def test_compute_mean_std():
    ds = torch.utils.data.TensorDataset(
        torch.rand(50, 3, 8, 8) * torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1)
    )
    mean, std = lk.data.compute_mean_std(ds)
    flat = ds.tensors[0].transpose(0, 1).flatten(1)
    torch.testing.assert_close(
        torch.tensor(mean), flat.mean(1).double(), rtol=1e-5, atol=1e-6, check_dtype=False
    )
    torch.testing.assert_close(
        torch.tensor(std),
        flat.std(1, unbiased=False).double(),
        rtol=1e-4,
        atol=1e-5,
        check_dtype=False,
    )
