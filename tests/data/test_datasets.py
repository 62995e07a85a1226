"""File-backed datasets: image files, segmentation pairs, bad files, 16-bit and float images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import lightkit as lk
from helpers import write_image, write_sixteen_bit_png
from lightkit.data.datasets import load_image


def test_truncated_file_is_named_or_skipped(tmp_path):
    good = [write_image(tmp_path / f"{i}.png", i) for i in range(3)]
    bad = tmp_path / "broken.jpg"
    data = write_image(tmp_path / "full.jpg", 9).read_bytes()
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
    image = write_image(tmp_path / f"img{i}.png", i, size)
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


# --- untrusted image files: decompression bombs, 16-bit and float images -------------------------


@pytest.fixture
def small_pixel_limit(monkeypatch):
    """PIL's decompression-bomb limit lowered to 1000 pixels (restored after the test)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)


def test_decompression_bomb_is_named_and_skipped(tmp_path, small_pixel_limit):
    warned = write_image(tmp_path / "warned.png", 1, size=(40, 30), mode="L")  # 1200 > limit
    refused = write_image(tmp_path / "refused.png", 2, size=(50, 50), mode="L")  # 2500 > 2×limit
    good = write_image(tmp_path / "good.png", 3, size=(20, 16), mode="L")  # 320 pixels
    filters = list(warnings.filters)
    for path, pixels in ((warned, "1,200"), (refused, "2,500")):
        with pytest.raises(lk.data.BadImageError) as info:
            load_image(path)
        message = str(info.value)
        assert f"image file {str(path)!r} is refused as a possible decompression bomb" in message
        assert f"{pixels} pixels" in message and "limit of 1,000 pixels" in message
        assert "PIL.Image.MAX_IMAGE_PIXELS = " in message
    assert warnings.filters == filters  # the warning filter lightkit sets does not leak
    ds = lk.data.ImageFileDataset([warned, refused, good], [0, 1, 2])
    with pytest.raises(lk.data.BadImageError, match=r"warned\.png' is refused"):
        ds[0]
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable.*warned\.png, .*refused\.png"):
        kept = lk.data.ImageFileDataset([warned, refused, good], [0, 1, 2], on_bad_file="skip")
    assert kept.labels == [2] and kept[0][0].shape == (3, 16, 20)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(mask)
    with pytest.raises(lk.data.BadImageError, match=r"warned\.png' is refused"):
        lk.data.SegmentationDataset([warned], [mask])  # the size check reads the header
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        lk.data.SegmentationDataset([warned], [mask], on_bad_file="skip")


