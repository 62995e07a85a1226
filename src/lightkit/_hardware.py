"""What a run trains on: the accelerator, the precision ``"auto"`` resolves to, strategy and device checks."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

PRECISIONS = (
    "auto",
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
)
_PRECISION_ALIASES = ("32", "16", "bf16", "64", 32, 16, 64)


def resolve_hardware(accelerator: Any) -> str:
    """What the run will train on: ``"cuda"``, ``"cpu"``, ``"mps"`` or another accelerator name."""
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    return accelerator if isinstance(accelerator, str) else type(accelerator).__name__


def resolve_precision(precision: str | int, hardware: str) -> str | int:
    if precision not in PRECISIONS and precision not in _PRECISION_ALIASES:
        raise ValueError(
            f"make_trainer: unknown precision {precision!r}; expected one of "
            + ", ".join(repr(p) for p in PRECISIONS)
        )
    if precision == "auto":
        if hardware != "cuda":
            return "32-true"
        return "bf16-mixed" if native_bf16() else "16-mixed"
    name = str(precision)
    if hardware == "cpu" and name in ("16", "16-mixed"):
        raise ValueError(
            f"make_trainer: precision={precision!r} (fp16 mixed precision) needs a GPU; on the CPU "
            "use '32-true', or 'bf16-mixed' where the CPU has fast bf16 (precision='auto' picks "
            "for you)"
        )
    if hardware == "cuda" and name.startswith("bf16") and not native_bf16():
        device = torch.cuda.get_device_name()
        major, minor = torch.cuda.get_device_capability()
        raise ValueError(
            f"make_trainer: precision={precision!r} needs a GPU with native bf16 (compute "
            f"capability 8.0 or newer); {device} has {major}.{minor}. Use '16-mixed' (with "
            "loss scaling) or precision='auto'"
        )
    if (
        name.startswith("transformer-engine")
        and importlib.util.find_spec("transformer_engine") is None
    ):
        raise ValueError(
            f"make_trainer: precision={precision!r} needs NVIDIA's transformer_engine package, "
            "which is not installed; use 'bf16-mixed' or precision='auto'"
        )
    return precision


# Strategy names lightkit documents; any other name in Lightning's registry works too.
STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")


def check_strategy(strategy: Any) -> None:
    # Imported here: this module serves `lightkit doctor`, which must not wait for Lightning.
    from lightning.pytorch.strategies import Strategy, StrategyRegistry

    if not isinstance(strategy, str):
        if isinstance(strategy, Strategy):
            return
        raise TypeError(
            f"make_trainer: strategy must be a name or a lightning Strategy, got {strategy!r}"
        )
    if strategy == "auto" or strategy in StrategyRegistry.available_strategies():
        return
    if strategy in ("dp", "ddp2", "data_parallel"):
        raise ValueError(
            f"make_trainer: strategy={strategy!r}: Lightning 2 has no DataParallel; use 'ddp' "
            "(one process per GPU, faster and what PyTorch recommends)"
        )
    others = sorted(set(StrategyRegistry.available_strategies()) - set(STRATEGIES))
    raise ValueError(
        f"make_trainer: unknown strategy {strategy!r}; expected one of "
        + ", ".join(repr(s) for s in STRATEGIES)
        + " (or another Lightning strategy: "
        + ", ".join(others)
        + ")"
    )


def check_devices(devices: Any, hardware: str) -> None:
    if devices == "auto" or devices == -1 or devices == "-1":
        return
    if hardware == "cuda":
        available = torch.cuda.device_count()
        what = f"this machine has {available} CUDA GPU(s)"
    elif hardware == "cpu":
        available = os.cpu_count() or 1
        what = f"this machine has {available} CPU core(s), one process per device"
    else:
        return  # Lightning checks other accelerators itself
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1:
            raise ValueError(
                f"make_trainer: devices must be 'auto', -1, a positive count or a list of "
                f"indices, got {devices!r}"
            )
        if devices > available:
            raise ValueError(
                f"make_trainer: devices={devices} but {what}; use at most {available}, or "
                "devices='auto'"
            )
    elif isinstance(devices, (list, tuple)) and hardware == "cuda":
        bad = [d for d in devices if not isinstance(d, int) or not 0 <= d < available]
        if bad:
            raise ValueError(
                f"make_trainer: devices={list(devices)} names GPU(s) {bad}, but {what} "
                f"(indices 0..{available - 1})"
            )


def native_bf16() -> bool:
    """Whether the current CUDA GPU runs bf16 natively (Ampere and newer), not by emulation.

    Example:
        >>> precision = "bf16-mixed" if lk.trainer.native_bf16() else "16-mixed"  # for a GPU
        >>> trainer = lk.make_trainer(precision=precision if torch.cuda.is_available() else "32")
    """
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the argument
        return torch.cuda.get_device_capability()[0] >= 8
