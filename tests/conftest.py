"""Shared fixtures: tiny synthetic problems that train on the CPU in seconds (see helpers.py).

The suite runs in parallel: ``python -m pytest`` (or ``-m "not slow"``, or a folder) starts two
pytest-xdist workers with ``--dist loadfile``, each with one torch thread; naming test files or
tests runs them in this process, and ``-n N`` or ``-n 0`` / ``-p no:xdist`` choose for yourself.
All tests of one file run on one worker, one after another, so a module-scoped fixture (a
server, a reference run) is built once; files with the most slow tests are handed out first.
(``xdist_group`` markers do nothing here: pytest-xdist 3.8 cannot rename pytest 9's node ids.)
A test is parallel-safe, and needs nothing more, when it

- writes only under ``tmp_path`` / ``tmp_path_factory`` (``monkeypatch.chdir(tmp_path)`` for
  code that writes to the working directory; never the repository's ``runs/``);
- changes environment variables, the working directory and other process state only through
  ``monkeypatch``, and takes ports from the OS (bind to port 0), never a fixed one;
- gives its subprocesses timeouts of minutes, not seconds: the other worker shares the CPU.

A test that asserts a wall-clock bound (a latency, a timeout's window) is marked
``pytest.mark.exclusive``: it runs while the other worker waits between its tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from helpers import make_blobs

warnings.filterwarnings("ignore", ".*does not have many workers.*")

WORKERS = 2  # the CI machine's cores; pass -n to choose
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    # Two workers on two cores: one torch thread each, and so for the processes tests start
    # (DDP ranks, servers, sweeps). Spare threads only spin on a core the other worker needs.
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def blobs() -> TensorDataset:
    return make_blobs()


@pytest.fixture
def fast_trainer_kwargs(tmp_path) -> dict:
    """make_trainer arguments for quick, quiet test runs in a temporary folder."""
    return {
        "default_root_dir": tmp_path / "runs",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "seed": 0,
    }


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns -n into workers
def pytest_cmdline_main(config):
    """Run the whole suite, a marker's subset or a folder on ``WORKERS`` xdist workers unless
    ``-n`` was given (named files or tests, ``--pdb`` and ``--collect-only`` run here); with
    workers and no ``--dist``, whole files go to a worker, in the order set below."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if (
        config.option.numprocesses is None
        and not config.getoption("usepdb", False)
        and not config.getoption("collectonly", False)
        and all(Path(arg).is_dir() for arg in config.args)
    ):
        config.option.numprocesses = WORKERS
    if config.option.numprocesses and config.option.dist == "no":
        config.option.dist = "loadfile"
        config.option.loadscopereorder = False  # keep the slow files first


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what they will
def pytest_collection_modifyitems(config, items):
    """A full example run (slow) does everything its --fast run does: when both are selected,
    as in CI, keep only the full run, so the suite stays within its time budget.

    On an xdist worker, the files with the most slow tests go first (same order on every
    worker, each file's tests together and in their order): a long file handed out last would
    leave the other worker idle at the end."""
    full = {
        item.callspec.params["script"]
        for item in items
        if getattr(item, "originalname", "") == "test_example_reaches_its_quality"
    }
    redundant = [
        item
        for item in items
        if getattr(item, "originalname", "") == "test_example_fast"
        and item.callspec.params["script"] in full
    ]
    if redundant:
        config.hook.pytest_deselected(items=redundant)
        items[:] = [item for item in items if item not in redundant]
    if _WORKER:
        slow: dict[Path, int] = {}
        for item in items:
            slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
        items.sort(key=lambda item: -slow[item.path])  # stable: files stay whole and in order


@contextlib.contextmanager
def _flock(path: Path, mode: int):
    with open(path, "a") as file:
        fcntl.flock(file, mode)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _turn(config, exclusive: bool):
    """A readers-writer lock shared by the workers of one run: every test holds it shared, an
    ``exclusive`` test alone. A waiting exclusive test holds the turnstile, so the other worker
    cannot start test after test ahead of it."""
    base = config.option.basetemp  # xdist gives each worker <run's basetemp>/popen-gwN
    folder = Path(base).parent if base else Path(tempfile.gettempdir())
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    turnstile, lock = folder / f".turnstile-{run}", folder / f".exclusive-{run}"
    if exclusive:
        with _flock(turnstile, fcntl.LOCK_EX), _flock(lock, fcntl.LOCK_EX):
            yield
    else:
        with _flock(turnstile, fcntl.LOCK_EX):
            pass
        with _flock(lock, fcntl.LOCK_SH):
            yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _WORKER:
        return (yield)
    with _turn(item.config, item.get_closest_marker("exclusive") is not None):
        return (yield)
