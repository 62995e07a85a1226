"""backbone("timm/<name>"): timm models (the timm extra), their weights from a state_dict file or
the local Hugging Face cache, never downloaded; trained, checkpointed and served like the rest."""

from __future__ import annotations

import sys

import pytest
import torch

import lightkit as lk

timm = pytest.importorskip("timm")


def _fake_hub_cache(root, monkeypatch, repo_id: str, state: dict) -> None:
    """A Hugging Face cache holding ``state`` as ``repo_id``'s model.safetensors."""
    import huggingface_hub.constants
    from safetensors.torch import save_file

    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))


@pytest.mark.slow
def test_a_timm_model_trains_checkpoints_and_predicts(tmp_path):
    torch.manual_seed(0)
    net = lk.models.backbone("timm/resnet18", num_classes=3, in_channels=1)
    assert type(net).__module__.startswith("timm.") and net.fc.out_features == 3
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.adamw(lr=1e-3))
    x, y = torch.randn(32, 1, 32, 32), torch.randint(0, 3, (32,))
    dm = lk.data.TensorDataModule(x, y, batch_size=16, val_split=0.25, seed=0)
    trainer = lk.fine_tune(module, dm, epochs=2, freeze_epochs=1, layer_decay=0.75,
                           default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                           enable_model_summary=False)  # fmt: skip
    predictor = lk.Predictor.from_checkpoint(trainer.checkpoint_callback.last_model_path)
    assert type(predictor.module.net).__module__.startswith("timm.")  # rebuilt from the record
    with torch.no_grad():
        eager = module.eval()(x[:4]).softmax(1)
    torch.testing.assert_close(predictor.predict(x[:4]), eager)


def test_a_state_dict_file_starts_the_body_with_a_fresh_head_and_an_averaged_stem(tmp_path):
    torch.manual_seed(0)
    trained = lk.models.backbone("timm/resnet18", num_classes=5)
    torch.save(trained.state_dict(), tmp_path / "rgb.pt")
    tuned = lk.models.backbone("timm/resnet18", 2, in_channels=1, weights=tmp_path / "rgb.pt")
    assert tuned.fc.out_features == 2
    torch.testing.assert_close(tuned.layer4[1].conv2.weight, trained.layer4[1].conv2.weight,
                               rtol=0, atol=0)  # fmt: skip
    torch.testing.assert_close(
        tuned.conv1.weight, trained.conv1.weight.mean(dim=1, keepdim=True) * 3
    )
    other = lk.models.backbone("timm/resnet10t", num_classes=5)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"does not hold weights of a 'timm/resnet18'"):
        lk.models.backbone("timm/resnet18", 5, weights=tmp_path / "other.pt")


def test_default_weights_come_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    torch.manual_seed(1)
    source = timm.create_model("resnet18", num_classes=1000)
    _fake_hub_cache(tmp_path, monkeypatch, "timm/resnet18.a1_in1k", source.state_dict())
    net = lk.models.backbone("timm/resnet18.a1_in1k", 4, in_channels=1, weights="DEFAULT")
    torch.testing.assert_close(net.layer2[0].conv1.weight, source.layer2[0].conv1.weight,
                               rtol=0, atol=0)  # fmt: skip
    torch.testing.assert_close(net.conv1.weight[:, 0], source.conv1.weight.sum(1))  # timm adapts
    assert net.fc.out_features == 4
    assert "state_dict" not in net.pretrained_cfg  # no second copy of the weights kept


def test_missing_and_bad_timm_weights_say_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"timm/resnet18.a1_in1k.*not in the local "
                       r"Hugging Face cache; lightkit downloads nothing"):  # fmt: skip
        lk.models.backbone("timm/resnet18.a1_in1k", 4, weights="DEFAULT")
    with pytest.raises(ValueError, match=r"unknown timm model 'resnet_nope'"):
        lk.models.backbone("timm/resnet_nope", 4)
    with pytest.raises(ValueError, match=r"Invalid pretrained tag \(nope\)"):
        lk.models.backbone("timm/resnet18.nope", 4, weights="DEFAULT")
    with pytest.raises(ValueError, match=r"weights of a timm model must be None, 'DEFAULT'"):
        lk.models.backbone("timm/resnet18", 4, weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1"):
        lk.models.backbone("timm/resnet18", 0)


def test_without_timm_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install 'lightkit\[timm\]'"):
        lk.models.backbone("timm/resnet18", 4)


def test_safetensors_files_are_read_as_state_dicts(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    trained = lk.models.backbone("resnet18", num_classes=5)
    save_file(trained.state_dict(), str(tmp_path / "pets.safetensors"))
    tuned = lk.models.backbone("resnet18", 3, weights=tmp_path / "pets.safetensors")
    torch.testing.assert_close(tuned.layer3[0].conv1.weight, trained.layer3[0].conv1.weight,
                               rtol=0, atol=0)  # fmt: skip
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match=r"bad.safetensors' is not a readable safetensors file"):
        lk.models.backbone("resnet18", 3, weights=tmp_path / "bad.safetensors")
