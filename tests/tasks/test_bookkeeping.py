"""TaskBookkeeping's state: epoch loss sums."""

from __future__ import annotations

import pytest
import torch


def test_epoch_loss_sum_does_not_overflow_in_half_precision():
    from lightkit.tasks._bookkeeping import TaskState

    state = TaskState()
    for _ in range(4):
        state.accumulate("val", torch.tensor(30000.0, dtype=torch.float16), 32)
    total, count = state.loss_sums["val"]
    assert torch.isfinite(total) and float(total / count) == pytest.approx(30000.0)
