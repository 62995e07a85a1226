"""make_trainer at scale: precision and strategy checks, DDP and multi-node on CPU, accumulation,
OOM retry, profiling, determinism, and the LR and batch-size finders."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import lightkit as lk
from helpers import make_blobs
from lightkit._hardware import resolve_precision as _resolve_precision

SCRIPT = Path(__file__).parent / "scripts" / "distributed_training.py"


def _weights(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"strategy": "dpp"},
            r"unknown strategy 'dpp'; expected one of 'auto', 'ddp', 'ddp_spawn', 'fsdp'",
        ),
        ({"strategy": "dp"}, "Lightning 2 has no DataParallel; use 'ddp'"),
        ({"strategy": 3}, "strategy must be a name or a lightning Strategy"),
        (
            {"accelerator": "cpu", "devices": 10_000},
            "devices=10000 but this machine has .* CPU core",
        ),
        ({"accelerator": "cpu", "devices": 0}, "devices must be 'auto', -1, a positive count"),
        (
            {"accelerator": "cpu", "precision": "16-mixed"},
            "fp16 mixed precision.*needs a GPU.*'32-true'",
        ),
        (
            {"gradient_clip_algorithm": "l2"},
            "gradient_clip_algorithm must be one of 'norm', 'value'",
        ),
        ({"num_nodes": 0}, "num_nodes must be an integer >= 1, got 0"),
        (
            {"profiler": "fancy"},
            "unknown profiler 'fancy'; expected None, 'simple', 'advanced', 'pytorch'",
        ),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be an integer >= 1, got 0"),
    ],
)
def test_bad_scale_arguments(tmp_path, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lk.make_trainer(default_root_dir=tmp_path, **kwargs)


def test_bad_input_creates_no_run_folder(tmp_path):
    with pytest.raises(ValueError):
        lk.make_trainer(default_root_dir=tmp_path, strategy="nope")
    assert not (tmp_path / "version_0").exists()


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA to ask for more GPUs than exist"
)
def test_too_many_gpus(tmp_path):
    n = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"devices={n + 1} but this machine has {n} CUDA GPU"):
        lk.make_trainer(default_root_dir=tmp_path, accelerator="gpu", devices=n + 1)


def test_precision_choices(monkeypatch):
    assert _resolve_precision("auto", "cpu") == "32-true"
    assert _resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # the CPU runs bf16 autocast
    monkeypatch.setattr("lightkit._hardware.native_bf16", lambda: True)
    assert _resolve_precision("auto", "cuda") == "bf16-mixed"
    monkeypatch.setattr("lightkit._hardware.native_bf16", lambda: False)
    assert _resolve_precision("auto", "cuda") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    with pytest.raises(ValueError, match=r"Tesla T4 has 7\.5\. Use '16-mixed'"):
        _resolve_precision("bf16-mixed", "cuda")


def test_strategies_and_clipping_reach_the_trainer(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    trainer = lk.make_trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        strategy="ddp",
        gradient_clip_val=0.5,
        gradient_clip_algorithm="value",
        logger=False,
    )
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters", False) is False
    assert trainer.gradient_clip_algorithm == "value"


# --- accumulation ------------------------------------------------------------------------------


def _one_epoch_sgd(tmp_path, batch_size: int, accumulate: int) -> torch.Tensor:
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=batch_size, val_split=0.0, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))  # no BatchNorm
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.sgd(lr=0.5, momentum=0.0))
    trainer = lk.make_trainer(
        max_epochs=1,
        accumulate_grad_batches=accumulate,
        default_root_dir=tmp_path / f"b{batch_size}",
        early_stopping=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match="no validation data"):
        trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 256 // (batch_size * accumulate)
    return _weights(module)


def test_accumulation_equals_the_large_batch(tmp_path):
    big = _one_epoch_sgd(tmp_path, batch_size=32, accumulate=1)
    accumulated = _one_epoch_sgd(tmp_path, batch_size=8, accumulate=4)
    plain = _one_epoch_sgd(tmp_path, batch_size=8, accumulate=1)
    torch.testing.assert_close(accumulated, big, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain, big, atol=1e-3)  # the comparison can tell them apart


# --- OOM retry ---------------------------------------------------------------------------------


class RunsOutOfMemory(nn.Module):
    """A net that raises CUDA's OOM error for batches larger than ``limit`` (from ``epoch``)."""

    def __init__(self, limit: int, from_epoch: int = 0, error: Exception | None = None) -> None:
        super().__init__()
        self.limit, self.from_epoch = limit, from_epoch
        self.error = error or torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB"
        )
        self.epoch = 0
        self.layer = nn.Linear(8, 3)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batch_sizes.append(x.shape[0])
            if x.shape[0] > self.limit and self.epoch >= self.from_epoch:
                raise self.error
        return self.layer(x)


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


