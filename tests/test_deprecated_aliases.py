"""Names that moved keep working for a while, with a DeprecationWarning saying where they went."""

from __future__ import annotations

import pytest

import lightkit as lk


def test_trainer_fit_moved_to_fitting():
    import lightkit.trainer

    with pytest.warns(DeprecationWarning, match="lightkit.fitting.fit; use lk.fit"):
        assert lightkit.trainer.fit is lk.fit


def test_data_cross_validate_moved_to_cross_validation():
    with pytest.warns(DeprecationWarning, match="lightkit.cross_validation; use lk.cross_validate"):
        assert lk.data.cross_validate is lk.cross_validate


def test_kfold_cross_validate_moved_too():
    from lightkit.data import kfold

    with pytest.warns(DeprecationWarning, match="lightkit.cross_validation"):
        assert kfold.cross_validate is lk.cross_validate


def test_modules_are_attributes_of_the_package_as_before():
    for name in ("trainer", "inference", "tuning", "fitting", "diagnosis", "cross_validation"):
        assert getattr(lk, name).__name__ == f"lightkit.{name}"


def test_other_missing_names_are_still_attribute_errors():
    import lightkit.data
    import lightkit.trainer

    for module in (lightkit.trainer, lightkit.data):
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            module.nothing  # noqa: B018
