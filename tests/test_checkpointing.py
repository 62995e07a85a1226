"""Checkpoint files: damaged and pickled files told apart, failed saves, stale temporaries, removal."""

from __future__ import annotations

import errno
import io
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

import lightkit as lk
from helpers import make_blobs, mlp_run
from lightkit.checkpointing import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointSaveError,
    DamagedCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    remove_stale_temp_files,
)

UNSAFE_ADVICE = ("weights_only=False", "if you trust", "add_safe_globals")


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    """The bytes of a real Lightning checkpoint written by a lightkit trainer."""
    root = tmp_path_factory.mktemp("trained")
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    trainer = lk.make_trainer(
        max_epochs=1,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), batch_size=32))
    return Path(trainer.checkpoint_callback.last_model_path).read_bytes()


def _flip(data: bytes, offset: int, count: int = 8) -> bytes:
    damaged = bytearray(data)
    for i in range(offset, offset + count):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def _pickle_offset(data: bytes) -> int:
    """Where the pickled dict (data.pkl) of a torch.save archive starts, inside the file."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = next(e for e in archive.infolist() if e.filename.endswith("/data.pkl"))
    header = 30 + len(info.filename.encode()) + len(info.extra)
    return info.header_offset + header + 40


DAMAGE = {
    "truncated": lambda d: d[: len(d) // 2],
    "truncated-near-end": lambda d: d[:-30],
    "empty": lambda d: b"",
    "random-bytes": lambda d: os.urandom(len(d)),
    "text": lambda d: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\n",
    "bit-flip-middle": lambda d: _flip(d, len(d) // 2),
    "bit-flip-in-pickle": lambda d: _flip(d, _pickle_offset(d), 2),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_file_is_named_and_never_gets_unsafe_advice(tmp_path, real_checkpoint, damage):
    path = tmp_path / "epoch=0-step=2.ckpt"
    path.write_bytes(DAMAGE[damage](real_checkpoint))
    with pytest.raises(DamagedCheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"checkpoint {os.fspath(path)!r} is damaged (truncated or corrupt)" in message
    assert not any(advice in message for advice in UNSAFE_ADVICE), message
    assert "pickled" not in message and "arbitrary code" not in message
    # Through Lightning's loading path, too: the same error, naming the file.
    with pytest.raises(CheckpointError, match=r"epoch=0-step=2\.ckpt' is damaged"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_load_from_checkpoint_names_a_truncated_file(tmp_path, real_checkpoint):
    # torch.load alone raises OSError(22, 'Invalid argument') here, with no file name.
    path = tmp_path / "best.ckpt"
    path.write_bytes(real_checkpoint[: len(real_checkpoint) // 2])
    with pytest.raises(CheckpointError, match=r"best\.ckpt' is damaged.*ends early"):
        lk.ClassificationModule.load_from_checkpoint(path)


def test_bit_flip_that_torch_load_accepts_is_still_caught(tmp_path, real_checkpoint):
    path = tmp_path / "flipped.ckpt"
    path.write_bytes(_flip(real_checkpoint, len(real_checkpoint) // 2))
    torch.load(path, weights_only=True)  # loads silently, with changed weights
    with pytest.raises(DamagedCheckpointError, match=r"Bad CRC-32 for file '.*data/\d+'"):
        load_checkpoint(path)


class _Custom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_real_pickled_global_is_refused_naming_it(tmp_path, real_checkpoint):
    good = tmp_path / "good.ckpt"
    good.write_bytes(real_checkpoint)
    checkpoint = load_checkpoint(good)
    marker = tmp_path / "ran"
    for name, value in {"pathlib.PosixPath": _Custom(marker), "posix.system": os.system}.items():
        checkpoint["hyper_parameters"]["extra"] = value
        path = tmp_path / "pickled.ckpt"
        torch.save(checkpoint, path)
        with pytest.raises(UnsafeCheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert f"refusing to load checkpoint {os.fspath(path)!r}" in message
        assert "pickles the Python object" in message and name in message
        assert "will not load" in message and "plain data" in message
        assert not any(advice in message for advice in UNSAFE_ADVICE), message
        assert "damaged" not in message
    assert not marker.exists()


def test_a_class_object_torch_allows_is_plain_data(tmp_path):
    import collections

    path = tmp_path / "ordered.ckpt"
    torch.save({"x": collections.OrderedDict, "w": torch.ones(2)}, path)
    assert load_checkpoint(path)["x"] is collections.OrderedDict


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _partial_write_then_enospc(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_writer_failure(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04")
    raise RuntimeError(
        "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
        "writing file data/3: file write failed"
    )


class _FillingDisk(io.FileIO):
    """A file on a disk that fills up after 1000 bytes: the real torch.save then raises
    RuntimeError('unexpected pos ...') while closing its archive, the OSError only in context."""

    def write(self, data):
        if self.tell() + len(data) > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def _filling_disk_open(path, mode="r", *args, **kwargs):
    return _FillingDisk(path, mode.replace("b", ""))


@pytest.mark.parametrize(
    "where, replacement",
    [
        ("lightkit.checkpointing.open", _filling_disk_open),
        ("lightkit.checkpointing.os.fsync", _enospc),
        ("lightkit.checkpointing.torch.save", _partial_write_then_enospc),
        ("lightkit.checkpointing.torch.save", _torch_writer_failure),
        ("lightkit.checkpointing.os.replace", _enospc),
    ],
)
def test_failed_save_keeps_the_previous_checkpoint_and_no_temp_file(
    tmp_path, monkeypatch, where, replacement
):
    checkpoint_io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint_io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, target)
    monkeypatch.setattr(where, replacement, raising=False)
    with pytest.raises(CheckpointSaveError) as info:
        checkpoint_io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, CheckpointError)
    message = str(err)
    assert f"cannot save checkpoint {os.fspath(target)!r}" in message
    assert f"folder {os.fspath(target.parent)!r}" in message and " free of " in message
    assert "previous checkpoint there is unchanged" in message
    if replacement is not _torch_writer_failure:
        assert err.errno == errno.ENOSPC and "the disk is full" in message
        assert "needs about 3.9 KB" in message
    assert load_checkpoint(target)["step"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_failed_first_save_says_no_file_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr("lightkit.checkpointing.os.fsync", _enospc)
    target = tmp_path / "last.ckpt"
    with pytest.raises(CheckpointSaveError, match="No file was written"):
        AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_stale_temp_files_are_removed_and_live_ones_kept(tmp_path, live_pid):
    folder = tmp_path / "checkpoints"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"step": 1}, folder / "last.ckpt")
    _age(folder / "last.ckpt", 600)
    dead = folder / f".last.ckpt.lightkit-{_dead_pid()}.tmp"
    dead.write_bytes(b"partial")
    _age(dead, 300)
    fresh_dead = (
        folder / f".epoch=1.ckpt.lightkit-{_dead_pid()}.tmp"
    )  # may still be written elsewhere
    fresh_dead.write_bytes(b"partial")
    live = (
        folder / f".best.ckpt.lightkit-{live_pid}.tmp"
    )  # a live process, newer than any checkpoint
    live.write_bytes(b"partial")
    _age(live, 300)
    mine_before_start = (
        folder / f".last.ckpt.lightkit-{os.getpid()}.tmp"
    )  # a past process with my pid
    mine_before_start.write_bytes(b"partial")
    _age(mine_before_start, 3600 * 24)
    other = folder / ".notes.tmp"
    other.write_text("not a lightkit temporary file")
    _age(other, 3600)

    checkpoint_io.save_checkpoint({"step": 2}, folder / "last.ckpt")
    assert not dead.exists() and not mine_before_start.exists()
    assert fresh_dead.exists() and live.exists() and other.exists()
    assert load_checkpoint(folder / "last.ckpt")["step"] == 2

    # The save made last.ckpt newer than the live pid's temp file: a complete checkpoint was
    # written after it, so that pid was reused and the file is stale.
    assert remove_stale_temp_files(folder) == [os.fspath(live)]
    _age(fresh_dead, 120)  # no longer written by anyone
    checkpoint_io.load_checkpoint(folder / "last.ckpt")  # a load cleans nothing
    assert fresh_dead.exists()
    checkpoint_io.save_checkpoint({"step": 3}, folder / "last.ckpt")  # the next save does
    assert not fresh_dead.exists() and other.exists()


def test_a_temp_file_being_written_is_never_removed(tmp_path, live_pid):
    folder = tmp_path / "checkpoints"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, folder / "last.ckpt")
    writing = [
        folder / f".last.ckpt.lightkit-{pid}.tmp" for pid in (live_pid, os.getpid(), _dead_pid())
    ]
    for path in writing:
        path.write_bytes(b"partial")  # just modified: may be written from another machine
    assert remove_stale_temp_files(folder) == []
    assert all(path.exists() for path in writing)


def test_remove_checkpoint_deletes_only_ckpt_files(tmp_path):
    checkpoint_io = AtomicCheckpointIO()
    ckpt = tmp_path / "epoch=1.ckpt"
    ckpt.write_bytes(b"x")
    folder = tmp_path / "precious.ckpt"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "data.txt").write_text("keep me")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    target = tmp_path / "elsewhere" / "data.bin"
    target.parent.mkdir()
    target.write_text("keep me")
    link = tmp_path / "last.ckpt"
    link.symlink_to(target)

    checkpoint_io.remove_checkpoint(ckpt)
    checkpoint_io.remove_checkpoint(link)
    checkpoint_io.remove_checkpoint(tmp_path / "missing.ckpt")  # nothing to do, no error
    assert not ckpt.exists() and not link.is_symlink() and target.read_text() == "keep me"
    with pytest.warns(UserWarning, match=r"not removing '.*precious\.ckpt'.*it is a folder"):
        checkpoint_io.remove_checkpoint(folder)
    with pytest.warns(UserWarning, match=r"not removing '.*notes\.txt'.*does not end in \.ckpt"):
        checkpoint_io.remove_checkpoint(notes)
    assert (folder / "inner" / "data.txt").read_text() == "keep me" and notes.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_intact_file_that_cannot_load_here_is_not_called_damaged(tmp_path, real_checkpoint):
    path = tmp_path / "best.ckpt"
    path.write_bytes(real_checkpoint)
    with pytest.raises(CheckpointError, match=r"best\.ckpt' is intact but cannot be loaded here"):
        load_checkpoint(path, map_location="cuda")


def test_another_programs_temp_files_are_never_removed(tmp_path):
    """Only lightkit's own `.X.ckpt.lightkit-<pid>.tmp` names are cleaned, and only on a save."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    foreign = [
        folder / f".thesis.docx.{_dead_pid()}.tmp",
        folder / f".model.ckpt.{_dead_pid()}.tmp",
    ]
    for path in foreign:
        path.write_text("someone else's work")
        _age(path, 3600)
    ours = folder / f".last.ckpt.lightkit-{_dead_pid()}.tmp"
    ours.write_text("a killed save")
    _age(ours, 3600)
    ckpt = folder / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    AtomicCheckpointIO().load_checkpoint(ckpt)  # a load cleans nothing
    assert ours.exists() and all(p.exists() for p in foreign)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, folder / "last.ckpt")
    assert not ours.exists() and all(p.exists() for p in foreign)


def test_truncated_checkpoint_is_named_and_resume_falls_back(tmp_path):
    trainer = mlp_run(tmp_path)
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
    trainer = mlp_run(tmp_path)
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


def test_atomic_io_leaves_no_temporary_files(tmp_path):
    trainer = mlp_run(tmp_path, checkpoint_every_n_steps=1)
    folder = Path(trainer.checkpoint_callback.dirpath)
    assert {p.name for p in folder.iterdir()} == {"best.ckpt", "last.ckpt"}
