"""lightkit validate/test --ckpt_path write beside the checkpoint's run, not into a new root folder."""

from __future__ import annotations

from lightkit.cli import main

CONFIG = """
seed_everything: 0
trainer:
  max_epochs: 1
  limit_train_batches: 3
  limit_val_batches: 2
  limit_test_batches: 2
  enable_progress_bar: false
  enable_model_summary: false
model:
  class_path: lightkit.ClassificationModule
  init_args:
    num_classes: 10
    net:
      class_path: lightkit.models.MLP
      init_args: {in_features: 64, out_features: 10, hidden: [16]}
data:
  class_path: lightkit.data.DigitsDataModule
"""


def test_evaluating_a_checkpoint_writes_inside_its_run(tmp_path):
    config, root = tmp_path / "c.yaml", tmp_path / "runs"
    config.write_text(CONFIG)
    assert main(["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]) == 0
    trained_config = (root / "version_0" / "config.yaml").read_bytes()
    best = root / "version_0" / "checkpoints" / "best.ckpt"
    for command in ("validate", "test"):
        args = [command, "--config", str(config), f"--trainer.default_root_dir={root}"]
        assert main([*args, f"--ckpt_path={best}"]) == 0
        assert (root / "version_0" / command / "version_0" / "config.yaml").exists()
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]  # no new run at the root
    assert (root / "version_0" / "config.yaml").read_bytes() == trained_config  # not overwritten
