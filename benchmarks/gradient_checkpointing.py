"""Peak activation memory and step time of a UNet with and without gradient checkpointing.

Each variant runs in a fresh subprocess. On CUDA the peak is ``torch.cuda.max_memory_allocated``
during one training step minus what was allocated before it; on the CPU it is the growth of the
process's peak resident memory (``ru_maxrss``) over the first full-batch step, after a one-sample
warm-up. Parameters and gradients are
the same in both variants, so the difference is activation memory. Step time is the median of a
few forward+backward passes after a warm-up, so the ratio shows what the recomputation costs::

    python benchmarks/gradient_checkpointing.py                   # UNet(3, 3, base=16, depth=3), 32×3×128×128
    python benchmarks/gradient_checkpointing.py --batch 8 --size 64 --repeats 2   # tiny mode
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import lightkit as lk


def measure(checkpointing: bool, batch: int, size: int, repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    module = lk.SegmentationModule(
        lk.models.UNet(3, 3, base=16, depth=3), 3, gradient_checkpointing=checkpointing
    ).to(device)
    module.train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 3, (batch, size, size), device=device)

    def step(n: int = batch) -> None:
        module.zero_grad(set_to_none=False)
        module.compute_loss(module(x[:n]), y[:n]).backward()

    # Warm-up on one sample: allocates the gradients (so they are not counted below) while keeping
    # the CPU's high-water mark of resident memory well under the full step's.
    step(1)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"peak_bytes": peak, "step_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", choices=["plain", "checkpointed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(
            args.child == "checkpointed", args.batch, args.size, args.repeats, args.device
        )
        print(json.dumps(result))
        return

    results = {}
    for variant in ("plain", "checkpointed"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                variant,
                "--batch",
                str(args.batch),
                "--size",
                str(args.size),
                "--repeats",
                str(args.repeats),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    plain, ckpt = results["plain"], results["checkpointed"]
    print(
        f"UNet(3, 3, base=16, depth=3), input {args.batch}×3×{args.size}×{args.size}, "
        f"device {args.device}, torch {torch.__version__}"
    )
    print(f"{'variant':<14}{'peak step memory (MiB)':>24}{'step time (s)':>16}")
    for name, r in results.items():
        print(f"{name:<14}{r['peak_bytes'] / 2**20:>24.1f}{r['step_s']:>16.3f}")
    print(
        f"memory ratio checkpointed/plain: {ckpt['peak_bytes'] / max(plain['peak_bytes'], 1):.2f}"
    )
    print(f"time ratio   checkpointed/plain: {ckpt['step_s'] / plain['step_s']:.2f}")


if __name__ == "__main__":
    main()
