"""GPU check: what precision "auto" picks, and ResNet-18 training throughput against plain PyTorch.

Trains a torchvision ResNet-18 (10 classes, random init) on synthetic 3×64×64 images held on the
device, with SGD and cross-entropy, and measures images per second over timed steps after a
warm-up, in four variants:

    plain         a hand-written fp32 PyTorch loop (the reference)
    lightkit-32   lk.ClassificationModule + lk.make_trainer(precision="32-true")
    preset        lk.make_trainer(precision="auto") (bf16-mixed where the GPU has it) and
                  channels_last=True
    preset+compile  the preset with compile=True (torch.compile)

Each variant reports images/s, the ratio to plain and the peak allocated GPU memory::

    python benchmarks/gpu_check.py                  # on a GPU, about 2-4 minutes
    python benchmarks/gpu_check.py --tiny           # any machine, seconds (the test suite runs it)
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
import torchvision

import lightkit as lk
from lightkit._hardware import native_bf16, resolve_precision


class Timer(L.Callback):
    """Seconds spent on ``steps`` training steps after ``warmup`` steps (device synchronised)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.target = warmup, steps
        self.start: float | None = None
        self.steps = 0
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            _sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.steps += 1
            if self.steps == self.target:
                _sync()
                self.seconds = time.perf_counter() - self.start


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def _data(n: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x.to(device), y.to(device)


def plain(x, y, batch_size: int, steps: int, warmup: int, device: str) -> tuple[float, int]:
    net = _net().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    n = len(x)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            _sync()
            start = time.perf_counter()
        idx = torch.randint(0, n, (batch_size,), device=device)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync()
    return time.perf_counter() - start, steps


def lightkit(x, y, batch_size, steps, warmup, device, precision, channels_last, compile):
    dm = lk.data.TensorDataModule(
        x, y, val_split=0.0, batch_size=batch_size, device=device if device != "cpu" else None
    )
    module = lk.ClassificationModule(
        _net(),
        num_classes=10,
        optimizer=lk.optim.sgd(lr=0.01, momentum=0.9),
        channels_last=channels_last,
        compile=compile,
    )
    timer = Timer(warmup, steps)
    trainer = lk.make_trainer(
        max_steps=warmup + steps,
        max_epochs=-1,
        precision=precision,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        early_stopping=False,
        enable_checkpointing=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir="runs/gpu_check",
        callbacks=[timer],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    return timer.seconds, timer.steps, trainer.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few small steps (smoke test)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, n = 64, 8192
    if args.tiny:
        args.batch_size, args.steps, args.warmup, size, n = 8, 3, 1, 32, 64
    import warnings

    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, lightning {L.__version__}, device {device}", end="")
    if device == "cuda":
        print(f" ({torch.cuda.get_device_name()}, native bf16: {native_bf16()})")
    else:
        print()
    print(f'precision="auto" picks: {resolve_precision("auto", device)}')
    x, y = _data(n, size, device)
    variants = [
        ("plain", None),
        ("lightkit-32", ("32-true", False, False)),
        ("preset", ("auto", True, False)),
        ("preset+compile", ("auto", True, True)),
    ]
    if device == "cpu":
        variants = variants[:3]  # torch.compile on the CPU takes minutes to build ResNet kernels
    rows = []
    for name, options in variants:
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if options is None:
            seconds, steps = plain(x, y, args.batch_size, args.steps, args.warmup, device)
            precision = "32-true"
        else:
            seconds, steps, precision = lightkit(
                x, y, args.batch_size, args.steps, args.warmup, device, *options
            )
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
        rows.append((name, precision, steps * args.batch_size / seconds, peak))
    base = rows[0][2]
    print(f"\nResNet-18, 3×{size}×{size}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'variant':<16}{'precision':<12}{'images/s':>10}{'ratio':>8}{'peak MiB':>10}")
    for name, precision, rate, peak in rows:
        print(f"{name:<16}{precision:<12}{rate:>10.0f}{rate / base:>8.2f}{peak:>10.0f}")


if __name__ == "__main__":
    main()
