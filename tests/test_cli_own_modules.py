"""The lightkit command imports the user's own modules from the current folder, as ``python -m`` does."""

from __future__ import annotations

import sys

from lightkit.cli import main

CONFIG = """
seed_everything: 0
trainer:
  max_epochs: 1
model:
  class_path: lightkit.ClassificationModule
  init_args:
    num_classes: 10
    net:
      class_path: mystuff_nets.TinyNet
      init_args:
        hidden: 16
data:
  class_path: lightkit.data.DigitsDataModule
"""

NETS = """
from torch import nn


class TinyNet(nn.Sequential):
    def __init__(self, hidden: int = 16):
        super().__init__(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
"""


def test_a_config_may_name_a_module_in_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "mystuff_nets.py").write_text(NETS)
    (tmp_path / "my.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    code = main(["fit", "--config", "my.yaml", "--trainer.fast_dev_run=true"])
    assert code == 0
    assert sys.path[-1] == str(tmp_path)  # last: it never shadows an installed package
    sys.modules.pop("mystuff_nets", None)
