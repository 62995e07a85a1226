"""Quiet by default: a run shows lightkit's lines, not Lightning's information; verbose=True shows them."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

import lightkit as lk
from helpers import make_blobs, tiny_net


@pytest.fixture(autouse=True)
def _restore_levels():
    levels = {
        name: logging.getLogger(name).level for name in ("lightning.pytorch", "lightning.fabric")
    }
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _run(tmp_path, caplog, **kwargs):
    caplog.set_level(logging.NOTSET)
    trainer = lk.make_trainer(
        max_epochs=1, default_root_dir=tmp_path, seed=0, enable_progress_bar=False, **kwargs
    )
    trainer.fit(
        lk.ClassificationModule(tiny_net(), 3), datamodule=lk.data.DataModule(make_blobs(64))
    )
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def test_lightning_information_lines_are_hidden_by_default(tmp_path, caplog):
    said = _run(tmp_path, caplog)
    for noise in ("Seed set to", "GPU available", "Tip", "`Trainer.fit` stopped"):
        assert noise not in said


def test_verbose_shows_them(tmp_path, caplog):
    said = _run(tmp_path, caplog, verbose=True)
    assert "Seed set to 0" in said and "GPU available" in said


def test_find_lr_draws_no_progress_bar_unless_verbose(tmp_path, capfd):
    dm = lk.data.DataModule(make_blobs(512), batch_size=16)
    lk.find_lr(
        lk.ClassificationModule(tiny_net(), 3), dm, num_training=20, default_root_dir=tmp_path
    )
    err = capfd.readouterr().err
    assert "Finding best initial lr" not in err


def test_torchscript_export_is_quiet(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lk.export.to_torchscript(tiny_net(), torch.randn(2, 8), tmp_path / "m.pt")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]


def test_verbose_must_be_a_boolean(tmp_path):
    with pytest.raises(TypeError, match=r"verbose.*'yes'"):
        lk.make_trainer(default_root_dir=tmp_path, verbose="yes")
