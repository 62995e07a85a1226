"""Every public lightkit name has a docstring ``Example:`` section, and each example runs.

The public names are those in ``lightkit.__all__``, in the ``__all__`` of every subpackage
reachable from it (``lk.data``, ``lk.data.transforms``, ``lk.callbacks``, ...), and in the
``__all__`` of the public modules that ``import lightkit`` does not star-export (``lk.serve``,
``lk.sweeps``, ``lk.runs``, ``lk.diagnosis``, ``lk.inference``, ...), deduplicated by object.
Constants (tuples, strings, numbers) have no docstring of their own and are left out. There is
one test per name, so a failure names the object: it fails when the docstring has no
``Example:`` (or ``Examples:``) section with a ``>>>`` line, or when the example does not run
under :mod:`doctest` (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` on).

Each example runs in a temporary working directory (so ``"model.onnx"`` or ``"runs"`` land
there) with a fresh copy of this namespace; an example may use these names without defining
them:

==============  ===========================================================================
``lk``          ``import lightkit as lk``
``torch``       ``import torch``
``nn``          ``from torch import nn``
``np``          ``import numpy as np``
``L``           ``import lightning as L``
``my_dataset``  a ``TensorDataset`` of 96 Gaussian blobs: inputs ``(8,)`` float, labels 0-2
``net``         ``lk.models.MLP(8, 3, hidden=(16,))``: 8 features in, 3 logits out
``module``      ``lk.ClassificationModule(net, num_classes=3)``
``dm``          ``lk.data.DataModule(my_dataset, val_split=0.25, batch_size=32)``
``checkpoint``  path (``str``) of ``best.ckpt`` from one epoch of such a ``module`` on ``dm``
``runs_dir``    path (``str``) of the folder that holds that run (``<runs_dir>/version_0``)
==============  ===========================================================================

``torch.manual_seed(0)`` is set before each example. ``checkpoint`` comes from one tiny training
run made once per session (in a ``tmp_path_factory`` folder, so parallel workers never share
it); examples must not modify it. An example that needs a GPU, the network or a cluster marks
its lines ``# doctest: +SKIP`` with a comment saying why; when every line of an example is
skipped, the test is reported as skipped. Examples that need an optional extra that is not
installed are skipped by :data:`REQUIRES` below. CONTRIBUTING.md ("Docstring examples") says
the same for contributors.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import re
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

import lightkit as lk

# Public modules outside `lightkit.__all__` whose `__all__` is public API as well.
EXTRA_MODULES = tuple(lk._MODULES)

# Qualified name -> the optional packages its example imports (skipped when one is missing).
REQUIRES: dict[str, tuple[str, ...]] = {
    "lk.data.SklearnDataModule": ("sklearn",),
    "lk.data.DigitsDataModule": ("sklearn",),
    "lk.export.to_onnx": ("onnx", "onnxruntime", "onnxscript"),
    "lk.serve.serve": ("litserve",),
    "lk.serve.make_server": ("litserve",),
    "lk.serve.read_timeout_protocol": ("litserve", "uvicorn"),
    "lk.serve.RequestGuard": ("litserve",),
    "lk.sweep": ("optuna",),
}

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_EXAMPLE_SECTION = re.compile(r"^\s*Examples?:\s*\n(?:\s*\n)*\s+>>> ", re.MULTILINE)


def public_objects() -> dict[str, Any]:
    """Qualified name (``lk.data.DataModule``) -> object, for every public callable, once each."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    visited: set[str] = set()

    def visit(module: types.ModuleType, prefix: str) -> None:
        if module.__name__ in visited:
            return
        visited.add(module.__name__)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                visit(obj, f"{prefix}.{name}")
            elif callable(obj) and id(obj) not in seen:
                seen.add(id(obj))
                found[f"{prefix}.{name}"] = obj

    visit(lk, "lk")
    for name in EXTRA_MODULES:
        module = importlib.import_module(f"lightkit.{name}")
        if hasattr(module, "__all__"):
            visit(module, f"lk.{name}")
    return found


PUBLIC = public_objects()


def _blobs(n: int = 96, num_classes: int = 3, features: int = 8) -> Any:
    import torch
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(num_classes, features, generator=g) * 3
    y = torch.randint(0, num_classes, (n,), generator=g)
    return TensorDataset(centers[y] + torch.randn(n, features, generator=g), y)


def _net() -> Any:
    return lk.models.MLP(8, 3, hidden=(16,))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One epoch of the namespace's ``module`` on ``dm``: ``checkpoint`` and ``runs_dir``."""
    import torch

    root = tmp_path_factory.mktemp("docstring_examples") / "runs"
    torch.manual_seed(0)
    module = lk.ClassificationModule(_net(), num_classes=3)
    trainer = lk.make_trainer(
        max_epochs=1,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=lk.data.DataModule(_blobs(), val_split=0.25, batch_size=32))
    return {"checkpoint": trainer.checkpoint_callback.best_model_path, "runs_dir": str(root)}


def example_namespace(trained_run: dict[str, str]) -> dict[str, Any]:
    """A fresh namespace for one example (see the module docstring)."""
    import lightning as L
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    my_dataset = _blobs()
    net = _net()
    return {
        "lk": lk,
        "torch": torch,
        "nn": nn,
        "np": np,
        "L": L,
        "my_dataset": my_dataset,
        "net": net,
        "module": lk.ClassificationModule(net, num_classes=3),
        "dm": lk.data.DataModule(my_dataset, val_split=0.25, batch_size=32),
        "checkpoint": trained_run["checkpoint"],
        "runs_dir": trained_run["runs_dir"],
    }


def _docstring(obj: Any) -> str:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def test_the_walk_finds_the_public_api() -> None:
    assert {"lk.ClassificationModule", "lk.data.DataModule", "lk.optim.adam"} <= set(PUBLIC)
    assert len(PUBLIC) > 80


# Examples that take more than a few seconds (a real sweep of two trials): run, but marked slow.
SLOW = {"lk.sweep"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(PUBLIC)]
)
def test_docstring_example_runs(
    name: str, trained_run: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = PUBLIC[name]
    doc = _docstring(obj)
    if not _EXAMPLE_SECTION.search(doc):
        pytest.fail(f"{name}: its docstring has no 'Example:' section with a '>>>' line")
    missing = [m for m in REQUIRES.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name}: the example needs {', '.join(missing)} (an optional extra)")

    test = doctest.DocTestParser().get_doctest(
        doc, example_namespace(trained_run), name, inspect.getsourcefile(obj), 0
    )
    if all(example.options.get(doctest.SKIP) for example in test.examples):
        pytest.skip(f"{name}: every line of the example is marked +SKIP (GPU, network or cluster)")
    monkeypatch.chdir(tmp_path)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, f"{name}: its docstring example fails:\n" + "".join(report)
