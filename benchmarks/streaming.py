"""Streaming data: read throughput against image folders, and training under a memory limit.

    python benchmarks/streaming.py throughput [--images 2000] [--size 160] [--workers 0]
    python benchmarks/streaming.py memory [--limit-mb 1536] [--factor 4]

``throughput`` writes ``--images`` JPEG files in 10 class folders, then reads training epochs
(batch 64, no model) from plain torchvision (``ImageFolder`` + ``DataLoader``, decoding every file
every epoch), lightkit's ``ImageFolderDataModule`` (the same decoding) and ``StreamingDataModule``
over the shards ``write_streaming`` made from the same folder (decoded once, when written), with
two transforms: decoding to a float tensor only, and a resize to 64×64 plus normalization (the
``eval_preset``). It prints the median samples/s of ``--epochs`` epochs, the ratios to plain
PyTorch and the one-off cost of writing the shards.

``memory`` writes a data set of random 3×256×256 images at least ``--factor`` times
``--limit-mb`` on disk, then trains one epoch of a small net on it in a child process whose
data memory (``RLIMIT_DATA``: heap and private mappings, what loading the data would need) is
capped at ``--limit-mb`` in all, torch and Lightning included. It prints the data size, the limit,
the child's peak resident memory and the samples trained, and shows that the cap is real: the
same child fails to hold a copy of only a quarter of the data in memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _epoch_rate(loader) -> float:
    start, count = time.perf_counter(), 0
    for x, _ in loader:
        count += len(x)
    return count / (time.perf_counter() - start)


def throughput(args: argparse.Namespace) -> None:
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    import lightkit as lk

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="lightkit-bench-"))
    try:
        folder = work / "images"
        fake = torchvision.datasets.FakeData(
            args.images, (3, args.size, args.size), num_classes=10, random_offset=0
        )
        for i in range(args.images):
            image, label = fake[i]
            (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
            image.save(folder / f"class{label}" / f"{i}.jpg", quality=90)
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 2**20
        import litdata  # noqa: F401  (imported before the clock starts, as lightkit.data is)

        import lightkit.data

        start = time.perf_counter()
        shards = lk.data.write_streaming(folder, work / "shards", chunk_bytes="16MB")
        written = time.perf_counter() - start
        shard_mb = sum(p.stat().st_size for p in Path(shards).rglob("*") if p.is_file()) / 2**20
        print(
            f"{args.images} JPEGs {args.size}x{args.size} ({size_mb:.0f} MiB); write_streaming took "
            f"{written:.1f} s ({args.images / written:.0f} images/s), {shard_mb:.0f} MiB of shards"
        )
        preset = lk.data.transforms.eval_preset(64, (0.5,) * 3, (0.5,) * 3)
        to_tensor = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])
        print("| workers | transform | loader | samples/s | ratio to plain |")
        print("|---:|---|---|---:|---:|")
        for workers in args.workers:
            for label, transform in (("decode only", to_tensor), ("resize 64 + normalize", preset)):
                plain = DataLoader(
                    torchvision.datasets.ImageFolder(folder, transform=transform),
                    batch_size=64, shuffle=True, num_workers=workers,
                    persistent_workers=workers > 0,
                )  # fmt: skip
                loaders = {"plain torchvision ImageFolder + DataLoader": plain}
                if transform is preset:  # its transform is this preset, built in
                    folder_dm = lk.data.ImageFolderDataModule(
                        folder, image_size=64, val_split=0.0, augment=False, batch_size=64,
                        num_workers=workers, mean=(0.5,) * 3, std=(0.5,) * 3,
                    )  # fmt: skip
                    folder_dm.setup("fit")
                    loaders["lk ImageFolderDataModule"] = folder_dm.train_dataloader()
                stream_dm = lk.data.StreamingDataModule(
                    shards, batch_size=64, num_workers=workers,
                    train_transform=None if transform is to_tensor else transform,  # (the same)
                )  # fmt: skip
                loaders["lk StreamingDataModule"] = stream_dm.train_dataloader()
                rates: dict[str, list[float]] = {name: [] for name in loaders}
                for _ in range(args.epochs):  # alternate, so that drift hits all alike
                    for name, loader in loaders.items():
                        rates[name].append(_epoch_rate(loader))
                best = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}  # median
                base = best["plain torchvision ImageFolder + DataLoader"]
                for name, rate in best.items():
                    print(f"| {workers} | {label} | {name} | {rate:,.0f} | {rate / base:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


SHAPE = (3, 256, 256)


class _RandomImages(torch.utils.data.Dataset):
    """Random uint8 images made on demand: writing them never holds the data set in memory."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        pixels = np.random.default_rng(i).integers(0, 256, SHAPE, dtype=np.uint8)
        return torch.from_numpy(pixels), i % 10


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255)


