"""Run folders in fsspec stores: checkpoints, last.ckpt resume, TensorBoard logs, the run record
and Predictor.from_checkpoint against ``memory://`` (and ``file://``, which is the local disk);
a save killed part-way never leaves a half-written checkpoint where a resume reads."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import fsspec
import lightning as L
import pytest
import torch

import lightkit as lk
from helpers import make_blobs
from lightkit import checkpointing
from lightkit.checkpointing import AtomicCheckpointIO, CheckpointSaveError, load_checkpoint
from lightkit.trainer._remote import StagingSync

MEMORY = fsspec.filesystem("memory")


class Killed(BaseException):
    """The process died here: nothing after this point runs."""


@pytest.fixture
def root():
    """A memory:// root of this test's own (the store is shared by the whole process)."""
    name = f"runs-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}"
    if MEMORY.exists(f"/{name}"):
        MEMORY.rm(f"/{name}", recursive=True)


def _options(root, **kwargs):
    return {"default_root_dir": root, "enable_progress_bar": False, "seed": 0, **kwargs}


def _module():
    return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)


def _data():
    return lk.data.DataModule(make_blobs(128), batch_size=32, num_workers=0)


def _files(root: str) -> list[str]:
    inner = root.removeprefix("memory://")
    return sorted(p.removeprefix(f"/{inner}/") for p in MEMORY.find(f"/{inner}"))


def test_a_run_in_memory_keeps_checkpoints_logs_and_record_in_the_store(root):
    trainer = lk.make_trainer(max_epochs=2, **_options(root))
    module = _module()
    trainer.fit(module, datamodule=_data())
    files = _files(root)
    assert {"version_0/checkpoints/best.ckpt", "version_0/checkpoints/last.ckpt"} <= set(files)
    assert {"version_0/run.json", "version_0/hparams.yaml"} <= set(files)
    assert any(f.startswith("version_0/events.out.tfevents.") for f in files)  # TensorBoard
    assert not any(".tmp" in f for f in files)
    record = json.loads(MEMORY.cat_file(f"{root}/version_0/run.json"))
    assert record["status"] == "finished"
    best = trainer.checkpoint_callback.best_model_path
    assert best == f"{root}/version_0/checkpoints/best.ckpt"
    assert load_checkpoint(f"{root}/version_0/checkpoints/last.ckpt")["epoch"] == 1
    # The trainer's own folder is a local stand-in named like the run; nothing local was left
    # at a path spelled like the URL.
    assert Path(trainer.default_root_dir).name == "version_0"
    assert not Path("memory:").exists()
    x = make_blobs(16).tensors[0]
    predictor = lk.Predictor.from_checkpoint(best)
    module.eval()
    with torch.no_grad():
        expected = module(x).argmax(1)
    assert torch.equal(torch.as_tensor(predictor.predict(x)).argmax(1), expected)
    assert isinstance(lk.ClassificationModule.load_from_checkpoint(best), lk.ClassificationModule)


def test_runs_take_new_folders_and_resume_continues_the_newest(root):
    for _ in range(2):
        lk.make_trainer(max_epochs=1, **_options(root)).fit(_module(), datamodule=_data())
    assert {f.split("/")[0] for f in _files(root)} == {"version_0", "version_1"}
    trainer = lk.fit(_module(), _data(), resume=True, max_epochs=2, **_options(root))
    assert trainer.ckpt_path == f"{root}/version_1/checkpoints/last.ckpt"
    assert trainer.current_epoch == 2
    assert load_checkpoint(trainer.ckpt_path)["epoch"] == 1
    assert {f.split("/")[0] for f in _files(root)} == {"version_0", "version_1"}
    # The resumed run's record continues in the store.
    record = json.loads(MEMORY.cat_file(f"{root}/version_1/run.json"))
    assert record["status"] == "finished"
    again = lk.make_trainer(max_epochs=1, version="last", **_options(root))
    assert again.checkpoint_callback.dirpath == f"{root}/version_1/checkpoints"


def _kill_the_next_save(monkeypatch, fraction=0.5):
    """The next torch.save writes ``fraction`` of its bytes, then the process "dies": the error
    propagates and the store keeps what was written (nothing removes it, as after a kill)."""
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: int(len(data) * fraction)])
        monkeypatch.setattr(type(MEMORY), "rm_file", lambda self, path: None)
        monkeypatch.setattr(type(MEMORY), "_rm", lambda self, path: None)
        raise Killed

    monkeypatch.setattr(checkpointing.torch, "save", dying_save)


