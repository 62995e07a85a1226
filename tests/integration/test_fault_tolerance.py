"""Crash safety end to end: real runs are SIGKILLed (also during a save) and resume bit-identically."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightkit.checkpointing import load_checkpoint

SCRIPT = Path(__file__).parents[1] / "scripts" / "resumable_training.py"


def _start(root: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(root), str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _progress(root: Path) -> str:
    try:
        return (root / "progress").read_text()
    except FileNotFoundError:
        return ""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    _finish(_start(root, root / "weights.pt"))
    return torch.load(root / "weights.pt", weights_only=True)


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_point",
    ["epoch-end 0", "step 16", "step 20", "epoch-end 2"],  # 12 steps per epoch
)
def test_sigkill_then_resume_gives_bit_identical_weights(tmp_path, reference, kill_point):
    kind, number = kill_point.split()
    target = int(number)

    def ready() -> bool:
        text = _progress(tmp_path)
        if kind == "epoch-end":
            return text == kill_point
        return text.startswith("step") and int(text.split()[1]) >= target

    proc = _start(tmp_path, tmp_path / "weights.pt", "--pause-at", kill_point)  # waits there
    _kill_when(proc, ready)
    assert not (tmp_path / "weights.pt").exists()  # it really died before finishing
    assert list((tmp_path / "runs").glob("version_*/checkpoints/last.ckpt"))
    _finish(_start(tmp_path, tmp_path / "weights.pt", "--resume"))
    _assert_identical(reference, torch.load(tmp_path / "weights.pt", weights_only=True))
    assert len(list((tmp_path / "runs").glob("version_*"))) == 1  # resumed in the same folder


@pytest.mark.slow
def test_kill_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path):
    proc = _start(tmp_path, tmp_path / "weights.pt", "--slow-save-at", "4")
    _kill_when(proc, lambda: (tmp_path / "saving").exists())
    (ckpt,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    checkpoint = load_checkpoint(ckpt)  # the previous save, complete and loadable
    assert checkpoint["global_step"] > 0
    # The half-written file is a hidden temporary that resuming ignores.
    assert list(ckpt.parent.glob(".last.ckpt.*.tmp"))
    _finish(_start(tmp_path, tmp_path / "weights.pt", "--resume"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("average", "kill_step"),
    [(("--ema", "0.9"), 20), (("--swa", "1"), 30)],  # SWA: mid-epoch 2, one epoch averaged
    ids=["ema", "swa"],
)
def test_weight_averaged_runs_resume_bit_identically_after_sigkill(
    tmp_path, tmp_path_factory, average, kill_step
):
    ref_root = tmp_path_factory.mktemp(f"reference-{average[0][2:]}")
    _finish(_start(ref_root, ref_root / "weights.pt", *average))
    proc = _start(tmp_path, tmp_path / "weights.pt", *average, "--pause-at", f"step {kill_step}")

    def ready() -> bool:
        text = _progress(tmp_path)
        return text.startswith("step") and int(text.split()[1]) >= kill_step

    _kill_when(proc, ready)
    assert not (tmp_path / "weights.pt").exists()
    (last,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    checkpoint = load_checkpoint(last)
    assert "current_model_state" in checkpoint and "averaging_state" in checkpoint
    _finish(_start(tmp_path, tmp_path / "weights.pt", *average, "--resume"))
    # The final weights are the average (Lightning copies it in when training ends): equal to
    # the uninterrupted run's, bit for bit.
    _assert_identical(
        torch.load(ref_root / "weights.pt", weights_only=True),
        torch.load(tmp_path / "weights.pt", weights_only=True),
    )


# --- image folders with worker processes, and DDP ------------------------------------------------

IMAGES = Path(__file__).parents[1] / "scripts" / "resumable_images.py"
# Kill points drawn once (seeded): single process 8 batches an epoch, 24 steps; DDP 4 and 12.
_DRAW = random.Random(18)
_DRAW.choice(range(2, 8))  # (the first draw: an epoch-0 point, dropped to keep CI short)
SINGLE_STEPS = [_DRAW.choice([s for s in range(9, 23) if s % 8])]
DDP_STEPS = sorted(_DRAW.sample([s for s in range(2, 11) if s % 4], 1))


def _start_images(root: Path, out: Path, *args: str) -> subprocess.Popen:
    # A session of its own: the kill takes the DDP ranks and the loader workers with it.
    return subprocess.Popen(
        [sys.executable, str(IMAGES), str(root), str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _killpg_when(proc: subprocess.Popen, step: int, root: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = _progress(root)
        if text.startswith("step") and int(text.split()[1]) >= step:
            break
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def image_references(tmp_path_factory):
    """Weights of uninterrupted image-folder runs, on one process and on two (DDP)."""
    results = {}
    for name, extra in (("single", []), ("ddp", ["--devices", "2", "--workers", "1"])):
        root = tmp_path_factory.mktemp(f"images-{name}")
        _finish(_start_images(root, root / "weights.pt", "--delay", "0", *extra))
        results[name] = torch.load(root / "weights.pt", weights_only=True)
    return results


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "step"),
    [("single", s) for s in SINGLE_STEPS] + [("ddp", s) for s in DDP_STEPS],
)
def test_image_folder_runs_with_workers_and_ddp_resume_bit_identically(
    tmp_path, image_references, name, step
):
    extra = ["--devices", "2", "--workers", "1"] if name == "ddp" else []
    proc = _start_images(tmp_path, tmp_path / "weights.pt", *extra)
    _killpg_when(proc, step, tmp_path)
    assert not (tmp_path / "weights.pt").exists()  # it really died before finishing
    _finish(_start_images(tmp_path, tmp_path / "weights.pt", "--resume", "--delay", "0", *extra))
    _assert_identical(
        image_references[name], torch.load(tmp_path / "weights.pt", weights_only=True)
    )
