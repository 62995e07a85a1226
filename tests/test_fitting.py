"""lk.fit: retries with a smaller batch on out-of-memory errors, and resumes a run that can be
continued."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import RunsOutOfMemory, make_blobs, mlp_fit, mlp_run
from lightkit.checkpointing import CheckpointError

# --- OOM retry ---------------------------------------------------------------------------------


class EpochCounter(lk.ClassificationModule):
    def on_train_epoch_start(self) -> None:
        self.net.epoch = self.current_epoch
        super().on_train_epoch_start()


def test_fit_halves_the_batch_on_oom_and_keeps_the_effective_batch(tmp_path):
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=64, val_split=0.25)
    net = RunsOutOfMemory(limit=16)
    module = lk.ClassificationModule(net, 3)
    with pytest.warns(UserWarning) as record:
        trainer = lk.fit(
            module, dm, max_epochs=2, default_root_dir=tmp_path, logger=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    retries = [str(w.message) for w in record if "out of memory" in str(w.message)]
    assert retries == [
        "lightkit: CUDA out of memory at batch size 64; retrying with batch_size=32 and "
        "accumulate_grad_batches=2 (effective batch 64), starting over",
        "lightkit: CUDA out of memory at batch size 32; retrying with batch_size=16 and "
        "accumulate_grad_batches=4 (effective batch 64), starting over",
    ]
    assert dm.batch_size == 16 and trainer.accumulate_grad_batches == 4
    assert trainer.current_epoch == 2 and trainer.global_step == 2 * 3  # 12 batches / 4 per step
    assert (tmp_path / "version_0" / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "version_1").exists()  # the retries continue the same run folder


def test_fit_names_the_cpu_allocator_when_it_ran_out(tmp_path):
    data = make_blobs(n=128)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    error = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")
    module = lk.ClassificationModule(RunsOutOfMemory(limit=16, error=error), 3)
    with pytest.warns(UserWarning, match="lightkit: CPU out of memory at batch size 32; retrying"):
        lk.fit(
            module, dm, max_epochs=1, default_root_dir=tmp_path, logger=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    assert dm.batch_size == 16


def test_fit_resumes_from_last_checkpoint_after_oom(tmp_path):
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    net = RunsOutOfMemory(limit=16, from_epoch=1)
    module = EpochCounter(net, 3)
    with pytest.warns(UserWarning, match="batch size 32; retrying with batch_size=16 .* resuming"):
        trainer = lk.fit(
            module, dm, max_epochs=3, default_root_dir=tmp_path, logger=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    # Epoch 0 ran at 32 (6 batches), the OOM hit at the first batch of epoch 1, and epochs 1-2
    # ran from the epoch-0 checkpoint at 16 (12 batches each).
    assert net.batch_sizes[:6] == [32] * 6
    assert net.batch_sizes[6] == 32 and set(net.batch_sizes[7:]) == {16}
    assert len(net.batch_sizes[7:]) == 2 * 12
    assert trainer.current_epoch == 3 and trainer.global_step == 6 + 2 * 6


class OutOfMemoryAtFifthBatch(nn.Module):
    """Raises CUDA's OOM error at the fifth training batch while batches hold 32 samples."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)
        self.rows: list[torch.Tensor] = []  # the training samples each completed forward saw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if len(self.rows) == 4 and x.shape[0] == 32:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
            self.rows.append(x.detach().clone())
        return self.layer(x)


@pytest.mark.parametrize("scheduler", [None, lk.optim.cosine()], ids=["no-scheduler", "cosine"])
def test_fit_resumes_mid_epoch_after_oom_with_every_sample_seen_once(tmp_path, scheduler):
    # A cosine schedule asks for the step count early, so Lightning builds the train loader
    # before it restores its own batch counts: the recount must survive that.
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    net = OutOfMemoryAtFifthBatch()
    module = lk.ClassificationModule(net, 3, scheduler=scheduler)
    with pytest.warns(UserWarning, match="batch_size=16 and accumulate_grad_batches=2 .* resuming"):
        trainer = lk.fit(
            module, dm, max_epochs=1, checkpoint_every_n_steps=2, default_root_dir=tmp_path,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    # last.ckpt was written after 4 batches of 32; the epoch goes on at the 129th sample in
    # batches of 16, so each of the 192 training samples is trained on exactly once.
    assert [len(r) for r in net.rows] == [32] * 4 + [16] * 4
    seen = torch.cat(net.rows)
    assert len(torch.unique(seen, dim=0)) == len(seen) == 192
    # 4 steps at batch 32, then 4 batches of 16 at 2 per step; validation ran at epoch end.
    assert trainer.current_epoch == 1 and trainer.global_step == 4 + 2
    assert "val/loss" in trainer.callback_metrics


def test_fit_gives_up_after_batch_size_one(tmp_path):
    data = make_blobs(n=64)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=2, val_split=0.25)
    module = lk.ClassificationModule(RunsOutOfMemory(limit=0), 3)
    with (
        pytest.warns(UserWarning, match="batch size 2; retrying with batch_size=1"),
        pytest.raises(torch.cuda.OutOfMemoryError, match="out of memory even at batch size 1"),
    ):
        lk.fit(module, dm, max_epochs=1, default_root_dir=tmp_path, logger=False,
               enable_progress_bar=False)  # fmt: skip


def test_fit_without_oom_retry_raises_at_once(tmp_path):
    data = make_blobs(n=64)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(RunsOutOfMemory(limit=8), 3)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="Tried to allocate"):
        lk.fit(module, dm, oom_retry=False, max_epochs=1, default_root_dir=tmp_path,
               logger=False, enable_progress_bar=False)  # fmt: skip
    assert dm.batch_size == 32


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