# --- profiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profiler", ["simple", "pytorch"])
def test_profiler_writes_its_report_and_trace(tmp_path, capsys, profiler):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    trainer = lk.make_trainer(
        max_epochs=1, profiler=profiler, default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    folder = tmp_path / "version_0" / "profile"
    report = folder / "fit-report.txt"
    out = capsys.readouterr().out
    assert report.exists() and "Profiler Report" in report.read_text()
    assert f"lightkit: profiler report {report}" in out
    traces = sorted(folder.glob("*training_step*.pt.trace.json"))
    if profiler == "pytorch":
        assert traces, f"no Chrome trace of training steps in {list(folder.iterdir())}"
        events = json.loads(traces[0].read_text())["traceEvents"]
        assert any("training_step" in e.get("name", "") for e in events)
        assert f"lightkit: Chrome trace {traces[0]}" in out
    else:
        assert "training_step" in report.read_text()
        assert not traces


def test_no_profiler_by_default_and_no_profile_folder(tmp_path):
    from lightning.pytorch.profilers import PassThroughProfiler

    trainer = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    profiler = trainer.profiler
    assert isinstance(profiler, PassThroughProfiler)  # Lightning's "no profiler", cheaper
    with profiler.profile("a"), profiler.profile("nested"):  # reusable and re-entrant
        pass
    assert not (tmp_path / "version_0" / "profile").exists()


# --- determinism -------------------------------------------------------------------------------


class NoisyBlobs(Dataset):
    """Blobs with random noise drawn in ``__getitem__`` (like a random augmentation)."""

    def __init__(self) -> None:
        self.data = make_blobs(n=128)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        x, y = self.data[index]
        return x + 0.5 * torch.randn_like(x), y


def test_seed_gives_bit_identical_runs_with_worker_processes(tmp_path):
    weights = []
    for run in range(2):
        trainer = lk.make_trainer(
            max_epochs=2, seed=0, default_root_dir=tmp_path / str(run), logger=False,
            enable_progress_bar=False, enable_model_summary=False, deterministic=True,
        )  # fmt: skip
        dm = lk.data.DataModule(NoisyBlobs(), batch_size=16, num_workers=2)
        module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,), dropout=0.2), 3)
        trainer.fit(module, datamodule=dm)
        assert trainer.train_dataloader.num_workers == 2
        weights.append(_weights(module))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


# --- tuning ------------------------------------------------------------------------------------


def test_find_lr_suggests_a_rate_saves_the_plot_and_restores_the_weights(tmp_path, capsys):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    before = _weights(module).clone()
    lr = lk.find_lr(module, dm, default_root_dir=tmp_path, num_training=40, seed=0)
    assert 1e-6 <= lr <= 1.0
    plot = tmp_path / "version_0" / "lr_find.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert f"plot saved to {plot}" in capsys.readouterr().out
    torch.testing.assert_close(_weights(module), before, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"need 0 < min_lr < max_lr, got min_lr=1\.0, max_lr=0\.1"):
        lk.find_lr(module, dm, min_lr=1.0, max_lr=0.1, default_root_dir=tmp_path)


def test_find_batch_size_stops_before_running_out_of_memory(tmp_path):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=4, val_split=0.25)
    module = lk.ClassificationModule(RunsOutOfMemory(limit=40), 3)
    assert lk.find_batch_size(module, dm, default_root_dir=tmp_path) == 32
    assert dm.batch_size == 32
    # On memory to spare, the search stops below the training-set size (48 samples), at the
    # largest size it ran.
    dm = lk.data.TensorDataModule(*make_blobs(n=64).tensors, batch_size=16, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    assert lk.find_batch_size(module, dm, init_val=16, default_root_dir=tmp_path) == 32


# --- several processes (slow; CI runs them) ----------------------------------------------------


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


def test_ddp_spawn_is_a_spawning_ddp_strategy(tmp_path):
    # Runs like "ddp" (tested above with two processes), but starts its workers with spawn.
    from lightning.pytorch.strategies import DDPStrategy

    trainer = lk.make_trainer(default_root_dir=tmp_path, accelerator="cpu", devices=2,
                              strategy="ddp_spawn", logger=False)  # fmt: skip
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._start_method == "spawn" and trainer.world_size == 2


def test_tensor_dataset_is_sharded_not_fast_pathed_under_ddp():
    """Several processes need Lightning's distributed sampler, so no InMemoryLoader there."""

    class FakeTrainer:
        world_size = 2

    dm = lk.data.DataModule(TensorDataset(torch.randn(40, 3), torch.zeros(40)), val_split=0)
    dm.setup("fit")
    dm.trainer = FakeTrainer()  # type: ignore[assignment]
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)


def test_a_run_ending_before_its_first_validation_is_fine(tmp_path):
    data = make_blobs(n=256)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3)
    trainer = lk.make_trainer(max_steps=2, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2


def test_a_monitor_validation_never_logs_is_reported(tmp_path):
    data = make_blobs(n=128)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3)
    trainer = lk.make_trainer(max_epochs=2, monitor="val/accuracy", mode="max",
                              default_root_dir=tmp_path, logger=False, enable_progress_bar=False)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"monitor='val/accuracy' was not logged .* val/acc, val/f1"
    ):
        trainer.fit(module, datamodule=dm)


@pytest.mark.slow
def test_ddp_workers_share_rank_zeros_new_run_folder(tmp_path):
    script = Path(__file__).parent / "scripts" / "ddp_run_folder.py"
    (tmp_path / "runs" / "version_0").mkdir(parents=True)  # an earlier run
    _run([sys.executable, str(script), str(tmp_path)])
    reports = _reports(tmp_path, 2)
    assert {r["run_dir"] for r in reports} == {str(tmp_path / "runs" / "version_1")}
    assert {r["checkpoints"] for r in reports} == {
        str(tmp_path / "runs" / "version_1" / "checkpoints")
    }
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0", "version_1"]
