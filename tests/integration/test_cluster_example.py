"""examples/cluster/: the torchrun recipe runs as two "nodes" on this machine over 127.0.0.1 with
streaming data; the SLURM script is valid bash and passes train.py arguments it accepts."""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CLUSTER = Path(__file__).parents[2] / "examples" / "cluster"

pytest.importorskip("litdata")
pytest.importorskip("sklearn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_torchrun_recipe_trains_on_two_nodes_in_one_run_folder(tmp_path):
    data, root = tmp_path / "digits", tmp_path / "runs"
    runpy.run_path(str(CLUSTER / "train.py"))["write_digits"](str(data))  # the documented step
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "GPUS": "1",  # one CPU process per "node"
        "DATA": str(data),
        "ROOT": str(root),
        "PYTHON": sys.executable,
        "PYTHONWARNINGS": "ignore",
    }
    args = ["--accelerator", "cpu", "--max-epochs", "2", "--workers", "0"]
    nodes = [
        subprocess.Popen(
            ["bash", str(CLUSTER / "torchrun.sh"), *args],
            env={**env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    for node in nodes:
        out, _ = node.communicate(timeout=600)
        assert node.returncode == 0, out[-4000:]
        outputs.append(out)
    assert f"run folder: {root / 'version_0'}" in outputs[0]  # rank 0 reports
    assert [p.name for p in root.iterdir()] == ["version_0"]  # both ranks wrote to one folder
    assert (root / "version_0" / "checkpoints" / "last.ckpt").is_file()
    accuracy = float(re.search(r"test/acc=([0-9.]+)", outputs[0])[1])
    assert accuracy > 0.5  # chance is 0.1: the two processes trained one model together


def test_the_slurm_script_hands_srun_a_train_command_that_parses(tmp_path, monkeypatch):
    script = CLUSTER / "slurm.sbatch"
    assert re.search(r"^#SBATCH --ntasks-per-node=4 ", script.read_text(), re.M)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')  # prints what it would run
    (fake / "srun").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_NTASKS_PER_NODE": "4", "DATA": "s3://bucket/digits", "ROOT": "/shared/runs"}  # fmt: skip
    words = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert words[:2] == ["python", "examples/cluster/train.py"]
    train = runpy.run_path(str(CLUSTER / "train.py"))
    seen: dict = {}
    monkeypatch.setattr(sys, "argv", words[1:])
    monkeypatch.setitem(train["main"].__globals__, "lk", _Recorder(seen))
    with pytest.raises(_Stop):
        train["main"]()
    assert seen["data"] == "s3://bucket/digits" and seen["root"] == "/shared/runs"
    assert (seen["num_nodes"], seen["devices"], seen["strategy"]) == (2, 4, "ddp")
    assert seen["resume"] is True  # a requeued job continues its run


class _Stop(Exception):
    pass


class _Recorder:
    """Stands in for the lightkit module: records what train.py asks for, then stops."""

    def __init__(self, seen: dict) -> None:
        import lightkit

        self._lk, self._seen = lightkit, seen
        recorder = self

        class StreamingDataModule:
            num_classes = 10

            def __init__(self, input_dir, **kwargs) -> None:
                recorder._seen["data"] = input_dir

        self.data = type("data", (), {"StreamingDataModule": StreamingDataModule})

    def fit(self, module, datamodule, **kwargs):
        self._seen.update(kwargs, root=kwargs["default_root_dir"])
        raise _Stop

    def __getattr__(self, name):
        return getattr(self._lk, name)
