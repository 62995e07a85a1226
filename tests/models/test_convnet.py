"""ConvNet."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


@pytest.mark.parametrize("size", [8, 9, 13, 32, 64])
def test_convnet_any_size_from_8(size):
    net = lk.models.ConvNet(3, 5)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_convnet_wrong_channels_is_named():
    with pytest.raises(ValueError, match=r"expected input of shape N×1×H×W, got \(2, 3, 8, 8\)"):
        lk.models.ConvNet(1, 10)(torch.randn(2, 3, 8, 8))
