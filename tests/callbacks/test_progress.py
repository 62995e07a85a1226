"""Progress: plain lines when the output is not a terminal, Rich's bar on one."""

from __future__ import annotations

import lightkit as lk
from helpers import make_blobs


def test_plain_progress_lines_when_output_is_not_a_terminal(tmp_path, capsys):
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, logger=False)
    bars = [c for c in trainer.callbacks if isinstance(c, lk.callbacks.PlainProgressBar)]
    assert len(bars) == 1  # pytest captures stdout: not a terminal
    bars[0].interval = 0  # a line after every batch
    data = make_blobs(n=64)
    trainer.fit(lk.ClassificationModule(lk.models.MLP(8, 3), 3),
                datamodule=lk.data.DataModule(data, batch_size=16))  # fmt: skip
    out = capsys.readouterr().out
    assert "epoch 1/2  step 1/" in out and "train/loss" in out
    assert "epoch 2/2 done in" in out and "val/loss" in out
    assert "\r" not in out  # no redraws


def test_rich_progress_bar_on_a_terminal(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from lightkit.trainer.presets import progress_bar as _progress_bar

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert isinstance(_progress_bar(), RichProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert isinstance(_progress_bar(), lk.callbacks.PlainProgressBar)
