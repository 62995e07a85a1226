"""Shared fixtures: tiny synthetic problems that train on the CPU in seconds (see helpers.py)."""

from __future__ import annotations

import warnings

import pytest
from torch.utils.data import TensorDataset

from helpers import make_blobs

warnings.filterwarnings("ignore", ".*does not have many workers.*")


@pytest.fixture
def blobs() -> TensorDataset:
    return make_blobs()


@pytest.fixture
def fast_trainer_kwargs(tmp_path) -> dict:
    """make_trainer arguments for quick, quiet test runs in a temporary folder."""
    return {
        "default_root_dir": tmp_path / "runs",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "seed": 0,
    }


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what they will
def pytest_collection_modifyitems(config, items):
    """A full example run (slow) does everything its --fast run does: when both are selected,
    as in CI, keep only the full run, so the suite stays within its time budget."""
    full = {
        item.callspec.params["script"]
        for item in items
        if getattr(item, "originalname", "") == "test_example_reaches_its_quality"
    }
    redundant = [
        item
        for item in items
        if getattr(item, "originalname", "") == "test_example_fast"
        and item.callspec.params["script"] in full
    ]
    if redundant:
        config.hook.pytest_deselected(items=redundant)
        items[:] = [item for item in items if item not in redundant]
