"""RegressionModule (what every task does is in test_task_family.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import fit_one_epoch, regression_data


def test_nan_regression_target_is_located(fast_trainer_kwargs):
    x, y = regression_data().tensors
    y = y.clone()
    y[:, 0] = torch.where(torch.arange(len(y)) == 0, float("nan"), y[:, 0])
    with pytest.raises(
        ValueError,
        match=r"RegressionModule: target nan at position \(\d+, 0\) of train batch \d+ is invalid; expected finite numbers",
    ):
        fit_one_epoch(
            lk.RegressionModule(lk.models.MLP(8, 1)), TensorDataset(x, y), fast_trainer_kwargs
        )
