"""Predictor(tta=True): predictions averaged with the left-right flip (masks flipped back)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import lightkit as lk


class LeftHalf(nn.Module):
    """Logits from the left half of the image only: flipping changes the answer."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
        return torch.stack([left, -left], 1)


def test_classification_averages_the_two_views_and_labels_follow_the_average():
    predictor = lk.Predictor(lk.ClassificationModule(LeftHalf(), 2), device="cpu", tta=True)
    x = torch.zeros(2, 1, 4, 4)
    x[0, ..., :2] = 3.0  # bright on the left: class 0 as it is, class 1 flipped
    x[1, ..., 2:] = 1.0  # bright on the right
    plain = lk.Predictor(lk.ClassificationModule(LeftHalf(), 2), device="cpu")
    expected = (plain.predict(x) + plain.predict(x.flip(-1))) / 2
    torch.testing.assert_close(predictor.predict(x), expected)
    assert predictor.predict_labels(x) == expected.argmax(1).tolist()


def test_segmentation_probabilities_are_flipped_back():
    net = nn.Conv2d(1, 3, kernel_size=(1, 3), padding=(0, 1))  # sees its left and right neighbours
    torch.manual_seed(0)
    module = lk.SegmentationModule(net, 3)
    x = torch.randn(2, 1, 5, 6)
    plain = lk.Predictor(module, device="cpu").predict
    expected = (plain(x) + plain(x.flip(-1)).flip(-1)) / 2
    tta = lk.Predictor(module, device="cpu", tta=True)
    torch.testing.assert_close(tta.predict(x), expected)
    torch.testing.assert_close(tta.predict_labels(x), expected.argmax(1))


def test_binary_labels_use_the_threshold_on_the_average():
    class Right(nn.Module):
        def forward(self, x):
            return x[..., x.shape[-1] // 2 :].mean((1, 2, 3)) * 4 - 2

    module = lk.BinaryClassificationModule(Right(), threshold=0.5)
    x = torch.zeros(1, 1, 2, 2)
    x[..., 1] = 1.0  # right: logit 2 as it is, -2 flipped: the average probability is 0.5
    tta = lk.Predictor(module, device="cpu", tta=True)
    assert tta.predict(x).item() == pytest.approx(0.5)
    assert tta.predict_labels(x) == [0]  # not above the threshold


def test_tta_needs_images_and_a_boolean():
    tta = lk.Predictor(lk.ClassificationModule(lk.models.MLP(4, 2), 2), device="cpu", tta=True)
    with pytest.raises(
        ValueError, match=r"tta=True flips images \(N×C×H×W batches\), got inputs of shape \(3, 4\)"
    ):
        tta.predict(torch.randn(3, 4))
    with pytest.raises(TypeError, match="tta must be True or False"):
        lk.Predictor(lk.ClassificationModule(lk.models.MLP(4, 2), 2), tta="yes")


def test_from_checkpoint_and_the_server_api_take_tta(tmp_path):
    from helpers import no_log_trainer, row_images

    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4,)), 3)
    trainer = no_log_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16))
    path = trainer.checkpoint_callback.best_model_path
    x = torch.randn(3, 1, 8, 8)
    plain = lk.Predictor.from_checkpoint(path, device="cpu")
    expected = (plain.predict(x) + plain.predict(x.flip(-1))) / 2
    torch.testing.assert_close(
        lk.Predictor.from_checkpoint(path, device="cpu", tta=True).predict(x), expected
    )
    pytest.importorskip("litserve")
    from lightkit.serve import PredictorAPI

    api = PredictorAPI(checkpoint=path, max_batch_size=4, tta=True)
    api.setup("cpu")
    outputs = api.unbatch(api.predict(api.batch([api.decode_request({"instances": x.tolist()})])))
    got = torch.tensor(
        [p["outputs"] for p in json.loads(api.encode_response(outputs[0]).body)["predictions"]]
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
