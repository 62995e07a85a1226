"""The lightkit console script."""

from __future__ import annotations

import shutil
import subprocess
import sys

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
