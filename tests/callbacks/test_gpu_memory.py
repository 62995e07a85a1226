"""GPUMemoryMonitor: only on CUDA, advice on out-of-memory errors, peak memory per epoch."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import make_blobs, row_images


class OutOfMemory(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_gpu_memory_monitor_only_when_training_on_cuda(tmp_path, monkeypatch):
    def monitors(trainer):
        return [c for c in trainer.callbacks if isinstance(c, lk.callbacks.GPUMemoryMonitor)]

    cpu = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    assert monitors(cpu) == []  # on the CPU it would only cost hook calls
    monkeypatch.setattr("lightkit.trainer.presets.resolve_hardware", lambda accelerator: "cuda")
    gpu = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                          precision="32-true")  # fmt: skip
    assert len(monitors(gpu)) == 1


def test_oom_message_gets_advice(tmp_path):
    # make_trainer adds the monitor on CUDA only; a CUDA OOM error is simulated here on the CPU.
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, callbacks=[lk.callbacks.GPUMemoryMonitor()])  # fmt: skip
    module = lk.ClassificationModule(OutOfMemory(), 3)
    with pytest.raises(torch.cuda.OutOfMemoryError) as info:
        trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(n=32), batch_size=8))
    message = str(info.value)
    assert message.startswith("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert "lightkit: CUDA ran out of memory" in message
    for advice in ("lk.fit", "accumulate_grad_batches", "bf16-mixed", "gradient_checkpointing"):
        assert advice in message


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_gpu_memory_is_logged_per_epoch(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, accelerator="gpu", devices=1,
                              enable_progress_bar=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16))
    assert float(trainer.callback_metrics["gpu/peak_allocated_mb"]) > 0
    assert float(trainer.callback_metrics["gpu/peak_reserved_mb"]) >= float(
        trainer.callback_metrics["gpu/peak_allocated_mb"]
    )
