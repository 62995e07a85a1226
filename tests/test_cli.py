"""The lightkit console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lightkit as lk
from lightkit.cli import main


def test_doctor(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"lightkit   {lk.__version__}" in out
    assert "precision" in out and "extra      examples:" in out


def test_no_command_prints_usage(capsys):
    assert main([]) == 2
    assert "usage: lightkit" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("lightkit") or shutil.which(
        "lightkit", path=str(__import__("pathlib").Path(sys.executable).parent)
    )
    assert exe, "the lightkit console script is not on PATH"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"lightkit {lk.__version__}"


def test_export_from_the_command_line(tmp_path, capsys):
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    module = lk.ClassificationModule(lk.models.MLP(8, 2, hidden=(8,)), 2)
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=lk.data.TensorDataModule(x, y, batch_size=16))
    ckpt = trainer.checkpoint_callback.best_model_path
    out = tmp_path / "model.pt2"
    assert main(["export", ckpt, "--output", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    loaded = torch.export.load(str(out)).module()
    module.eval()
    torch.testing.assert_close(loaded(x), module(x).detach(), atol=1e-5, rtol=1e-5)
    assert main(["export", ckpt, "--output", str(out)]) == 1  # exists: not overwritten
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite" in err and "overwrite=True" not in err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "missing.ckpt")])
    assert "does not exist" in capsys.readouterr().err


CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_example_config_runs_under_the_cli(config, tmp_path):
    root = tmp_path / "runs"
    code = main(["fit", "--config", str(CONFIGS / config), "--trainer.fast_dev_run=true",
                 f"--trainer.default_root_dir={root}"])  # fmt: skip
    assert code == 0
    assert (root / "version_0" / "model_summary.txt").exists()  # lightkit's trainer presets


def test_config_mistakes_get_jsonargparse_messages(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONFIGS / "digits.yaml").read_text().replace("max_epochs: 20", "max_epochz: 20")
    )
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(bad)])
    assert info.value.code == 2
    assert "max_epochz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "digits.yaml"), "--trainer.max_epochs=abc"])
    err = capsys.readouterr().err
    assert "trainer.max_epochs" in err and "Traceback" not in err


def test_fit_without_config_prints_usage(capsys):
    assert main(["fit"]) == 2
    assert "usage: lightkit fit --config FILE.yaml" in capsys.readouterr().err


def test_print_config(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(CONFIGS / "digits.yaml"), "--print_config"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: lightkit.ClassificationModule" in out and "patience: 5" in out


def test_diagnose_from_a_config(tmp_path, capsys):
    code = main(["diagnose", "--config", str(CONFIGS / "digits.yaml"),
                 f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "lightkit diagnose: no errors" in out and "overfit: one batch overfits" in out
    assert (tmp_path / "version_0" / "lr_find.png").exists()


def test_serve_flags_reach_serve(tmp_path, monkeypatch, capsys):
    import lightkit.serve

    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"not read: serve is replaced below")
    seen = {}
    monkeypatch.setattr(lightkit.serve, "serve", lambda path, **kwargs: seen.update(kwargs))
    assert (
        main(
            [
                "serve",
                str(ckpt),
                "--input-shape",
                "1",
                "28",
                "28",
                "--read-timeout",
                "5",
                "--trust",
                "mypkg.nets",
            ]
        )
        == 0
    )
    assert seen["input_shape"] == [1, 28, 28] and seen["read_timeout"] == 5.0
    assert seen["max_body_bytes"] is None  # derived from the input size by serve()
    assert seen["trust"] == ["mypkg.nets"]
    assert main(["serve", str(ckpt), "--max-body-mb", "0"]) == 1
    assert "--max-body-mb" in capsys.readouterr().err
