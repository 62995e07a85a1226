"""Transform presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

import lightkit as lk


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


@pytest.mark.parametrize("policy", ["rand", "trivial", "augmix"])
def test_train_preset_auto_augment_policies_and_random_erasing(policy):
    from PIL import Image
    from torchvision.transforms import v2

    tf = lk.data.transforms.train_preset(16, auto_augment=policy, random_erasing=1.0)
    kinds = [type(t) for t in tf.transforms]
    wanted = {"rand": v2.RandAugment, "trivial": v2.TrivialAugmentWide, "augmix": v2.AugMix}[policy]
    # the policy works on the 8-bit image, before scaling; erasing on the normalized tensor, last
    assert kinds.index(wanted) < kinds.index(v2.ToDtype) and kinds[-1] is v2.RandomErasing
    torch.manual_seed(0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    out = tf(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    plain = lk.data.transforms.train_preset(16, random_erasing=0.0)
    assert v2.RandomErasing not in [type(t) for t in plain.transforms]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"auto_augment": "randaugment"},
            ValueError,
            r"auto_augment must be None or one of \['augmix', 'rand', 'trivial'\]",
        ),
        ({"random_erasing": 1.5}, ValueError, r"random_erasing must be a number in \[0, 1\]"),
    ],
)
def test_train_preset_augmentation_options_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        lk.data.transforms.train_preset(16, **kwargs)


def test_image_folder_passes_the_augmentations_on(tmp_path):
    from torchvision.transforms import v2

    from helpers import write_image

    for label in ("a", "b"):
        for i in range(4):
            write_image(tmp_path / label / f"{i}.png", 40 + 100 * (label == "b") + i)
    dm = lk.data.ImageFolderDataModule(tmp_path, image_size=8, val_split=0.25, num_workers=0,
                                       auto_augment="trivial", random_erasing=0.5)  # fmt: skip
    dm.setup("fit")
    kinds = [type(t) for t in dm.train_dataset.transform.transforms]
    assert v2.TrivialAugmentWide in kinds and v2.RandomErasing in kinds
    with pytest.raises(ValueError, match="need augment=True"):
        lk.data.ImageFolderDataModule(tmp_path, image_size=8, augment=False, auto_augment="rand")
