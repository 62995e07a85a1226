"""Reference networks."""

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


def test_mlp_flattens_and_checks_features():
    net = lk.models.MLP(64, 10, hidden=(16, 16), dropout=0.2)
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    with pytest.raises(ValueError, match="expected 64 input features per sample"):
        net(torch.randn(4, 10))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: lk.models.MLP(0, 3), "in_features must be an integer >= 1, got 0"),
        (lambda: lk.models.MLP(4, 3, hidden=(8, -1)), r"hidden\[1\] must be an integer >= 1"),
        (lambda: lk.models.MLP(4, 3, dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (
            lambda: lk.models.ConvNet(3, 10, widths=()),
            "widths must be a list or tuple of at least 1 item, got \\(\\)",
        ),
    ],
)
def test_bad_model_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unet_shapes_and_size_error():
    net = lk.models.UNet(3, 4, base=8, depth=3)
    assert net(torch.randn(2, 3, 24, 40)).shape == (2, 4, 24, 40)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8 \(depth=3\), got 20×40"):
        net(torch.randn(1, 3, 20, 40))


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