def _child(shards: str, limit_mb: int, data_mb: float) -> None:
    """Train one epoch with data memory capped at ``limit_mb`` in all."""
    import lightkit as lk

    limit = limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    torch.set_num_threads(2)
    try:  # the cap is real: a copy of a quarter of the data set does not fit
        torch.empty(int(data_mb * 2**20 / 4), dtype=torch.uint8).fill_(1)
        print("control: a quarter of the data set fitted in memory (the cap is not effective)")
    except (MemoryError, RuntimeError) as err:
        print(f"control: holding a quarter of the data set in memory fails: {type(err).__name__}")
    dm = lk.data.StreamingDataModule(shards, batch_size=64, train_transform=_to_float)
    net = torch.nn.Sequential(  # small, so that the epoch measures the data path
        torch.nn.AvgPool2d(16), torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10)
    )
    module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adamw(lr=1e-3))
    trainer = lk.make_trainer(
        max_epochs=1, logger=False, enable_checkpointing=True, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=os.path.join(os.path.dirname(shards), "runs"),
        limit_val_batches=0,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples = dm.num_samples("train")  # one epoch: every sample once
    print(
        f"trained {trainer.global_step} steps ({samples:,} samples) in {took:.0f} s; peak resident "
        f"memory {peak:.0f} MiB (shared file pages included); data memory capped at {limit_mb} MiB"
    )


def memory(args: argparse.Namespace) -> None:
    import lightkit as lk

    per_sample = int(np.prod(SHAPE))
    n = int(args.factor * args.limit_mb * 2**20 / per_sample) + 1
    work = Path(tempfile.mkdtemp(prefix="lightkit-bench-"))
    try:
        import litdata  # noqa: F401  (imported before the clock starts, as lightkit.data is)

        import lightkit.data

        start = time.perf_counter()
        shards = lk.data.write_streaming(_RandomImages(n), work / "shards", chunk_bytes="64MB")
        data_mb = sum(p.stat().st_size for p in Path(shards).rglob("*") if p.is_file()) / 2**20
        print(
            f"wrote {n:,} images of {'x'.join(map(str, SHAPE))} uint8: {data_mb:,.0f} MiB of shards in "
            f"{time.perf_counter() - start:.0f} s = {data_mb / args.limit_mb:.1f}x the "
            f"{args.limit_mb} MiB data-memory cap"
        )
        done = subprocess.run(
            [sys.executable, __file__, "_child", shards, str(args.limit_mb), str(data_mb)],
            capture_output=True, text=True,
        )  # fmt: skip
        print(done.stdout.strip())
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit(done.returncode)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        _child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--images", type=int, default=2000)
    t.add_argument("--size", type=int, default=160)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--workers", type=int, nargs="+", default=[0])
    m = sub.add_parser("memory")
    m.add_argument("--limit-mb", type=int, default=1536)
    m.add_argument("--factor", type=float, default=4.0)
    args = parser.parse_args()
    {"throughput": throughput, "memory": memory}[args.command](args)


if __name__ == "__main__":
    main()
