"""Reference networks."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


def test_backbone_replaces_head_and_stem():
    net = lk.models.backbone("resnet18", num_classes=7, in_channels=1)
    assert net.fc.out_features == 7 and net.conv1.in_channels == 1
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    mobile = lk.models.backbone("mobilenet_v3_small", num_classes=4)
    assert mobile(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_backbone_rebuilds_from_its_spec():
    from lightkit._spec import from_spec, to_spec

    net = lk.models.backbone("resnet18", num_classes=3, in_channels=2)
    rebuilt = from_spec(to_spec(net), "net")
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x))


def test_backbone_unknown_name():
    with pytest.raises(ValueError, match="unknown torchvision classifier 'resnet9000'"):
        lk.models.backbone("resnet9000", 10)
