"""backbone(weights=...): pretrained weights from the local hub cache or a state_dict file, never
downloaded."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision

import lightkit as lk


def _body(net):
    return {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}


def test_a_state_dict_file_starts_the_body_and_the_head_is_fresh(tmp_path):
    torch.manual_seed(0)
    trained = lk.models.backbone("resnet18", num_classes=5)
    torch.save(trained.state_dict(), tmp_path / "pets.pt")
    tuned = lk.models.backbone("resnet18", num_classes=3, weights=tmp_path / "pets.pt")
    assert tuned.fc.out_features == 3
    for key, value in _body(trained).items():
        torch.testing.assert_close(tuned.state_dict()[key], value, rtol=0, atol=0)
    # The same number of classes: the head comes from the file too.
    same = lk.models.backbone("resnet18", num_classes=5, weights=str(tmp_path / "pets.pt"))
    torch.testing.assert_close(same.fc.weight, trained.fc.weight, rtol=0, atol=0)
    # The checkpoint records the architecture, not the file: nothing to find at load time.
    assert "weights" not in same.init_spec["init_args"]


def test_a_grayscale_stem_averages_the_files_rgb_kernels(tmp_path):
    trained = lk.models.backbone("resnet18", num_classes=2)
    torch.save(trained.state_dict(), tmp_path / "rgb.pth")
    gray = lk.models.backbone(
        "resnet18", num_classes=2, in_channels=1, weights=tmp_path / "rgb.pth"
    )
    expected = trained.conv1.weight.mean(dim=1, keepdim=True) * 3
    torch.testing.assert_close(gray.conv1.weight, expected)


def test_a_lightkit_checkpoint_gives_its_nets_weights(tmp_path):
    net = lk.models.backbone("resnet18", num_classes=4)
    module = lk.ClassificationModule(net, 4)
    torch.save({"state_dict": module.state_dict(), "lightkit": {}}, tmp_path / "run.ckpt")
    tuned = lk.models.backbone("resnet18", num_classes=2, weights=tmp_path / "run.ckpt")
    for key, value in _body(net).items():
        torch.testing.assert_close(tuned.state_dict()[key], value, rtol=0, atol=0)


def test_a_file_of_another_architecture_is_refused_naming_the_layers(tmp_path):
    torch.save(lk.models.backbone("mobilenet_v3_small", 2).state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"does not hold weights of a 'resnet18': conv1.weight"):
        lk.models.backbone("resnet18", num_classes=2, weights=tmp_path / "m.pt")
    torch.save({"note": "hello"}, tmp_path / "notes.pt")
    with pytest.raises(ValueError, match=r"does not hold a state_dict"):
        lk.models.backbone("resnet18", num_classes=2, weights=tmp_path / "notes.pt")
    with pytest.raises(FileNotFoundError, match=r"weights file '.*missing.pt' does not exist"):
        lk.models.backbone("resnet18", num_classes=2, weights=tmp_path / "missing.pt")


def test_torchvision_weights_come_only_from_the_local_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))  # torch.hub.get_dir(): <it>/hub
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    expected = tmp_path / "home" / "hub" / "checkpoints" / os.path.basename(url)
    with pytest.raises(FileNotFoundError) as caught:
        lk.models.backbone("resnet18", num_classes=2, weights="IMAGENET1K_V1")
    assert repr(str(expected)) in str(caught.value) and url in str(caught.value)
    # A file in the cache (here one we made) is used, with no network.
    source = torchvision.models.resnet18()
    expected.parent.mkdir(parents=True)
    torch.save(source.state_dict(), expected)
    net = lk.models.backbone("resnet18", num_classes=2, weights="DEFAULT")
    torch.testing.assert_close(net.conv1.weight, source.conv1.weight, rtol=0, atol=0)
