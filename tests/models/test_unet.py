"""UNet."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


def test_unet_shapes_and_size_error():
    net = lk.models.UNet(3, 4, base=8, depth=3)
    assert net(torch.randn(2, 3, 24, 40)).shape == (2, 4, 24, 40)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8 \(depth=3\), got 20×40"):
        net(torch.randn(1, 3, 20, 40))
