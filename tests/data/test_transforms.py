"""Transform presets."""

from __future__ import annotations

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
