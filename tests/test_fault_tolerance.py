"""Crash safety: SIGKILL and resume bit-identically, atomic saves, damaged and malicious files, NaN."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import make_blobs
from lightkit.callbacks import NonFiniteError
from lightkit.checkpointing import CheckpointError, load_checkpoint

SCRIPT = Path(__file__).parent / "scripts" / "resumable_training.py"


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

    proc = _start(tmp_path, tmp_path / "weights.pt")
    _kill_when(proc, ready)
    assert not (tmp_path / "weights.pt").exists()  # it really died before finishing
    assert list((tmp_path / "runs").glob("version_*/checkpoints/last.ckpt"))
    _finish(_start(tmp_path, tmp_path / "weights.pt", "--resume"))
    _assert_identical(reference, torch.load(tmp_path / "weights.pt", weights_only=True))
    assert len(list((tmp_path / "runs").glob("version_*"))) == 1  # resumed in the same folder


@pytest.mark.slow
def test_dataloader_path_resumes_bit_identically_from_an_epoch_end(tmp_path, tmp_path_factory):
    ref_root = tmp_path_factory.mktemp("reference-dataloader")
    _finish(_start(ref_root, ref_root / "weights.pt", "--dataloader"))
    # SIGKILL just after epoch 1's end-of-epoch checkpoint is written.
    proc = _start(tmp_path, tmp_path / "weights.pt", "--dataloader", "--delay", "0.1")
    last = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"

    def ready() -> bool:  # early in epoch 2, before the step-27 checkpoint
        text = _progress(tmp_path)
        return text.startswith("step") and int(text.split()[1]) >= 25

    _kill_when(proc, ready)
    assert load_checkpoint(last)["global_step"] == 24  # the end-of-epoch-1 checkpoint
    _finish(_start(tmp_path, tmp_path / "weights.pt", "--dataloader", "--resume"))
    _assert_identical(
        torch.load(ref_root / "weights.pt", weights_only=True),
        torch.load(tmp_path / "weights.pt", weights_only=True),
    )


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


def _train(tmp_path, **kwargs) -> lk.ClassificationModule:
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path / "runs", enable_progress_bar=False, **kwargs
    )
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(128), batch_size=32))
    return trainer


def test_truncated_checkpoint_is_named_and_resume_falls_back(tmp_path):
    trainer = _train(tmp_path)
    folder = Path(trainer.checkpoint_callback.dirpath)
    last = folder / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"last\.ckpt' is damaged \(truncated or corrupt\)"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="is damaged"):
        lk.ClassificationModule.load_from_checkpoint(last)
    with pytest.warns(UserWarning, match=r"last\.ckpt' is damaged.*resuming from.*best\.ckpt"):
        resumed = lk.fit(
            lk.ClassificationModule(lk.models.MLP(8, 3), 3),
            lk.data.DataModule(make_blobs(128), batch_size=32),
            resume=True,
            max_epochs=3,
            default_root_dir=tmp_path / "runs",
            enable_progress_bar=False,
        )
    assert resumed.current_epoch == 3  # continued from the best (epoch 2) checkpoint


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    trainer = _train(tmp_path)
    good = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    marker = tmp_path / "pwned"
    good["hyper_parameters"]["evil"] = _Evil(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(good, path)
    with pytest.raises(
        CheckpointError, match=r"refusing to load checkpoint.*could run arbitrary code"
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        lk.ClassificationModule.load_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        _trainer = lk.make_trainer(max_epochs=3, default_root_dir=tmp_path / "r2", logger=False)
        _trainer.fit(
            lk.ClassificationModule(lk.models.MLP(8, 3), 3),
            datamodule=lk.data.DataModule(make_blobs(128), batch_size=32),
            ckpt_path=path,
        )
    assert not marker.exists()
    pickle.loads(pickle.dumps(0))  # (pickle itself still works; only lightkit refuses)


class _NaNAt(nn.Module):
    """A net whose output turns NaN at training step ``step``."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.step, self.calls = step, 0

    def forward(self, x):
        out = self.fc(x)
        if self.training:
            self.calls += 1
            if self.calls == self.step + 1:
                out = out * float("nan")
        return out


