"""Class names end to end: the data module's names reach the checkpoint, Predictor and serve."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import lightkit as lk
from helpers import make_blobs, quiet_trainer


def mlp(outputs: int) -> lk.models.MLP:  # rebuilt from the checkpoint alone
    return lk.models.MLP(8, outputs, hidden=(16,))


def _fit(tmp_path, module, dm, **kwargs):
    trainer = quiet_trainer(tmp_path, max_epochs=4, logger=False, **kwargs)
    trainer.fit(module, datamodule=dm)
    return trainer.checkpoint_callback.best_model_path


def test_image_folder_names_reach_predict_labels(tmp_path):
    rng = np.random.default_rng(0)
    for name, level in (("night", 30), ("day", 220)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(level + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.png")
    dm = lk.data.ImageFolderDataModule(
        tmp_path / "pics", image_size=8, val_split=0.25, augment=False
    )
    net = lk.models.ConvNet(3, 2)
    path = _fit(tmp_path, lk.ClassificationModule(net, 2, optimizer=lk.optim.adam(lr=1e-2)), dm)
    assert torch.load(path, weights_only=True)["lightkit"]["class_names"] == ["day", "night"]
    predictor = lk.Predictor.from_checkpoint(path)
    assert predictor.class_names == ("day", "night")
    files = [tmp_path / "pics" / "night" / "0.png", tmp_path / "pics" / "day" / "0.png"]
    assert predictor.predict_labels(files) == ["night", "day"]
    assert lk.ClassificationModule.load_from_checkpoint(path).class_names == ("day", "night")


def test_names_given_to_a_data_module_label_each_prediction(tmp_path):
    names = ["red", "green", "blue"]
    x, y = make_blobs(256).tensors
    dm = lk.data.TensorDataModule(x, y, class_names=names, batch_size=32)
    path = _fit(tmp_path, lk.ClassificationModule(mlp(3), 3), dm)
    predictor = lk.Predictor.from_checkpoint(path)
    labels = predictor.predict_labels(x[:20])
    assert labels == [names[i] for i in predictor.predict(x[:20]).argmax(1).tolist()]
    assert sum(a == names[b] for a, b in zip(labels, y[:20].tolist(), strict=True)) >= 16


def test_serve_answers_with_the_label(tmp_path):
    from lightkit.serve import PredictorAPI

    x, y = make_blobs(256).tensors
    dm = lk.data.TensorDataModule(x, y, class_names=["red", "green", "blue"], batch_size=32)
    api = PredictorAPI(checkpoint=_fit(tmp_path, lk.ClassificationModule(mlp(3), 3), dm))
    api.setup("cpu")
    body = json.loads(
        api.encode_response(api.predict(api.decode_request({"inputs": x[0].tolist()}))).body
    )
    probs = torch.tensor(body["outputs"])
    assert body["label"] == ["red", "green", "blue"][int(probs.argmax())]


def test_multilabel_binary_and_regression_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    tags = (x[:, :3] > 0).float()
    module = lk.MultilabelClassificationModule(mlp(3), 3)
    dm = lk.data.TensorDataModule(x, tags, class_names=["a", "b", "c"], batch_size=32)
    predictor = lk.Predictor.from_checkpoint(_fit(tmp_path / "m", module, dm))
    labels = predictor.predict_labels(x[:4])
    probs = predictor.predict(x[:4])
    assert labels == [
        [n for n, p in zip("abc", row, strict=True) if p > 0.5] for row in probs.tolist()
    ]

    binary = lk.BinaryClassificationModule(mlp(1))
    dm = lk.data.TensorDataModule(x, (x[:, 0] > 0).float(), batch_size=32)  # no names: indices
    predictor = lk.Predictor.from_checkpoint(_fit(tmp_path / "b", binary, dm))
    assert set(predictor.predict_labels(x[:8])) <= {0, 1} and predictor.class_names is None

    regression = lk.RegressionModule(torch.nn.Sequential(mlp(1), torch.nn.Flatten(0)))
    dm = lk.data.TensorDataModule(x, x[:, 0], batch_size=32)
    predictor = lk.Predictor.from_checkpoint(
        _fit(tmp_path / "r", regression, dm), net=regression.net
    )
    with pytest.raises(TypeError, match="outputs are values, not classes"):
        predictor.predict_labels(x[:2])


def test_names_that_do_not_match_the_task_are_refused_at_fit(tmp_path):
    x, y = make_blobs(64).tensors
    dm = lk.data.TensorDataModule(x, y, class_names=["only", "two"], batch_size=32)
    with pytest.raises(ValueError, match=r"names 2 classes .* outputs 3 \(multiclass\)"):
        _fit(tmp_path, lk.ClassificationModule(mlp(3), 3), dm)
    with pytest.raises(ValueError, match=r"class_names repeats \['a'\]"):
        lk.data.TensorDataModule(x, y, class_names=["a", "a", "b"])
    with pytest.raises(TypeError, match=r"class_names\[1\] must be a string, got 2"):
        lk.data.DataModule(list(zip(x, y, strict=True)), class_names=["a", 2])


def test_class_names_lightkit_did_not_check_are_borrowed_or_left_out(tmp_path):
    import lightning as L

    x, y = make_blobs(64).tensors

    class TheirDataModule(L.LightningDataModule):
        class_names: ClassVar = {0: "a", 1: "b", 2: "c"}  # not a list: only borrowed

        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)

    module = lk.ClassificationModule(mlp(3), 3)
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    with pytest.warns(UserWarning, match="class names are not recorded"):
        trainer.fit(module, datamodule=TheirDataModule())
    assert module.class_names is None

    class Plain(L.LightningModule):
        class_names: ClassVar = ["only one"]

        def forward(self, x):
            return x

    with pytest.warns(UserWarning, match="not using the module's class names"):
        predictor = lk.Predictor(Plain())
    assert predictor.class_names is None
    with pytest.raises(ValueError, match="at least 2"):
        lk.Predictor(Plain(), class_names=["only one"])  # given by you: an error
