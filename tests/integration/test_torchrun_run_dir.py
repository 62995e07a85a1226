"""Two torchrun "nodes" on this machine: every rank of a launch uses the run folder rank 0 chose
(slow: each launch starts two torchrun agents and trains a tiny model on gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "torchrun_run_dir.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
            "--master-addr=127.0.0.1"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(root: Path, out: Path, *extra: str) -> list[dict]:
    """Run one launch as two torchrun processes (node ranks 0 and 1); each rank's report."""
    out.mkdir(parents=True)
    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    script = [str(SCRIPT), str(root), str(out), *extra]
    nodes = [
        subprocess.Popen(
            [*TORCHRUN, f"--node-rank={node}", f"--master-port={port}", *script],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for node in range(2)
    ]
    try:
        outputs = [node.communicate(timeout=240)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-4000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


@pytest.mark.slow
def test_torchrun_ranks_share_rank_zeros_run_folder_then_the_next_then_resume(tmp_path):
    root = tmp_path / "runs"
    # The other rank builds its trainer only once rank 0 has claimed version_0: guessing
    # "the next free number" would give it version_1.
    first = _launch(root, tmp_path / "first", "--after", str(root / "version_0"))
    assert [r["world_size"] for r in first] == [2, 2]
    assert {r["run_dir"] for r in first} == {str(root / "version_0")}
    assert {r["checkpoints"] for r in first} == {str(root / "version_0" / "checkpoints")}
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]  # one folder, no markers
    assert (root / "version_0" / "checkpoints" / "last.ckpt").is_file()

    second = _launch(root, tmp_path / "second", "--after", str(root / "version_1"))
    assert {r["run_dir"] for r in second} == {str(root / "version_1")}
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_1"]

    resumed = _launch(root, tmp_path / "resumed", "--resume")
    assert {r["run_dir"] for r in resumed} == {str(root / "version_1")}
    assert {r["resumed_from"] for r in resumed} == {
        str(root / "version_1" / "checkpoints" / "last.ckpt")
    }
    assert {r["epochs"] for r in resumed} == {2}  # one more epoch on top of the saved one
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_1"]
