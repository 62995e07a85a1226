"""ImageFolderDataModule(verify_files=True): every bad file named at setup, before any training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import lightkit as lk


def _folder(root):
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((12, 12, 3), 40 * i + (100 if c == "dog" else 0), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    full = root / "cat" / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        full
    )
    (root / "cat" / "cut.jpg").write_bytes(full.read_bytes()[:700])  # a download cut short
    full.unlink()
    (root / "dog" / "notes.png").write_text("not an image")
    return root


def test_verify_files_names_every_bad_file_at_setup(tmp_path):
    root = _folder(tmp_path / "pets")
    dm = lk.data.ImageFolderDataModule(root, image_size=8, val_split=0.25, verify_files=True)
    with pytest.raises(lk.data.BadImageError, match=r"2 bad image file\(s\)") as info:
        dm.setup("fit")
    message = str(info.value)
    assert "cut.jpg" in message and "end-of-image" in message and "notes.png" in message


def test_verify_files_with_skip_drops_them_and_says_so(tmp_path):
    root = _folder(tmp_path / "pets")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file") as caught:
        dm = lk.data.ImageFolderDataModule(
            root, image_size=8, val_split=0.25, verify_files=True, on_bad_file="skip"
        )
        dm.setup("fit")
    said = " ".join(str(w.message) for w in caught)
    assert "cut.jpg" in said and "notes.png" in said
    kept = [*dm.train.paths, *dm.val.paths]
    assert len(kept) == 8 and not any(p.name in ("cut.jpg", "notes.png") for p in kept)


def test_verify_files_must_be_a_boolean(tmp_path):
    with pytest.raises(TypeError, match=r"verify_files.*'yes'"):
        lk.data.ImageFolderDataModule(_folder(tmp_path / "pets"), image_size=8, verify_files="yes")
