"""Samples per second: DataLoader(TensorDataset) versus lightkit's InMemoryLoader, same data.

Both iterate full shuffled epochs over the same in-memory tensors with batch size 128 and read
every batch; runs alternate (A B A B ...) after a warm-up and the median is reported. Two
workloads: tabular rows (32 float features: per-sample overhead dominates the DataLoader) and
3×32×32 images (12 KB per sample: copying the batch, which both loaders must do, takes a real
share of the time)::

    python benchmarks/data_loading.py                             # 100,000 rows / 50,000 images
    python benchmarks/data_loading.py --samples 2000 --pairs 1    # tiny mode
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightkit as lk


def epoch_seconds(loader) -> float:
    start = time.perf_counter()
    total = 0.0
    for x, y in loader:
        total += float(x.view(-1)[0]) + float(y[0])
    return time.perf_counter() - start


def run(name: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, pairs: int) -> float:
    plain = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    fast = lk.data.InMemoryLoader((x, y), batch_size=batch_size, shuffle=True, seed=0)
    epoch_seconds(plain), epoch_seconds(fast)  # warm-up
    times: dict[str, list[float]] = {"DataLoader(TensorDataset)": [], "lk.data.InMemoryLoader": []}
    for _ in range(pairs):
        times["DataLoader(TensorDataset)"].append(epoch_seconds(plain))
        times["lk.data.InMemoryLoader"].append(epoch_seconds(fast))
    print(f"\n{name}: {len(x)} samples of {tuple(x.shape[1:])} float32, batch {batch_size}")
    print(f"{'loader':<28}{'s/epoch':>10}{'samples/s':>14}")
    rates = {}
    for loader, values in times.items():
        seconds = statistics.median(values)
        rates[loader] = len(x) / seconds
        print(f"{loader:<28}{seconds:>10.3f}{rates[loader]:>14,.0f}")
    ratio = rates["lk.data.InMemoryLoader"] / rates["DataLoader(TensorDataset)"]
    print(f"speed-up InMemoryLoader / DataLoader: {ratio:.1f}x")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000, help="images; rows are twice this")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, shuffled epochs, "
        f"median of {args.pairs} alternating pairs"
    )
    n = args.samples
    run(
        "tabular",
        torch.randn(2 * n, 32),
        torch.randint(0, 10, (2 * n,)),
        args.batch_size,
        args.pairs,
    )
    run(
        "images", torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,)), args.batch_size, args.pairs
    )


if __name__ == "__main__":
    main()
