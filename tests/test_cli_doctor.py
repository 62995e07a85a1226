"""lightkit doctor prints what the README says it prints."""

from __future__ import annotations

from lightkit.cli import main


def test_doctor_prints_every_item_the_readme_names(capsys):
    assert main(["doctor"]) == 0
    heads = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    for item in ("lightkit", "python", "torch", "lightning", "cuda", "bf16", "precision", "extra"):
        assert item in heads, item
