"""Seconds to reach 0.98 test accuracy on the digits quickstart: lightkit vs a plain PyTorch loop.

Both train the quickstart's ConvNet (same initial weights) with Adam (lr 3e-3) and batch 32 on
the DigitsDataModule splits, check test accuracy after every epoch, and stop at the first epoch
that reaches the target. Timing starts before the first batch (imports and data loading are
left out) and includes the per-epoch evaluation of both. Runs alternate; medians are reported::

    python benchmarks/time_to_accuracy.py                 # 3 rounds
    python benchmarks/time_to_accuracy.py --rounds 1 --max-epochs 2 --target 0.5   # tiny mode
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

import lightkit as lk


def accuracy(net: torch.nn.Module, loader) -> float:
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((net(x).argmax(1) == y).sum())
            total += len(y)
    net.train()
    return correct / total


def run_plain(net, dm, target: float, max_epochs: int) -> tuple[float, int]:
    loader = DataLoader(
        dm.train_dataset, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    test = DataLoader(dm.test_dataset, batch_size=256)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
        if accuracy(net, test) >= target:
            return time.perf_counter() - start, epoch
    return float("nan"), max_epochs


class _StopAtTarget(Callback):
    def __init__(self, test_loader, target: float) -> None:
        self.test_loader, self.target = test_loader, target
        self.start = self.seconds = float("nan")
        self.epochs = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs = trainer.current_epoch + 1
        if accuracy(pl_module.net, self.test_loader) >= self.target:
            self.seconds = time.perf_counter() - self.start
            trainer.should_stop = True


def run_lightkit(net, dm, target: float, max_epochs: int) -> tuple[float, int]:
    stop = _StopAtTarget(DataLoader(dm.test_dataset, batch_size=256), target)
    module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adam(lr=3e-3))
    with tempfile.TemporaryDirectory() as folder:
        trainer = lk.make_trainer(
            max_epochs=max_epochs, default_root_dir=folder, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[stop], num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(module, datamodule=dm)
    return stop.seconds, stop.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--max-epochs", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    dm = lk.data.DigitsDataModule(batch_size=32, seed=0)
    dm.setup("fit")
    torch.manual_seed(0)
    net = lk.models.ConvNet(1, 10, widths=(32, 64, 128), dropout=0.1)
    results: dict[str, list[tuple[float, int]]] = {"plain": [], "lightkit": []}
    for _ in range(args.rounds):
        torch.manual_seed(1)
        results["plain"].append(run_plain(copy.deepcopy(net), dm, args.target, args.max_epochs))
        torch.manual_seed(1)
        results["lightkit"].append(
            run_lightkit(copy.deepcopy(net), dm, args.target, args.max_epochs)
        )
    print(
        f"digits ConvNet, target test acc {args.target}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds}"
    )
    base = statistics.median(s for s, _ in results["plain"])
    for name, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        epochs = [e for _, e in runs]
        print(f"{name:<10}{seconds:>8.2f} s  epochs {epochs}  ratio {seconds / base:.2f}")


if __name__ == "__main__":
    main()
