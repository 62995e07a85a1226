"""Predictor on image files: a checkpoint without a recorded eval transform says so (no silent [0, 1])."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import lightkit as lk


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
