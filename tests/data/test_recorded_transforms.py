"""Eval transforms recorded in checkpoints as plain data, and rebuilt for image files."""

import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

import lightkit as lk
from helpers import no_log_trainer, tamper_checkpoint, write_image
from lightkit._spec import UntrustedSpecError, from_spec
from lightkit.data._recorded import NotDescribable, describe_transform, eval_pipeline


class PILImages(Dataset):
    """A user's own Dataset: (PIL image, label) pairs, with an optional torchvision-style transform."""

    def __init__(self, files, labels, mode="RGB", transform=None):
        self.files, self.labels, self.mode, self.transform = files, labels, mode, transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        image = Image.open(self.files[i]).convert(self.mode)
        return (self.transform(image) if self.transform else image), self.labels[i]


def _images(root, mode="RGB", n=12):
    files = [
        write_image(root / f"{i}.png", 30 + 170 * (i % 2), size=(14, 11), mode=mode)
        for i in range(n)
    ]
    return files, [i % 2 for i in range(n)]


def _fit(dm, channels, root):
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.ConvNet(channels, 2, widths=(4,)), 2)
    trainer = no_log_trainer(root, max_epochs=1)
    trainer.fit(module, datamodule=dm)
    return trainer.checkpoint_callback.best_model_path


def test_own_dataset_with_a_v1_eval_transform_predicts_image_files_as_trained(tmp_path):
    files, labels = _images(tmp_path / "img", mode="L")
    eval_tf = T.Compose([T.Resize(10), T.CenterCrop(8), T.ToTensor(), T.Normalize([0.5], [0.25])])
    dm = lk.data.DataModule(
        PILImages(files, labels, mode="L"),
        val_split=0.25,
        batch_size=4,
        num_workers=0,
        train_transform=eval_tf,
        eval_transform=eval_tf,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # recorded: nothing to warn about
        path = _fit(dm, 1, tmp_path / "runs")
        predictor = lk.Predictor.from_checkpoint(path)
        probs = predictor.predict([str(f) for f in files])
    assert predictor.image_mode == "L"  # the training images' mode, seen in the first sample
    x = torch.stack([eval_tf(Image.open(f).convert("L")) for f in files])
    with torch.no_grad():
        torch.testing.assert_close(probs, predictor.module(x).softmax(1))


def test_a_torchvision_style_datasets_own_transform_is_recorded(tmp_path):
    files, labels = _images(tmp_path / "img")
    tf = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((9, 9)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.4] * 3, [0.2] * 3),
        ]
    )
    dm = lk.data.DataModule(
        PILImages(files, labels, transform=tf), val_split=0.25, batch_size=4, num_workers=0
    )
    path = _fit(dm, 3, tmp_path / "runs")
    meta = torch.load(path, weights_only=True)["lightkit"]["inference"]
    assert meta["transform"]["class_path"] == "lightkit.data._recorded.eval_pipeline"
    predictor = lk.Predictor.from_checkpoint(path)
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[:3]])
    with torch.no_grad():
        expected = predictor.module(x).softmax(1)
    torch.testing.assert_close(predictor.predict(files[:3]), expected)


def test_an_eval_transform_that_cannot_be_recorded_is_named_once(tmp_path):
    files, labels = _images(tmp_path / "img")
    eval_tf = T.Compose([T.RandomHorizontalFlip(), T.Resize((8, 8)), T.ToTensor()])
    dm = lk.data.DataModule(
        PILImages(files, labels),
        val_split=0.25,
        batch_size=4,
        num_workers=0,
        eval_transform=eval_tf,
        train_transform=eval_tf,
    )
    with pytest.warns(
        UserWarning, match=r"eval_transform cannot be recorded.*RandomHorizontalFlip"
    ) as caught:
        path = _fit(dm, 3, tmp_path / "runs")
    assert len([w for w in caught if "cannot be recorded" in str(w.message)]) == 1
    assert torch.load(path, weights_only=True)["lightkit"]["inference"] is None
    predictor = lk.Predictor.from_checkpoint(path)
    with (
        pytest.warns(UserWarning, match="records no eval transform"),
        pytest.raises(ValueError, match=r"has shape \(3, 11, 14\), the model expects \(3, 8, 8\)"),
    ):
        predictor.predict(files[:1])


