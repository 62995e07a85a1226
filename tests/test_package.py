"""The lightkit package: lazy top-level names, and an import that does not pull in Lightning."""

from __future__ import annotations

import subprocess
import sys

import lightkit
import lightkit as lk


def test_all_lists_every_lazy_name_and_each_resolves():
    assert lightkit.__all__ == sorted(lightkit.__all__)
    assert set(lightkit.__all__) == {*lightkit._NAMES, *lightkit._SUBPACKAGES, "__version__"}
    for name in lightkit.__all__:
        assert getattr(lk, name) is not None, name
    assert callable(lk.diagnose) and callable(lk.fit) and lk.tasks.TaskModule is lk.TaskModule
    assert set(dir(lk)) == set(lightkit.__all__)


def test_importing_lightkit_does_not_import_lightning_or_torch():
    code = "import sys, lightkit, lightkit.cli; print('lightning' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_unknown_name_is_an_attribute_error():
    try:
        lk.ClassifcationModule  # noqa: B018 - a typo
    except AttributeError as err:
        assert "ClassifcationModule" in str(err)
    else:
        raise AssertionError("a misspelt name resolved")
