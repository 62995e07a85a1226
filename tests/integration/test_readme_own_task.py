"""The README's "Your own task" example runs as written and does what the text around it says."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

README = Path(__file__).resolve().parents[2] / "README.md"


def test_your_own_task_example(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [b for b in blocks if "class WeightedTask" in b]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(example, "README.md", "exec"), namespace)
    assert not [w for w in caught if "before the seed was set" in str(w.message)]
    trainer = namespace["trainer"]
    # on_validation_epoch_end is overridden without super(), and still:
    assert "epoch 9 validated" in capsys.readouterr().out
    assert trainer.callback_metrics["val/acc"] > 0.9  # metrics built from state set after init
    assert trainer.callback_metrics["val/loss"] < 0.5
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "val/confusion_matrix" in events.Tags()["images"]  # from task_outputs()