def test_raised_pixel_limit_loads_a_trusted_large_image(tmp_path, monkeypatch):
    path = write_image(tmp_path / "big.png", 1, size=(40, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)
    assert load_image(path).size == (40, 30)


def _identity_preset(image_size, channels):
    return lk.data.transforms.eval_preset(image_size, mean=(0.0,) * channels, std=(1.0,) * channels)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_16bit_png_is_scaled_by_its_range_end_to_end(tmp_path, mode):
    path = write_sixteen_bit_png(tmp_path / "scan.png")
    assert Image.open(path).mode == "I;16"
    channels = 1 if mode == "L" else 3
    expected = torch.ones(channels, 10, 12)
    expected[:, :, 6:] = 32768 / 65535
    ds = lk.data.ImageFileDataset([path], [0], mode=mode)  # no transform
    torch.testing.assert_close(ds[0][0], expected)
    eval_ds = lk.data.ImageFileDataset([path], [0], _identity_preset((10, 12), channels), mode)
    torch.testing.assert_close(eval_ds[0][0], expected)  # ToImage + ToDtype(scale=True)
    predictor = lk.Predictor(torch.nn.Identity(), device="cpu", image_mode=mode)
    torch.testing.assert_close(predictor.predict([path])[0], expected)  # its default transform
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(mask)
    image, _ = lk.data.SegmentationDataset([path], [mask], mode=mode)[0]
    torch.testing.assert_close(image, expected)


def test_float_tiff_in_unit_range_is_kept_and_others_refused(tmp_path):
    ramp = np.linspace(0, 1, 40, dtype=np.float32).reshape(5, 8)
    good = tmp_path / "ramp.tif"
    Image.fromarray(ramp).save(good)
    assert Image.open(good).mode == "F"
    torch.testing.assert_close(
        lk.data.ImageFileDataset([good], mode="L")[0][0], torch.from_numpy(ramp)
    )
    predictor = lk.Predictor(torch.nn.Identity(), device="cpu", image_mode="L")
    torch.testing.assert_close(predictor.predict([good])[0, 0], torch.from_numpy(ramp))
    bright = tmp_path / "bright.tif"
    Image.fromarray(ramp * 1000).save(bright)
    nan = tmp_path / "nan.tif"
    Image.fromarray(np.where(ramp > 0.5, np.nan, ramp).astype(np.float32)).save(nan)
    with pytest.raises(
        lk.data.BadImageError,
        match=r"bright\.tif' \(PIL mode 'F', float32\) has values in \[0\.0, 1000\.0\]",
    ):
        load_image(bright)
    with pytest.raises(lk.data.BadImageError, match=r"nan\.tif' .* NaN or infinite"):
        load_image(nan)
    with pytest.warns(UserWarning, match=r"skipped 2 .*bright\.tif.*nan\.tif"):
        kept = lk.data.ImageFileDataset([good, bright, nan], on_bad_file="skip")
    assert len(kept) == 1


def test_32bit_integer_images_are_read_as_16_bit_or_refused(tmp_path):
    pgm = tmp_path / "scan.pgm"  # 16-bit PGM: PIL mode I, values 0..65535
    Image.fromarray(np.array([[0, 65535], [32768, 65535]], np.uint16)).save(pgm)
    assert Image.open(pgm).mode == "I"
    x = lk.data.ImageFileDataset([pgm], mode="L")[0]
    torch.testing.assert_close(x, torch.tensor([[[0.0, 1.0], [32768 / 65535, 1.0]]]))
    wide = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(wide)
    with pytest.raises(
        lk.data.BadImageError, match=r"wide\.tif' \(PIL mode 'I', int32\).*\[0, 70000\]"
    ):
        load_image(wide)


def test_16bit_masks_stay_integer_class_indices(tmp_path):
    image = write_image(tmp_path / "img.png", 0, size=(12, 10))
    labels = np.zeros((10, 12), np.uint16)
    labels[:, 6:] = 300  # more classes than 8 bits hold
    mask = tmp_path / "mask.png"
    Image.fromarray(labels).save(mask)
    _, m = lk.data.SegmentationDataset([image], [mask])[0]
    assert m.dtype == torch.long and set(m.unique().tolist()) == {0, 300}
    tf = lk.data.transforms.train_preset(8, color_jitter=0, rotation=0)
    _, m = lk.data.SegmentationDataset([image], [mask], transform=tf)[0]
    assert m.dtype == torch.long and set(m.unique().tolist()) <= {0, 300}
    float_mask = tmp_path / "float_mask.tif"
    Image.fromarray(labels.astype(np.float32)).save(float_mask)
    ds = lk.data.SegmentationDataset([image], [float_mask])
    with pytest.raises(lk.data.BadImageError, match=r"float_mask\.tif' is a PIL mode 'F' image"):
        ds[0]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*img\.png"):
        lk.data.SegmentationDataset([image], [float_mask], on_bad_file="skip")


def test_colour_mask_is_named(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "mask.png")
    ds = lk.data.SegmentationDataset([tmp_path / "img.png"], [tmp_path / "mask.png"])
    with pytest.raises(
        lk.data.BadImageError, match=r"mask file '.*mask\.png' is a PIL mode 'RGB' image"
    ):
        ds[0]