def test_a_kill_during_a_save_leaves_a_complete_checkpoint_that_resume_continues(root, monkeypatch):
    lk.fit(_module(), _data(), max_epochs=1, **_options(root))  # last.ckpt of epoch 0
    last = f"{root}/version_0/checkpoints/last.ckpt"
    before = MEMORY.cat_file(last)
    _kill_the_next_save(monkeypatch)
    with pytest.raises(Killed):
        lk.fit(_module(), _data(), resume=True, max_epochs=3, **_options(root))
    partial = [f for f in _files(root) if f.endswith(".tmp")]
    assert len(partial) == 1 and partial[0].startswith("version_0/checkpoints/.")  # the kill's
    assert 0 < MEMORY.size(f"{root}/{partial[0]}") < len(before)
    assert MEMORY.cat_file(last) == before  # the name a resume reads: untouched and complete
    monkeypatch.undo()

    trainer = lk.fit(_module(), _data(), resume=True, max_epochs=3, **_options(root))
    assert trainer.ckpt_path == last
    assert trainer.current_epoch == 3
    assert load_checkpoint(last)["epoch"] == 2


def test_a_kill_during_the_first_save_leaves_nothing_to_resume(root, monkeypatch):
    _kill_the_next_save(monkeypatch)
    with pytest.raises(Killed):
        lk.fit(_module(), _data(), max_epochs=1, **_options(root))
    assert [f for f in _files(root) if "checkpoints/" in f and not f.endswith(".tmp")] == []
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="found nothing to resume"):
        trainer = lk.fit(_module(), _data(), resume=True, max_epochs=1, **_options(root))
    assert trainer.ckpt_path is None
    assert trainer.checkpoint_callback.dirpath == f"{root}/version_1/checkpoints"


def test_a_half_written_last_ckpt_is_refused_and_the_newest_complete_one_resumed(root):
    # A store written by something else than lightkit's write-then-commit: last.ckpt torn.
    lk.fit(_module(), _data(), max_epochs=1, **_options(root))
    last = f"{root}/version_0/checkpoints/last.ckpt"
    data = MEMORY.cat_file(last)
    MEMORY.pipe_file(last, data[: len(data) // 2])
    with pytest.warns(UserWarning, match="damaged or unsafe to load"):
        trainer = lk.fit(_module(), _data(), resume=True, max_epochs=2, **_options(root))
    assert trainer.ckpt_path == f"{root}/version_0/checkpoints/best.ckpt"


def test_paths_in_a_checkpoint_never_leave_the_run_folder(root):
    lk.fit(_module(), _data(), max_epochs=1, **_options(root))
    last = f"{root}/version_0/checkpoints/last.ckpt"
    checkpoint = load_checkpoint(last)
    outside = f"{root}/victim.ckpt"
    MEMORY.pipe_file(outside, b"keep me")
    for state in checkpoint["callbacks"].values():
        if "best_model_path" in state:
            state["best_model_path"] = f"{root}/version_0/checkpoints/../../victim.ckpt"
            state["best_k_models"] = {outside: state["best_model_score"]}
            state["kth_best_model_path"] = outside
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    MEMORY.pipe_file(last, buffer.getvalue())
    with pytest.warns(UserWarning, match="outside this run's checkpoint folder"):
        lk.fit(_module(), _data(), resume=True, max_epochs=3, **_options(root))
    assert MEMORY.cat_file(outside) == b"keep me"


def test_a_failed_save_into_a_store_names_the_url_and_keeps_the_previous_file(root, monkeypatch):
    io_ = AtomicCheckpointIO()
    target = f"{root}/checkpoints/last.ckpt"
    io_.save_checkpoint({"epoch": 0}, target)
    before = MEMORY.cat_file(target)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpointing.torch, "save", broken_save)
    with pytest.raises(CheckpointSaveError, match=f"cannot save checkpoint '{target}'") as info:
        io_.save_checkpoint({"epoch": 1}, target)
    assert info.value.errno == 28
    assert MEMORY.cat_file(target) == before
    assert _files(root) == ["checkpoints/last.ckpt"]  # the temporary object was removed


def test_removing_from_a_store_deletes_only_checkpoint_files(root):
    io_ = AtomicCheckpointIO()
    MEMORY.pipe_file(f"{root}/c/old.ckpt", b"x")
    MEMORY.pipe_file(f"{root}/c/notes.txt", b"x")
    MEMORY.pipe_file(f"{root}/c/dir.ckpt/inside", b"x")
    io_.remove_checkpoint(f"{root}/c/old.ckpt")
    with pytest.warns(UserWarning, match="not removing"):
        io_.remove_checkpoint(f"{root}/c/notes.txt")
    with pytest.warns(UserWarning, match="a folder"):
        io_.remove_checkpoint(f"{root}/c/dir.ckpt")
    io_.remove_checkpoint(f"{root}/c/gone.ckpt")  # already gone: nothing to do
    assert _files(root) == ["c/dir.ckpt/inside", "c/notes.txt"]


def test_stale_temporary_objects_are_removed_once_a_newer_checkpoint_exists(root, monkeypatch):
    stale = f"{root}/c/.last.ckpt.lightkit-1-abcd.tmp"
    MEMORY.pipe_file(stale, b"partial")
    fresh = f"{root}/c/.best.ckpt.lightkit-2-ef01.tmp"
    monkeypatch.setattr(checkpointing, "_TEMP_GRACE_S", 0.0)
    time.sleep(0.01)
    AtomicCheckpointIO().save_checkpoint({"epoch": 0}, f"{root}/c/last.ckpt")
    MEMORY.pipe_file(fresh, b"partial")  # newer than every complete checkpoint: kept
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, f"{root}/c/last.ckpt")
    assert _files(root) == ["c/.best.ckpt.lightkit-2-ef01.tmp", "c/last.ckpt"]


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("nosuchstore://runs", ValueError, "default_root_dir='nosuchstore://runs'"),
        ("memory://", ValueError, "root of the store"),
        ("bad store://x", ValueError, "not a URL fsspec opens"),
    ],
)
def test_a_url_fsspec_cannot_open_is_named(url, error, message):
    with pytest.raises(error, match=message):
        lk.make_trainer(default_root_dir=url)
    with pytest.raises(error, match=message):
        lk.fit(_module(), _data(), resume=True, default_root_dir=url)