def test_a_tensor_transform_on_tabular_data_records_nothing_and_stays_quiet(tmp_path):
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    dm = lk.data.DataModule(
        torch.utils.data.TensorDataset(x, y),
        val_split=0.25,
        batch_size=16,
        num_workers=0,
        eval_transform=v2.Normalize([0.0], [2.0]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        path = _fit(dm, 1, tmp_path / "runs")
    assert torch.load(path, weights_only=True)["lightkit"]["inference"] is None


@pytest.mark.parametrize(
    "tf",
    [
        T.Compose(
            [
                T.Resize(12),
                T.CenterCrop((8, 10)),
                T.ToTensor(),
                T.Normalize((0.5, 0.4, 0.3), (0.2, 0.3, 0.4)),
            ]
        ),
        T.Compose(
            [
                T.Grayscale(3),
                T.Pad([1, 2], fill=7, padding_mode="constant"),
                T.PILToTensor(),
                T.ConvertImageDtype(torch.float32),
            ]
        ),
        v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(
                    [9], interpolation=v2.InterpolationMode.NEAREST, max_size=20, antialias=False
                ),
                v2.ToDtype(torch.float32, scale=True),
            ]
        ),
        v2.Compose(
            [
                v2.Grayscale(1),
                v2.Pad(3, padding_mode="reflect"),
                v2.ToImage(),
                v2.ToPureTensor(),
                v2.Identity(),
                v2.ToDtype(torch.float16, scale=True),
            ]
        ),
        lk.data.transforms.eval_preset(16),
    ],
)
def test_every_recordable_step_rebuilds_the_same_transform(tf):
    spec = describe_transform(tf)
    rebuilt = from_spec(spec, "test", kind="transform")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8))
    torch.testing.assert_close(rebuilt(image), tf(image))


@pytest.mark.parametrize(
    ("tf", "why"),
    [
        (T.Compose([T.ToTensor(), T.Lambda(lambda x: x * 2)]), "Lambda is not a step"),
        (v2.Compose([v2.ToImage(), v2.RandomCrop(4)]), "RandomCrop is not a step"),
        (T.Normalize([0.5], [0.5]), "fails on a PIL image"),
        (v2.Resize(8), "different result"),  # gives a PIL image, not a tensor
        (type("MyResize", (v2.Resize,), {})(8), "MyResize is not a step"),  # subclasses may differ
    ],
)
def test_what_cannot_be_recorded_says_why(tf, why):
    with pytest.raises(NotDescribable, match=why):
        describe_transform(tf)


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([{"op": "Lambda"}], "unknown op"),
        (
            [
                {
                    "op": "Resize",
                    "size": 10**9,
                    "interpolation": "bilinear",
                    "max_size": None,
                    "antialias": True,
                }
            ],
            "bad size",
        ),
        (
            [
                {
                    "op": "Resize",
                    "size": [8],
                    "interpolation": "evil",
                    "max_size": None,
                    "antialias": True,
                }
            ],
            "bad interpolation",
        ),
        ([{"op": "ToDtype", "dtype": "object", "scale": True}], "bad dtype"),
        ([{"op": "ToDtype", "dtype": "float32", "scale": "yes"}], "bad scale"),
        ([{"op": "Normalize", "mean": [0.5], "std": [0.0]}], "bad std"),
        ([{"op": "Normalize", "mean": [float("nan")], "std": [1.0]}], "bad mean"),
        (
            [{"op": "Pad", "padding": [1, 2, 3], "fill": 0, "padding_mode": "constant"}],
            "bad padding",
        ),
        ([{"op": "CenterCrop", "size": [8], "extra": 1}], r"takes \['size'\]"),
        ([{"op": "ToImage"}] * 33, "1 to 32 steps"),
        ("ToImage", "must be a list"),
    ],
)
def test_a_tampered_pipeline_in_a_checkpoint_is_refused_before_it_is_built(tmp_path, steps, match):
    from helpers import train_checkpoint

    good = train_checkpoint(tmp_path / "runs")

    def edit(checkpoint):
        spec = {
            "class_path": "lightkit.data._recorded.eval_pipeline",
            "init_args": {"steps": steps},
        }
        checkpoint["lightkit"]["inference"] = {"transform": spec, "image_mode": "RGB"}

    bad = tamper_checkpoint(good, tmp_path / "bad.ckpt", edit)
    with pytest.raises(ValueError, match=match):
        lk.Predictor.from_checkpoint(bad)
    with pytest.raises(ValueError, match=match):
        eval_pipeline(steps)


def test_a_pipeline_path_outside_the_allow_list_is_not_imported(tmp_path):
    spec = {"class_path": "torchvision.transforms.v2.Lambda", "init_args": {"lambd": "print"}}
    with pytest.raises(UntrustedSpecError):
        from_spec(spec, "test", kind="transform")
