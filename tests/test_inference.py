"""Predictor: rebuilt from a checkpoint alone, every input kind, natural outputs, clear errors."""

from __future__ import annotations

import warnings

import lightning
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _fit(module, dm, tmp_path, epochs=3):
    trainer = lk.make_trainer(
        max_epochs=epochs, default_root_dir=tmp_path, logger=False, seed=0,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return trainer.checkpoint_callback.best_model_path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("clf")
    data = make_blobs(n=256)
    net = lk.models.MLP(8, 3, hidden=(16,))
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.adam(lr=1e-2))
    path = _fit(module, lk.data.DataModule(data, batch_size=32), tmp_path)
    return path, data


def test_from_checkpoint_alone_predicts_probabilities_on_every_input_kind(classifier):
    path, data = classifier
    predictor = lk.Predictor.from_checkpoint(path, device="auto")
    assert isinstance(predictor.module, lk.ClassificationModule)
    assert not predictor.module.training and predictor.input_shape == (8,)
    x, y = data.tensors
    probs = predictor.predict(x, batch_size=100)  # three batches
    assert probs.shape == (256, 3) and probs.device.type == "cpu"
    torch.testing.assert_close(probs.sum(1), torch.ones(256))
    assert (probs.argmax(1) == y).float().mean() > 0.9
    # The same module, called directly, gives the same numbers.
    with torch.no_grad():
        torch.testing.assert_close(probs, predictor.module(x).softmax(1))
    torch.testing.assert_close(predictor.predict(x.numpy()), probs)
    torch.testing.assert_close(predictor.predict(x.double().numpy()), probs)
    torch.testing.assert_close(predictor.predict(list(x[:10])), probs[:10])
    torch.testing.assert_close(predictor.predict(x[:10].tolist()), probs[:10])
    torch.testing.assert_close(predictor.predict(TensorDataset(x, y)), probs)
    torch.testing.assert_close(predictor.predict(TensorDataset(x)), probs)