def test_a_store_whose_package_is_missing_is_named(monkeypatch):
    import fsspec.core

    def missing(url, **kwargs):
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", missing)
    with pytest.raises(ModuleNotFoundError, match=r"default_root_dir='s3://b/runs' needs s3fs"):
        lk.make_trainer(default_root_dir="s3://b/runs")


def test_loading_a_missing_or_unknown_url_is_named(root):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.Predictor.from_checkpoint(f"{root}/none.ckpt")
    with pytest.raises(ValueError, match=r"path='nosuchstore://x\.ckpt'"):
        load_checkpoint("nosuchstore://x.ckpt")


def test_mlflow_needs_its_own_tracking_store_for_a_run_folder_in_a_store(root, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        lk.make_trainer(default_root_dir=root, logger="mlflow")
    assert _files(root) == []  # checked before any folder was claimed


def test_a_file_url_is_the_local_folder(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, **_options(f"file://{tmp_path}/runs"))
    assert trainer.default_root_dir == str(tmp_path / "runs" / "version_0")
    trainer.fit(_module(), datamodule=_data())
    assert (tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    trainer = lk.fit(
        _module(), _data(), resume=True, max_epochs=2, **_options(f"file://{tmp_path}/runs")
    )
    assert trainer.ckpt_path == str(tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt")


KILLED_SAVE = textwrap.dedent(
    """
    import sys, time, io
    from pathlib import Path
    import torch
    sys.path.insert(0, sys.argv[3])
    import lightkit as lk
    from helpers import make_blobs

    root, marker = sys.argv[1], Path(sys.argv[2])
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):  # the second epoch's first save stops half-way
        saves.append(1)
        if obj.get("epoch") != 1:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        marker.write_text("saving")
        time.sleep(120)  # killed here

    torch.save = save
    dm = lk.data.DataModule(make_blobs(128), batch_size=32, num_workers=0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    lk.fit(module, dm, resume=True, max_epochs=3, default_root_dir=root, seed=0,
           enable_progress_bar=False, logger=False)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_a_process_killed_during_a_save_into_a_file_url_resumes_a_complete_checkpoint(tmp_path):
    script = tmp_path / "killed_save.py"
    script.write_text(KILLED_SAVE)
    root, marker = f"file://{tmp_path}/runs", tmp_path / "saving"
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen(
        [sys.executable, str(script), root, str(marker), tests],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.communicate(timeout=30)[0][-3000:]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    folder = tmp_path / "runs" / "version_0" / "checkpoints"
    partial = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(partial) == 1, sorted(p.name for p in folder.iterdir())
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 0  # the previous, complete one

    marker.unlink()
    done = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE.replace("obj.get(\"epoch\") != 1", "True"), root,
         str(marker), tests],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming {tmp_path / 'runs' / 'version_0'} from {folder / 'last.ckpt'}" in (
        done.stdout + done.stderr
    )
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 2


@pytest.fixture
def staging(tmp_path, monkeypatch):
    """This test's own parent folder for staging folders (``$LIGHTKIT_STAGING_DIR``)."""
    folder = tmp_path / "staging"
    monkeypatch.setenv("LIGHTKIT_STAGING_DIR", str(folder))
    return folder


def _finish(trainer) -> None:
    """What happens when the trainer is garbage collected or the process exits."""
    next(c for c in trainer.callbacks if isinstance(c, StagingSync)).finish()


def test_the_staging_folder_outlives_fit_and_test_and_goes_after_a_last_copy(root, staging):
    trainer = lk.make_trainer(max_epochs=1, **_options(root))
    module = _module()
    trainer.fit(module, datamodule=_data())
    trainer.validate(module, datamodule=_data())  # writes to the staging folder again
    local = Path(trainer.default_root_dir)
    assert local.parent.parent == staging and local.is_dir()
    (local / "notes.txt").write_text("written after the last stage")
    _finish(trainer)
    assert list(staging.iterdir()) == []
    files = _files(root)
    assert {"version_0/notes.txt", "version_0/run.json"} <= set(files)
    assert len([f for f in files if "tfevents" in f]) == 2  # fit's and validate's


def test_the_staging_folder_goes_when_the_process_exits(tmp_path, staging):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import lightkit as lk
            from helpers import make_blobs
            trainer = lk.make_trainer(max_epochs=1, default_root_dir="memory://runs",
                                      enable_progress_bar=False, enable_model_summary=False)
            module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
            trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), batch_size=32))
            assert trainer.default_root_dir.startswith({str(staging)!r})
        """)
    )
    env = {**os.environ, "LIGHTKIT_STAGING_DIR": str(staging)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(staging.iterdir()) == []


def test_a_staging_folder_whose_last_copy_failed_is_kept_and_named(root, staging, monkeypatch):
    trainer = lk.make_trainer(max_epochs=1, **_options(root))
    trainer.fit(_module(), datamodule=_data())
    local = Path(trainer.default_root_dir)
    (local / "notes.txt").write_text("never copied")

    def unreachable(self, lpath, rpath, **kwargs):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(type(MEMORY), "put_file", unreachable)
    with pytest.warns(UserWarning, match=f"kept the staging folder '{local}'"):
        _finish(trainer)
    assert (local / "notes.txt").is_file()


def test_other_ranks_copy_nothing_and_remove_their_staging_folder(root, staging, monkeypatch):
    monkeypatch.setattr(L.Trainer, "is_global_zero", property(lambda self: False))
    trainer = lk.make_trainer(max_epochs=1, **_options(root))
    trainer.fit(_module(), datamodule=_data())
    _finish(trainer)
    assert list(staging.iterdir()) == []
    assert "version_0/run.json" not in _files(root)  # only global rank 0 copies


def test_a_trainer_that_fails_to_build_leaves_no_staging_folder(root, staging):
    with pytest.raises(TypeError, match="no_such_argument"):
        lk.make_trainer(no_such_argument=1, **_options(root))
    assert not staging.exists() or list(staging.iterdir()) == []
    assert _files(root) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory:/runs", r"default_root_dir='memory:/runs'.*did you mean 'memory://runs'"),
        (Path("s3://bucket/runs"), r"did you mean 's3://bucket/runs'"),
        ("file:/data/runs", r"did you mean 'file:///data/runs'"),
        ("http://example.com/runs", r"default_root_dir='http://example.com/runs'.*read-only"),
        ("https://example.com/runs", r"read-only store \(https://\)"),
        ("simplecache::https://example.com/runs", r"read-only store \(https://\)"),
    ],
)
def test_a_run_root_that_cannot_hold_runs_is_refused_up_front(url, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        lk.make_trainer(default_root_dir=url)
    with pytest.raises(ValueError, match=message):
        lk.fit(_module(), _data(), resume=True, default_root_dir=url)
    assert list(tmp_path.iterdir()) == []  # no folder named 'memory:' or 's3:'
