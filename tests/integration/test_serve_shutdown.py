"""lightkit serve stops every process it started on SIGTERM or SIGINT, and frees its port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import lightkit as lk

pytest.importorskip("litserve")


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shutdown")
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    trainer = lk.make_trainer(
        max_epochs=1,
        default_root_dir=folder,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = lk.ClassificationModule(lk.models.MLP(8, 2, hidden=(8,)), 2)
    trainer.fit(module, datamodule=lk.data.TensorDataModule(x, (x[:, 0] > 0).long()))
    return trainer.checkpoint_callback.best_model_path


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_server_stops_every_process_it_started(checkpoint, tmp_path, signum):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "lightkit.cli", "serve", checkpoint, "--port", str(port),
               "--accelerator", "cpu"]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not come up:\n{log.read_text()[-2000:]}")
                time.sleep(0.5)
        started = _descendants(process.pid)
        assert started, "LitServe starts worker processes"
        os.kill(process.pid, signum)  # to the main process only, as kill or Docker would
        process.wait(timeout=60)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in started if _alive(p)], f"orphans left:\n{log.read_text()[-2000:]}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
