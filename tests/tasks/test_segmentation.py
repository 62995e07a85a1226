"""SegmentationModule (what every task does is in test_task_family.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import fit_one_epoch


def test_segmentation_mask_value_out_of_range(fast_trainer_kwargs):
    x, m = lk.data.make_shapes(8, 16)
    m[2, 5, 5] = 7
    with pytest.raises(
        ValueError,
        match=r"label 7 at position \(\d+, 5, 5\) of train batch 0 is invalid; expected mask values in \[0, 3\)",
    ):
        fit_one_epoch(
            lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=1), 3),
            TensorDataset(x, m),
            fast_trainer_kwargs,
        )


def test_segmentation_ignore_index_is_ignored(fast_trainer_kwargs):
    x, m = lk.data.make_shapes(16, 16)
    m[:, :4] = 255
    module = lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=1), 3, ignore_index=255)
    fit_one_epoch(module, TensorDataset(x, m), fast_trainer_kwargs)  # no error: 255 is allowed
    logits = torch.randn(2, 3, 16, 16)
    changed = logits.clone()
    changed[:, :, :4] = 100.0  # only ignored pixels differ
    assert module.compute_loss(logits, m[:2]) == pytest.approx(
        float(module.compute_loss(changed, m[:2]))
    )
