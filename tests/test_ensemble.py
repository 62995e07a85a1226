"""lk.Predictor.ensemble / EnsemblePredictor: members' probabilities averaged, members checked."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import binary_data, make_blobs, no_log_trainer, regression_data, tamper_checkpoint
from lightkit.inference import EnsemblePredictor


def _train(make, data, root, seed):
    torch.manual_seed(seed)
    module = make()
    trainer = no_log_trainer(root, max_epochs=1)
    trainer.fit(module, datamodule=lk.data.DataModule(data, val_split=0.25, batch_size=32))
    return trainer.checkpoint_callback.best_model_path


def _mlp(outputs):
    return lk.models.MLP(8, outputs, hidden=(8,))


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    """Three 3-class checkpoints (different seeds); the third calibrated with temperature 3."""
    root = tmp_path_factory.mktemp("ensemble")
    data = make_blobs(64)
    paths = [
        _train(lambda: lk.ClassificationModule(_mlp(3), 3), data, root / f"m{s}", s)
        for s in range(3)
    ]
    paths[2] = tamper_checkpoint(
        paths[2], root / "calibrated.ckpt", lambda c: c["lightkit"].update(temperature=3.0)
    )
    return [str(p) for p in paths], data.tensors[0]


def _mean_of_members(paths, x, **kwargs):
    return torch.stack(
        [lk.Predictor.from_checkpoint(p, device="cpu", **kwargs).predict(x) for p in paths]
    ).mean(0)


def test_multiclass_ensemble_averages_the_members_probabilities(classifiers):
    paths, x = classifiers
    ensemble = lk.Predictor.ensemble(paths, device="cpu")
    assert isinstance(ensemble, lk.Predictor) and len(ensemble.members) == 3
    assert ensemble.input_shape == (8,) and ensemble.task_outputs.kind == "multiclass"
    assert ensemble.members[2].module.temperature == 3.0  # each member keeps its own
    probs = ensemble.predict(x, batch_size=10)  # batches of 10, 10, ..., 4
    expected = _mean_of_members(paths, x)
    torch.testing.assert_close(probs, expected)
    assert probs.shape == (64, 3) and probs.dtype == torch.float32 and probs.device.type == "cpu"
    torch.testing.assert_close(probs.sum(1), torch.ones(64))
    # not what averaging logits would give (the calibrated member makes them differ) ...
    with torch.no_grad():
        logits = torch.stack([m.module.calibrated(m.module(x)) for m in ensemble.members]).mean(0)
    assert not torch.allclose(probs, logits.softmax(-1), atol=1e-4)
    # ... nor any single member's
    for path in paths:
        single = lk.Predictor.from_checkpoint(path, device="cpu").predict(x)
        assert not torch.allclose(probs, single, atol=1e-4)
    # hard predictions come from the averaged probabilities
    assert ensemble.predict_labels(x) == expected.argmax(1).tolist()
    out, predicted = ensemble.predict_batch(x[:5], labels=True)
    torch.testing.assert_close(out, expected[:5])
    assert predicted.tolist() == expected[:5].argmax(1).tolist()
    # the same inputs as a Predictor: numpy, lists of samples, Datasets
    torch.testing.assert_close(ensemble.predict(x.numpy()), probs)
    torch.testing.assert_close(ensemble.predict(TensorDataset(x, x[:, 0])), probs)
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 7\) do not match"):
        ensemble.predict(torch.randn(2, 7))


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_binary_and_regression_ensembles_average_probabilities_and_values(tmp_path, kind):
    if kind == "binary":  # a threshold of 0.45: the ensemble's labels must use it
        make, data = (
            lambda: lk.BinaryClassificationModule(_mlp(1), threshold=0.45),
            binary_data(),
        )
    else:
        make, data = lambda: lk.RegressionModule(_mlp(1)), regression_data()
    paths = [_train(make, data, tmp_path / f"m{s}", s) for s in range(2)]
    x = data.tensors[0][:40]
    ensemble = lk.Predictor.ensemble(paths, device="cpu")
    out = ensemble.predict(x)
    expected = _mean_of_members(paths, x)
    torch.testing.assert_close(out, expected)
    members = [lk.Predictor.from_checkpoint(p, device="cpu").predict(x) for p in paths]
    assert not torch.allclose(members[0], members[1], atol=1e-4)  # the mean is not trivial
    if kind == "binary":
        assert out.shape == (40,) and ((out > 0) & (out < 1)).all()  # probabilities
        labels = ensemble.predict_labels(x)
        assert labels == (expected > 0.45).long().tolist()
        assert 0 < sum(labels) < 40 and labels != (expected > 0.5).long().tolist()
    else:
        assert out.shape == (40, 1)
        with pytest.raises(TypeError, match="outputs are values"):
            ensemble.predict_labels(x)
        assert ensemble.predict_batch(x, labels=True)[1] is None


def test_segmentation_and_tta_average_like_the_members():
    """In memory (no training): N×C×H×W probabilities, labels per pixel, TTA around the mean."""
    torch.manual_seed(0)
    modules = [lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), 3) for _ in range(2)]
    x = torch.rand(3, 3, 16, 16)
    for tta in (False, True):
        ensemble = EnsemblePredictor([lk.Predictor(m, device="cpu") for m in modules], tta=tta)
        members = [lk.Predictor(m, device="cpu", tta=tta).predict(x) for m in modules]
        expected = (members[0] + members[1]) / 2
        out = ensemble.predict(x)
        torch.testing.assert_close(out, expected)
        assert out.shape == (3, 3, 16, 16)
        assert torch.equal(ensemble.predict_labels(x), expected.argmax(1))
    plain = EnsemblePredictor([lk.Predictor(m, device="cpu") for m in modules]).predict(x)
    assert not torch.allclose(plain, out, atol=1e-4)  # the flips changed something


def _fresh(**kwargs):
    return lk.Predictor(lk.ClassificationModule(_mlp(3), 3), device="cpu", **kwargs)


def test_members_that_disagree_are_refused_naming_the_one_that_differs(classifiers, tmp_path):
    paths, _ = classifiers
    renamed = tamper_checkpoint(
        paths[0], tmp_path / "renamed.ckpt", lambda c: c["lightkit"].update(class_names=list("abc"))
    )
    with pytest.raises(ValueError, match=r"member 2 \('.*renamed\.ckpt'\) does not match member 0"):
        lk.Predictor.ensemble([paths[0], paths[1], renamed], device="cpu")
    with pytest.raises(ValueError, match=r"class names \('a', 'b', 'c'\) != None"):
        lk.Predictor.ensemble([paths[0], renamed], device="cpu")

    def refused(members, match):
        with pytest.raises(ValueError, match=match):
            EnsemblePredictor(members)

    four = lk.Predictor(lk.ClassificationModule(_mlp(4), 4), device="cpu")
    refused([_fresh(), four], r"member 1 does not match member 0: its task outputs .*num_classes=4")
    binary = [
        lk.Predictor(lk.BinaryClassificationModule(_mlp(1), threshold=t), device="cpu")
        for t in (0.5, 0.3)
    ]
    refused(binary, r"task outputs .*threshold=0\.3.* != .*threshold=0\.5")
    refused([_fresh(), binary[0]], r"kind='binary'.* != .*kind='multiclass'")
    refused([_fresh(input_shape=(8,)), _fresh(input_shape=(6,))], r"input shape \(6,\) != \(8,\)")
    refused([_fresh(class_names=list("xyz")), _fresh(class_names=list("xzy"))], "class names")
    refused([_fresh(image_mode="RGB"), _fresh(image_mode="L")], "image mode 'L' != 'RGB'")
    preset = lk.data.transforms.eval_preset(8)
    refused(
        [_fresh(transform=preset), _fresh(transform=lk.data.transforms.eval_preset(8))],
        "another eval transform",
    )
    refused([_fresh(), _fresh(tta=True)], r"member 1 has tta=True; pass tta=True to the ensemble")
    # agreeing members are fine, a shared transform object included
    assert len(EnsemblePredictor([_fresh(transform=preset), _fresh(transform=preset)]).members) == 2


def test_empty_or_malformed_member_lists_are_refused(classifiers):
    paths, _ = classifiers
    with pytest.raises(ValueError, match=r"checkpoints must be a list or tuple of at least 1 item"):
        lk.Predictor.ensemble([])
    with pytest.raises(TypeError, match="checkpoints must be a list or tuple"):
        lk.Predictor.ensemble(paths[0])  # one path, not a list
    with pytest.raises(ValueError, match=r"checkpoints\[1\] is None.*saved no best checkpoint"):
        lk.Predictor.ensemble([paths[0], None])
    with pytest.raises(TypeError, match=r"checkpoints\[0\] must be a checkpoint file path"):
        lk.Predictor.ensemble([3])
    with pytest.raises(TypeError, match="trust must be None"):
        lk.Predictor.ensemble(paths, trust=True)
    with pytest.raises(FileNotFoundError) as err:
        lk.Predictor.ensemble([paths[0], "missing.ckpt"], device="cpu")
    assert "checkpoints[1] ('missing.ckpt')" in "".join(err.value.__notes__)
    with pytest.raises(ValueError, match="members must be a list or tuple of at least 1 item"):
        EnsemblePredictor([])
    with pytest.raises(TypeError, match=r"members\[0\] must be a lightkit Predictor"):
        EnsemblePredictor([lk.ClassificationModule(_mlp(3), 3)])
    with pytest.raises(TypeError, match=r"use lk\.Predictor\.ensemble"):
        EnsemblePredictor.from_checkpoint(paths[0])


@pytest.fixture
def user_nets(tmp_path, monkeypatch):
    """An importable `lk_ens_nets` (the trained MLP's architecture) that leaves a marker file."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "lk_ens_nets.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            import lightkit as lk
            Path({str(marker)!r}).write_text("imported")
            class Net(lk.models.MLP):
                def __init__(self):
                    super().__init__(8, 3, hidden=(8,))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lk_ens_nets", raising=False)
    return marker


def test_trust_policy_applies_to_every_member(classifiers, tmp_path, user_nets):
    paths, x = classifiers
    user_net = {"class_path": "lk_ens_nets.Net", "init_args": {}}
    user = tamper_checkpoint(
        paths[1], tmp_path / "user.ckpt", lambda c: c["hyper_parameters"].update(net=user_net)
    )
    shell = {"class_path": "os.system", "init_args": {"command": f"touch {user_nets}"}}
    hostile = tamper_checkpoint(
        paths[1], tmp_path / "hostile.ckpt", lambda c: c["hyper_parameters"].update(net=shell)
    )
    for path in (user, hostile):
        with pytest.raises(lk.UntrustedSpecError) as err:
            lk.Predictor.ensemble([paths[0], path], device="cpu")
        assert f"checkpoints[1] ({str(path)!r})" in "".join(err.value.__notes__)
    assert not user_nets.exists() and "lk_ens_nets" not in sys.modules
    # trusted explicitly: the user's module is imported, for every member
    ensemble = lk.Predictor.ensemble([paths[0], user], device="cpu", trust=["lk_ens_nets"])
    assert user_nets.exists() and type(ensemble.members[1].module.net).__name__ == "Net"
    torch.testing.assert_close(ensemble.predict(x), _mean_of_members(paths[:2], x))
    with pytest.raises(lk.UntrustedSpecError):  # trust widens only what it names
        lk.Predictor.ensemble([paths[0], hostile], device="cpu", trust=["lk_ens_nets"])


def test_net_argument_gives_each_member_its_own_copy(classifiers):
    paths, x = classifiers
    net = _mlp(3)
    ensemble = lk.Predictor.ensemble(paths[:2], device="cpu", net=net)
    first, second = (m.module.net for m in ensemble.members)
    assert first is not net and second is not net and first is not second
    torch.testing.assert_close(ensemble.predict(x), _mean_of_members(paths[:2], x))
    with pytest.raises(TypeError, match=r"net must be None or a torch\.nn\.Module"):
        lk.Predictor.ensemble(paths, net="mlp")
