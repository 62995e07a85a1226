"""Run folders: a new version_<n> per run (even started at the same moment), explicit and 'last'
versions, DDP workers, no folder left by a trainer that fails to build."""

from __future__ import annotations

import pytest

import lightkit as lk
from helpers import mlp_run


def test_each_run_gets_a_new_folder(tmp_path, blobs):
    dirs = []
    for _ in range(2):
        trainer = lk.make_trainer(
            max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False
        )
        module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=64))
        dirs.append(trainer.checkpoint_callback.dirpath)
        assert (tmp_path / f"version_{len(dirs) - 1}" / "checkpoints" / "last.ckpt").exists()
    assert dirs[0] != dirs[1]


def _claim_many(root, barrier, queue, count):
    from lightkit.trainer._run_dir import claim_run_dir as _claim_run_dir

    barrier.wait()
    queue.put([str(_claim_run_dir(root)) for _ in range(count)])


def _make_trainer_at_once(root, barrier, queue, count):
    barrier.wait()
    dirs = []
    for _ in range(count):
        trainer = lk.make_trainer(
            default_root_dir=root, logger=False, enable_progress_bar=False, max_epochs=1
        )
        dirs.append(trainer.default_root_dir)
    queue.put(dirs)


def _race(target, root, processes=8, count=10):
    import multiprocessing

    context = multiprocessing.get_context("fork")  # cheap: lightkit is already imported
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=target, args=(root, barrier, queue, count)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    return [d for dirs in results for d in dirs]


@pytest.mark.parametrize("target", [_claim_many, _make_trainer_at_once], ids=["claim", "make"])
def test_runs_started_at_the_same_moment_never_share_a_folder(tmp_path, target):
    dirs = _race(target, tmp_path / "runs")
    assert len(dirs) == 80
    assert len(set(dirs)) == 80, "two runs got the same version_<n> folder"
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {f"version_{n}" for n in range(80)}


def test_a_stale_listing_still_claims_a_free_folder(tmp_path, monkeypatch):
    # Another run created version_0 and version_1 after this one listed the root.
    from lightkit.trainer import _run_dir as trainer_module

    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_1" / "mine").write_text("theirs")
    monkeypatch.setattr(trainer_module, "versions", lambda root: [])
    trainer = lk.make_trainer(default_root_dir=tmp_path, logger=False)
    assert trainer.default_root_dir == str(tmp_path / "version_2")
    assert (tmp_path / "version_1" / "mine").read_text() == "theirs"


def test_ddp_workers_reuse_rank_zeros_folder_and_create_none(tmp_path, monkeypatch):
    from lightning.pytorch.utilities import rank_zero_only

    chosen = lk.make_trainer(default_root_dir=tmp_path, logger=False).default_root_dir
    assert chosen == str(tmp_path / "version_0")
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as in a worker Lightning launched
    monkeypatch.setenv("LIGHTKIT_RUN_DIR", chosen)
    worker = lk.make_trainer(default_root_dir=tmp_path, logger=False)
    assert worker.default_root_dir == chosen
    assert [p.name for p in tmp_path.iterdir()] == ["version_0"]


def test_explicit_version_means_that_folder(tmp_path):
    first = lk.make_trainer(default_root_dir=tmp_path, version=3, logger=False)
    again = lk.make_trainer(default_root_dir=tmp_path, version=3, logger=False)
    assert first.default_root_dir == again.default_root_dir == str(tmp_path / "version_3")
    # A new run goes after the highest number, never into an explicit run's folder.
    assert lk.make_trainer(default_root_dir=tmp_path).default_root_dir == str(
        tmp_path / "version_4"
    )


def test_a_trainer_that_fails_to_build_leaves_no_folder(tmp_path):
    with pytest.raises(Exception, match="not a valid duration"):
        lk.make_trainer(default_root_dir=tmp_path, max_time="forever", logger=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_root_is_named(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(NotADirectoryError, match=r"default_root_dir=.*runs' is a file"):
        lk.make_trainer(default_root_dir=tmp_path / "runs")


def test_make_trainer_version_last_is_the_newest_run_with_a_checkpoint(tmp_path):
    mlp_run(tmp_path)  # version_0
    lk.make_trainer(default_root_dir=tmp_path / "runs")  # version_1, no checkpoint
    trainer = lk.make_trainer(default_root_dir=tmp_path / "runs", version="last")
    assert trainer.default_root_dir == str(tmp_path / "runs" / "version_0")
