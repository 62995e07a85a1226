"""lightkit fit --resume continues the newest run that has a checkpoint, as lk.fit(resume=True) does."""

from __future__ import annotations

import pytest
import torch

from helpers import DIGITS_MLP_SECTIONS
from lightkit.cli import main

CONFIG = (
    """
seed_everything: 0
trainer:
  max_epochs: 1
  limit_train_batches: 3
  limit_val_batches: 2
  enable_progress_bar: false
  enable_model_summary: false
  logger: false
"""
    + DIGITS_MLP_SECTIONS
)


def _fit(config, root, *extra):
    return main(["fit", "--config", str(config), f"--trainer.default_root_dir={root}", *extra])


def test_resume_flag_continues_the_newest_run(tmp_path, capsys):
    config, root = tmp_path / "c.yaml", tmp_path / "runs"
    config.write_text(CONFIG)
    assert _fit(config, root, "--resume") == 0  # nothing yet: a new run, and it says so
    assert "--resume found nothing to resume" in capsys.readouterr().err
    assert _fit(config, root, "--resume", "--trainer.max_epochs=2") == 0
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]  # the same run, continued
    last = torch.load(root / "version_0/checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 1


def test_resume_flag_refuses_a_run_whose_checkpoints_are_all_damaged(tmp_path):
    config, root = tmp_path / "c.yaml", tmp_path / "runs"
    config.write_text(CONFIG)
    (root / "version_0" / "checkpoints").mkdir(parents=True)
    (root / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    with pytest.raises(SystemExit, match=r"--resume cannot continue .*run without --resume"):
        _fit(config, root, "--resume")
    with pytest.raises(SystemExit, match="--resume or --ckpt_path, not both"):
        _fit(config, root, "--resume", f"--ckpt_path={root / 'version_0/checkpoints/last.ckpt'}")
    with pytest.raises(SystemExit, match="--resume continues training, so it is for lightkit fit"):
        main(
            [
                "validate",
                "--config",
                str(config),
                f"--trainer.default_root_dir={root}",
                "--resume=true",
            ]
        )
