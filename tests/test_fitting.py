"""lk.fit: resumes a run that can be continued."""

from __future__ import annotations

from pathlib import Path

import pytest

import lightkit as lk
from helpers import mlp_fit, mlp_run
from lightkit.checkpointing import CheckpointError

# OOM retry (microbatching in place): tests/tasks/test_microbatching.py


# --- resume picks a run that can be continued -------------------------------------------------


def test_resume_skips_newer_folders_without_a_checkpoint(tmp_path):
    trainer = mlp_run(tmp_path)  # version_0: 2 epochs, then "killed"
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
        resumed = mlp_fit(tmp_path, resume=True)
    assert resumed.ckpt_path == str(last)
    assert resumed.default_root_dir == str(tmp_path / "runs" / "version_0")
    assert resumed.current_epoch == 3 and resumed.global_step == 12  # continued, not restarted
    assert len(list((tmp_path / "runs").iterdir())) == 3  # no new folder


def test_resume_refuses_when_no_checkpoint_of_the_run_loads(tmp_path):
    trainer = mlp_run(tmp_path)
    folder = Path(trainer.checkpoint_callback.dirpath)
    for name in ("last.ckpt", "best.ckpt"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(
        CheckpointError,
        match=r"resume=True cannot continue .*version_0: it has checkpoints, but none of them "
        r"loads .*last\.ckpt' is damaged.*best\.ckpt' is damaged.*resume=False",
    ):
        mlp_fit(tmp_path, resume=True)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["version_0"]  # nothing started


def test_resume_with_nothing_to_resume_says_what_it_found(tmp_path):
    with pytest.warns(UserWarning, match=r"found nothing to resume under .*runs' \(no run\); "):
        first = mlp_fit(tmp_path, resume=True, max_epochs=1, version="last")
    assert first.default_root_dir == str(tmp_path / "runs" / "version_0")
    assert first.ckpt_path is None and first.current_epoch == 1
    lk.make_trainer(default_root_dir=tmp_path / "other")  # a folder with no checkpoint
    with pytest.warns(
        UserWarning,
        match=r"\(run folders without a checkpoint: version_0\); starting a new run in "
        r".*other/version_1",
    ):
        second = mlp_fit(tmp_path, resume=True, max_epochs=1, default_root_dir=tmp_path / "other")
    assert second.ckpt_path is None


def test_resume_an_explicit_version(tmp_path):
    mlp_run(tmp_path)  # version_0
    mlp_run(tmp_path)  # version_1
    resumed = mlp_fit(tmp_path, resume=True, version=0)
    assert resumed.ckpt_path == str(tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match=r"version=7: .*version_7 has no checkpoint to continue"):
        fresh = mlp_fit(tmp_path, resume=True, version=7, max_epochs=1)
    assert fresh.default_root_dir == str(tmp_path / "runs" / "version_7")
