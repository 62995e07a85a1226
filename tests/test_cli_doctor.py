"""lightkit doctor prints what the README says it prints."""

from __future__ import annotations

import pytest

from lightkit.cli import main


def test_doctor_prints_every_item_the_readme_names(capsys):
    assert main(["doctor"]) == 0
    heads = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    for item in ("lightkit", "python", "torch", "lightning", "cuda", "bf16", "precision", "extra"):
        assert item in heads, item


def test_doctor_reports_an_extra_already_imported_by_a_lazy_package(capsys):
    # optuna_integration replaces its module with a lazy one whose __spec__ is None, which
    # importlib.util.find_spec refuses with a ValueError once it is imported.
    pytest.importorskip("optuna_integration")
    import optuna_integration  # noqa: F401

    assert main(["doctor"]) == 0
    assert "extra      sweep: installed" in capsys.readouterr().out
