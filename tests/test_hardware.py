"""Hardware: GPU counts, precision choices, strategies and gradient clipping."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk
from lightkit._hardware import resolve_precision as _resolve_precision


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


def test_ddp_spawn_is_a_spawning_ddp_strategy(tmp_path):
    # Runs like "ddp" (tested with two processes in integration/test_distributed.py), but starts
    # its workers with spawn.
    from lightning.pytorch.strategies import DDPStrategy

    trainer = lk.make_trainer(default_root_dir=tmp_path, accelerator="cpu", devices=2,
                              strategy="ddp_spawn", logger=False)  # fmt: skip
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._start_method == "spawn" and trainer.world_size == 2
