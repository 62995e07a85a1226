"""The lightkit command's errors give advice in its own flags, not the Python API's arguments."""

from __future__ import annotations

import torch

from lightkit.cli import _CLI_WORDS, _in_cli_words, main


def test_every_python_phrase_is_translated():
    for python, cli in _CLI_WORDS:
        assert python not in _in_cli_words(f"error: {python}.") and cli in _in_cli_words(python)


def test_a_checkpoint_without_a_task_is_explained_in_cli_words(tmp_path, capsys):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    assert main(["export", str(path), "--output", str(tmp_path / "m.pt2")]) == 1
    err = capsys.readouterr().err
    assert "the lightkit command rebuilds only checkpoints written by a lightkit task" in err
    assert "pass task=" not in err


def test_serve_argument_errors_name_the_flags(tmp_path, capsys):
    from helpers import train_checkpoint

    path = str(train_checkpoint(tmp_path / "runs"))
    for flag, value in [("--max-samples", "0"), ("--max-batch-size", "0"), ("--read-timeout", "0")]:
        assert main(["serve", path, flag, value]) == 1
        err = capsys.readouterr().err
        assert f"serve: {flag} must be" in err and "_" not in err.split("must")[0], err
