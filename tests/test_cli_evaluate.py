"""lightkit validate/test --ckpt_path write beside the checkpoint's run, not into a new root folder."""

from __future__ import annotations

from helpers import DIGITS_MLP_SECTIONS
from lightkit.cli import main

CONFIG = (
    """
seed_everything: 0
trainer:
  max_epochs: 1
  limit_train_batches: 3
  limit_val_batches: 2
  limit_test_batches: 2
  enable_progress_bar: false
  enable_model_summary: false
"""
    + DIGITS_MLP_SECTIONS
)


def _trained(tmp_path, capsys):
    """``lightkit fit`` of CONFIG in ``tmp_path/runs``: the config, the root and the best checkpoint."""
    config, root = tmp_path / "c.yaml", tmp_path / "runs"
    config.write_text(CONFIG)
    assert main(["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]) == 0
    capsys.readouterr()
    return config, root, root / "version_0" / "checkpoints" / "best.ckpt"


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


def test_predict_writes_labelled_predictions_beside_the_run(tmp_path, capsys):
    import csv
    import warnings

    import torch

    import lightkit as lk

    config, root, best = _trained(tmp_path, capsys)
    args = ["predict", "--config", str(config), f"--trainer.default_root_dir={root}"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, f"--ckpt_path={best}"]) == 0
    messages = [str(w.message) for w in caught]
    assert any("no predict dataset was given; predicting the test split" in m for m in messages)
    assert not [m for m in messages if "never be read or deleted" in m or "batch indices" in m]
    written = root / "version_0" / "predict" / "version_0" / "predictions.csv"
    rows = list(csv.reader(written.open()))
    out = capsys.readouterr().out
    assert f"lightkit predict: wrote {len(rows) - 1} predictions to {written}" in out
    dm = lk.data.DigitsDataModule()
    dm.setup("test")
    names = list(dm.class_names)
    assert rows[0] == ["index", "label", *[f"p_{n}" for n in names]]
    x = torch.stack([dm.test_dataset[i][0] for i in range(len(dm.test_dataset))])
    probs = lk.Predictor.from_checkpoint(best, device="cpu").predict(x)
    assert len(rows) - 1 == len(x)
    got = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    torch.testing.assert_close(got, probs, atol=1e-5, rtol=1e-4)
    assert [r[1] for r in rows[1:]] == [names[i] for i in probs.argmax(1).tolist()]
    before = written.read_bytes()
    assert main([*args, f"--ckpt_path={best}"]) == 0  # again: a new folder, the first kept
    assert (written.parent.parent / "version_1" / "predictions.csv").read_bytes() == before
    assert written.read_bytes() == before


def test_interpret_a_checkpoint_prints_the_report_and_saves_pictures_in_its_run(tmp_path, capsys):
    import json

    config, root, best = _trained(tmp_path, capsys)
    args = ["interpret", "--config", str(config), f"--trainer.default_root_dir={root}"]
    assert main([*args, f"--ckpt_path={best}", "--top_k", "3"]) == 0
    out = capsys.readouterr().out
    assert "lk.interpret: multiclass model on the val split" in out and "most confused" in out
    folder = root / "version_0" / "interpret" / "val"
    saved = json.loads((folder / "report.json").read_text())
    assert len(saved["top_losses"]) == 3 and len(saved["per_class"]) == 10
    assert (folder / "confusion_matrix.png").is_file() and (folder / "reliability.png").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]  # no new run at the root
    # Mistakes are named, not raised.
    assert main([*args, "--ckpt_path", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*args, f"--ckpt_path={best}", "--split", "train"]) == 1
    assert "split must be one of" in capsys.readouterr().err
    assert main(args) == 2
    assert "--ckpt_path" in capsys.readouterr().err


def test_the_logger_is_chosen_by_name_on_the_command_line(tmp_path):
    config, root = tmp_path / "c.yaml", tmp_path / "runs"
    config.write_text(CONFIG)
    base = ["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]
    assert main([*base, "--trainer.logger=false"]) == 0  # a boolean, not the string 'false'
    assert not list((root / "version_0").glob("events.out.tfevents*"))
    assert not (root / "version_0" / "metrics.csv").exists()
    assert main([*base, "--trainer.logger=[tensorboard, csv]"]) == 0
    assert (root / "version_1" / "metrics.csv").read_text().startswith("epoch,")
    assert list((root / "version_1").glob("events.out.tfevents*"))
    assert main([*base, "--trainer.logger=null"]) == 0  # None, not the string 'null'
    assert not list((root / "version_2").glob("events.out.tfevents*"))
