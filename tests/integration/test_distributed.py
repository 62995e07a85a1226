"""Several processes: DDP on two CPU processes, two nodes with torchrun, a shared run folder
(slow; CI runs them)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "distributed_training.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reports(out: Path, ranks: int) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


def _run(cmd: list[str], timeout: float = 300) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_ddp_runs_the_recipes_balanced_sampler_mixup_ema_and_fine_tuning(tmp_path):
    _run([sys.executable, str(SCRIPT), str(tmp_path), "--devices", "2", "--recipes",
          "--strategy", "ddp_find_unused_parameters_true"])  # fmt: skip
    reports = _reports(tmp_path, 2)
    assert {r["world_size"] for r in reports} == {2}
    # Lightning shards the balanced sampler's draw: each rank gets half of the epoch's samples.
    assert {r["train_batches"] for r in reports} == {6}
    assert reports[0]["weights_sum"] == reports[1]["weights_sum"]  # ranks stay in sync
    assert reports[0]["val_acc"] == reports[1]["val_acc"] >= 0.6


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_syncs_metrics(tmp_path):
    _run([sys.executable, str(SCRIPT), str(tmp_path), "--devices", "2"])
    reports = _reports(tmp_path, 2)
    assert {r["world_size"] for r in reports} == {2}
    assert {r["strategy"] for r in reports} == {"DDPStrategy"}
    assert {r["backend"] for r in reports} == {"gloo"}
    assert len({r["pid"] for r in reports}) == 2
    # Each rank trains on its half of the 384 training samples (batches of 32).
    assert {r["train_batches"] for r in reports} == {6}
    # Synced at epoch end: every rank logged the same val/acc and val/loss, and holds the same
    # weights; and the run learned the task.
    assert reports[0]["val_acc"] == reports[1]["val_acc"] >= 0.9
    assert reports[0]["val_loss"] == reports[1]["val_loss"]
    assert reports[0]["weights_sum"] == reports[1]["weights_sum"]


@pytest.mark.slow
def test_two_nodes_with_torchrun_on_loopback(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
        "torchrun"
    )
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    nodes = [
        subprocess.Popen(
            [
                torchrun,
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                str(SCRIPT),
                str(tmp_path),
                "--num-nodes",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in range(2)
    ]
    for node in nodes:
        out, _ = node.communicate(timeout=300)
        assert node.returncode == 0, out[-3000:]
    reports = _reports(tmp_path, 2)
    assert [(r["node_rank"], r["num_nodes"], r["world_size"]) for r in reports] == [
        (0, 2, 2),
        (1, 2, 2),
    ]
    assert reports[0]["val_acc"] == reports[1]["val_acc"] >= 0.9
    assert reports[0]["weights_sum"] == reports[1]["weights_sum"]


@pytest.mark.slow
def test_ddp_workers_share_rank_zeros_new_run_folder(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "ddp_run_folder.py"
    (tmp_path / "runs" / "version_0").mkdir(parents=True)  # an earlier run
    _run([sys.executable, str(script), str(tmp_path)])
    reports = _reports(tmp_path, 2)
    assert {r["run_dir"] for r in reports} == {str(tmp_path / "runs" / "version_1")}
    assert {r["checkpoints"] for r in reports} == {
        str(tmp_path / "runs" / "version_1" / "checkpoints")
    }
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0", "version_1"]
