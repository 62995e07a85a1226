"""MLP."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


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
