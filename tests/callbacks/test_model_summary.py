"""TorchinfoSummary: the torchinfo summary of the first real batch, printed and saved."""

from __future__ import annotations

import lightkit as lk
from helpers import row_images


def test_torchinfo_summary_is_printed_and_saved(tmp_path, capsys):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16))
    text = (tmp_path / "version_0" / "model_summary.txt").read_text()
    assert "input: (16, 1, 8, 8)" in text  # the real first batch
    assert "Total params" in text and "Total mult-adds" in text and "Conv2d" in text
    assert "model summary saved to" in capsys.readouterr().out
    # make_trainer(enable_model_summary=False) turns it off.
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16))
    assert not (tmp_path / "version_1" / "model_summary.txt").exists()
    assert before  # (the summary itself changes no weights: covered by the seeded-run tests)