def test_predict_errors_name_what_is_wrong(classifier):
    path, _ = classifier
    predictor = lk.Predictor.from_checkpoint(path, device="cpu")
    with pytest.raises(
        ValueError, match=r"inputs of shape \(4, 7\) do not match the model's input: N×8"
    ):
        predictor.predict(torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"add a batch dimension \(x\[None\]\)"):
        predictor.predict(torch.randn(8))
    with pytest.raises(ValueError, match=r"sample 1 has shape \(3,\), the model expects \(8,\)"):
        predictor.predict([torch.randn(8), torch.randn(3)])
    with pytest.raises(TypeError, match="sample 0 is not numeric data"):
        predictor.predict([["a"] * 8])
    with pytest.raises(ValueError, match="sample 2 contains NaN or Inf"):
        predictor.predict([torch.randn(8), torch.randn(8), torch.full((8,), float("nan"))])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        predictor.predict(torch.randn(2, 8), batch_size=0)
    with pytest.raises(TypeError, match="inputs must be a tensor, a numpy array"):
        predictor.predict(3.5)
    with pytest.raises(ValueError, match="inputs is empty"):
        predictor.predict([])
    with (
        pytest.raises(ValueError, match="device='cuda' but CUDA is not available")
        if not torch.cuda.is_available()
        else _nothing()
    ):
        lk.Predictor.from_checkpoint(path, device="cuda")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class CustomNet(nn.Module):
    """A user net without init_args: cannot be rebuilt from the checkpoint alone."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        return self.linear(x)


def test_custom_net_needs_net_argument(tmp_path):
    data = make_blobs(n=64)
    module = lk.ClassificationModule(CustomNet(), 3)
    path = _fit(module, lk.data.DataModule(data, batch_size=32), tmp_path, epochs=1)
    with pytest.raises(TypeError, match="pass net=<an instance of the trained architecture>"):
        lk.Predictor.from_checkpoint(path)
    predictor = lk.Predictor.from_checkpoint(path, net=CustomNet())
    torch.testing.assert_close(
        predictor.predict(data.tensors[0]), module.eval()(data.tensors[0]).softmax(1).detach()
    )
    # A module in memory works without any checkpoint.
    assert lk.Predictor(module).predict(data.tensors[0][:5]).shape == (5, 3)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: lk.BinaryClassificationModule(lk.models.MLP(8, 1, hidden=(8,))), (16,)),
        (lambda: lk.MultilabelClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3), (16, 3)),
        (lambda: lk.RegressionModule(lk.models.MLP(8, 1, hidden=(8,))), (16, 1)),
    ],
)
def test_natural_outputs_of_other_tasks(tmp_path, make, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    targets = {
        (16,): (x[:, 0] > 0).float(),
        (16, 3): (x[:, :3] > 0).float(),
        (16, 1): x[:, :1] * 2,
    }[shape]
    module = make()
    path = _fit(module, lk.data.DataModule(TensorDataset(x, targets), batch_size=16), tmp_path, 1)
    out = lk.Predictor.from_checkpoint(path).predict(x[:16])
    assert out.shape == shape
    if shape != (16, 1):
        assert ((out >= 0) & (out <= 1)).all()  # probabilities, not logits


def test_segmentation_gives_per_pixel_probabilities(tmp_path):
    dm = lk.data.ShapesDataModule(num_samples=32, image_size=16, batch_size=8)
    module = lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), 3)
    path = _fit(module, dm, tmp_path, epochs=1)
    dm.setup("fit")
    x = torch.stack([dm.train_dataset[i][0] for i in range(4)])
    out = lk.Predictor.from_checkpoint(path).predict(x)
    assert out.shape == (4, 3, 16, 16)
    torch.testing.assert_close(out.sum(1), torch.ones(4, 16, 16))


def test_image_paths_use_the_recorded_eval_transform(tmp_path):
    root = tmp_path / "pets"
    for label, name in enumerate(["cat", "dog"]):
        for i in range(8):
            (root / name).mkdir(parents=True, exist_ok=True)
            value = 40 + 150 * label + i
            array = np.full((20, 24, 3), value, dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"{i}.png")
    dm = lk.data.ImageFolderDataModule(
        root, image_size=12, val_split=0.25, batch_size=4, num_workers=0
    )
    module = lk.ClassificationModule(lk.models.ConvNet(3, 2, widths=(4, 8)), 2)
    path = _fit(module, dm, tmp_path / "runs", epochs=2)
    predictor = lk.Predictor.from_checkpoint(path)
    assert predictor.input_shape == (3, 12, 12)
    files = sorted(root.glob("*/*.png"))
    probs = predictor.predict([str(f) for f in files])
    assert probs.shape == (16, 2)
    # The same as transforming the images the way evaluation did, and calling the module.
    dm.setup("fit")
    eval_tf = lk.data.transforms.eval_preset(12)
    x = torch.stack([eval_tf(Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        torch.testing.assert_close(probs, predictor.module(x).softmax(1))
    torch.testing.assert_close(predictor.predict(files[0])[0], probs[0])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(lk.data.BadImageError, match=r"broken\.png"):
        predictor.predict([tmp_path / "broken.png"])


def test_checkpoint_without_lightkit_metadata_needs_task(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(4,)), 3)
    path = tmp_path / "plain.ckpt"
    plain = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(plain, path)
    with pytest.raises(ValueError, match=r"does not name its task module class.*pass task="):
        lk.Predictor.from_checkpoint(path)
    predictor = lk.Predictor.from_checkpoint(path, task=lk.ClassificationModule)
    assert predictor.input_shape is None
    assert predictor.predict(torch.randn(2, 8)).shape == (2, 3)


def _image(path):
    Image.fromarray(np.full((4, 4, 3), 200, dtype=np.uint8)).save(path)
    return path


def test_images_without_a_recorded_transform_warn_once(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    predictor = lk.Predictor(lk.ClassificationModule(net, 2))
    files = [_image(tmp_path / "a.png"), _image(tmp_path / "b.png")]
    with pytest.warns(UserWarning, match=r"records no eval transform.*pass transform=") as caught:
        probs = predictor.predict(files)
    assert probs.shape == (2, 2) and len(caught) == 1  # once, not per image
    quiet = lk.Predictor(
        lk.ClassificationModule(net, 2), transform=lk.data.transforms.eval_preset(4)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.predict(files)  # a transform given: nothing to warn about