def test_nan_loss_stops_training_and_keeps_good_checkpoints(tmp_path):
    module = lk.ClassificationModule(_NaNAt(step=9), 3)
    trainer = lk.make_trainer(
        max_epochs=5,
        default_root_dir=tmp_path,
        checkpoint_every_n_steps=2,
        enable_progress_bar=False,
    )
    with pytest.raises(
        NonFiniteError, match=r"loss is nan at global step 9 .*Last good checkpoint: .*last\.ckpt"
    ):
        trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(128), batch_size=32))
    for path in Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"):
        state = load_checkpoint(path)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), path
        assert load_checkpoint(path)["global_step"] <= 9


def test_non_finite_weights_are_never_saved(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = _train(tmp_path)
    with torch.no_grad():
        trainer.lightning_module.net.layers[0][0].weight[0, 0] = float("inf")
    before = set(Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"))
    with pytest.raises(
        NonFiniteError, match=r"parameter 'net\.layers\.0\.0\.weight' holds NaN or Inf"
    ):
        trainer.save_checkpoint(tmp_path / "bad.ckpt")
    assert not (tmp_path / "bad.ckpt").exists()
    assert set(Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt")) == before
    del module


def test_atomic_io_leaves_no_temporary_files(tmp_path):
    trainer = _train(tmp_path, checkpoint_every_n_steps=1)
    folder = Path(trainer.checkpoint_callback.dirpath)
    assert {p.name for p in folder.iterdir()} == {"best.ckpt", "last.ckpt"}


# --- resume picks a run that can be continued -------------------------------------------------


def _fit(tmp_path, **kwargs):
    kwargs = {
        "max_epochs": 3,
        "default_root_dir": tmp_path / "runs",
        "enable_progress_bar": False,
        "logger": False,
        **kwargs,
    }
    return lk.fit(
        lk.ClassificationModule(lk.models.MLP(8, 3), 3),
        lk.data.DataModule(make_blobs(128), batch_size=32),
        **kwargs,
    )


def test_resume_skips_newer_folders_without_a_checkpoint(tmp_path):
    trainer = _train(tmp_path)  # version_0: 2 epochs, then "killed"
    for _ in range(2):  # an evaluation script and `lightkit validate` in the same root
        lk.make_trainer(default_root_dir=tmp_path / "runs")
    assert len(list((tmp_path / "runs").iterdir())) == 3
    last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
    with pytest.warns(
        UserWarning,
        match=r"continues .*version_0 from last\.ckpt \(saved at epoch 1, global step 8\); "
        r"the newer run "
        r"folder\(s\) version_2, version_1 hold no checkpoint",
    ):
        resumed = _fit(tmp_path, resume=True)
    assert resumed.ckpt_path == str(last)
    assert resumed.default_root_dir == str(tmp_path / "runs" / "version_0")
    assert resumed.current_epoch == 3 and resumed.global_step == 12  # continued, not restarted
    assert len(list((tmp_path / "runs").iterdir())) == 3  # no new folder


def test_resume_refuses_when_no_checkpoint_of_the_run_loads(tmp_path):
    trainer = _train(tmp_path)
    folder = Path(trainer.checkpoint_callback.dirpath)
    for name in ("last.ckpt", "best.ckpt"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(
        CheckpointError,
        match=r"resume=True cannot continue .*version_0: it has checkpoints, but none of them "
        r"loads .*last\.ckpt' is damaged.*best\.ckpt' is damaged.*resume=False",
    ):
        _fit(tmp_path, resume=True)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["version_0"]  # nothing started


def test_resume_with_nothing_to_resume_says_what_it_found(tmp_path):
    with pytest.warns(UserWarning, match=r"found nothing to resume under .*runs' \(no run\); "):
        first = _fit(tmp_path, resume=True, max_epochs=1, version="last")
    assert first.default_root_dir == str(tmp_path / "runs" / "version_0")
    assert first.ckpt_path is None and first.current_epoch == 1
    lk.make_trainer(default_root_dir=tmp_path / "other")  # a folder with no checkpoint
    with pytest.warns(
        UserWarning,
        match=r"\(run folders without a checkpoint: version_0\); starting a new run in "
        r".*other/version_1",
    ):
        second = _fit(tmp_path, resume=True, max_epochs=1, default_root_dir=tmp_path / "other")
    assert second.ckpt_path is None


def test_resume_an_explicit_version(tmp_path):
    _train(tmp_path)  # version_0
    _train(tmp_path)  # version_1
    resumed = _fit(tmp_path, resume=True, version=0)
    assert resumed.ckpt_path == str(tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match=r"version=7: .*version_7 has no checkpoint to continue"):
        fresh = _fit(tmp_path, resume=True, version=7, max_epochs=1)
    assert fresh.default_root_dir == str(tmp_path / "runs" / "version_7")


def test_make_trainer_version_last_is_the_newest_run_with_a_checkpoint(tmp_path):
    _train(tmp_path)  # version_0
    lk.make_trainer(default_root_dir=tmp_path / "runs")  # version_1, no checkpoint
    trainer = lk.make_trainer(default_root_dir=tmp_path / "runs", version="last")
    assert trainer.default_root_dir == str(tmp_path / "runs" / "version_0")


# --- paths in a checkpoint's callback state ----------------------------------------------------


def test_paths_in_a_crafted_checkpoint_never_leave_the_run_folder(tmp_path):
    trainer = _train(tmp_path, checkpoint_every_n_steps=2)
    folder = Path(trainer.checkpoint_callback.dirpath)
    precious_file = tmp_path / "precious.ckpt"  # named like a checkpoint, outside the run
    precious_file.write_text("keep")
    precious_dir = tmp_path / "precious_dir"
    precious_dir.mkdir()
    (precious_dir / "data.ckpt").write_text("keep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.ckpt").write_text("keep")
    (folder / "escape").symlink_to(outside, target_is_directory=True)
    # Lexically inside the checkpoint folder (Lightning's own test), really outside it.
    sneaky_dir, sneaky_file = f"{folder}/../../../precious_dir", f"{folder}/../../../precious.ckpt"
    via_link = f"{folder}/escape/victim.ckpt"
    checkpoint = torch.load(folder / "last.ckpt", weights_only=True)
    states = [s for k, s in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert len(states) == 2  # the epoch-end one (top-1 best + last) and the every-N-steps one
    for state in states:
        state.update(dirpath=str(folder), last_model_path=via_link)
    states[0].update(
        best_model_path=sneaky_dir,
        kth_best_model_path=sneaky_dir,
        best_k_models={sneaky_dir: torch.tensor(1e9)},
        best_model_score=torch.tensor(1e9),
        kth_value=torch.tensor(1e9),
        last_model_path=sneaky_file,
    )
    torch.save(checkpoint, folder / "last.ckpt")
    with pytest.warns(UserWarning) as record:
        resumed = _fit(tmp_path, resume=True, max_epochs=5, checkpoint_every_n_steps=2)
    assert resumed.current_epoch == 5  # 3 more epochs: several best, last and step saves
    assert precious_file.read_text() == "keep"
    assert (precious_dir / "data.ckpt").read_text() == "keep"
    assert (outside / "victim.ckpt").read_text() == "keep"
    dropped = " ".join(
        str(w.message) for w in record if "never be read or deleted" in str(w.message)
    )
    for path in (sneaky_dir, sneaky_file, via_link):
        assert repr(path) in dropped
    assert {p.name for p in folder.iterdir()} == {"best.ckpt", "last.ckpt", "escape"}
    assert resumed.checkpoint_callback.best_model_path == str(folder / "best.ckpt")


def test_an_honest_resume_keeps_every_path_and_warns_nothing(tmp_path):
    import warnings

    trainer = _train(tmp_path)
    best = trainer.checkpoint_callback.best_model_path
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        resumed = _fit(tmp_path, resume=True)
    assert not [w for w in record if "never be read or deleted" in str(w.message)]
    callback = resumed.checkpoint_callback
    assert callback.best_model_path == best and list(callback.best_k_models) == [best]
