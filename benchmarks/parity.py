"""Parity: seconds per epoch of lightkit's defaults against a hand-written PyTorch loop.

Three variants train the same net from the same initial weights, on the same data in the same
order, with the same optimizer (Adam, lr 1e-3) and number of steps, and validate and save a
checkpoint every epoch:

    (a) plain:     a PyTorch loop over DataLoader(TensorDataset), torch.save each epoch
    (b) lightning: a bare LightningModule (self.log of train/loss every step, val/loss per epoch)
                   with a default Trainer (logger, checkpoint), progress bar off
    (c) lightkit:  lk.ClassificationModule + lk.make_trainer defaults (TensorBoard logger,
                   metrics, best+last checkpoints, early stopping, LR monitor), progress bar off

Each run is a fresh process; runs alternate a b c a b c ... Reported: median seconds per epoch
(epochs after the first), the ratio to (a), the final validation loss (equal between (a) and (c)
to 5 decimals: same data order, same arithmetic) and the peak resident memory. Two workloads: an
MLP on tabular data and a small CNN on 1×28×28 images::

    python benchmarks/parity.py                          # 3 pairs, 4 epochs per run
    python benchmarks/parity.py --pairs 1 --epochs 2 --samples 2000   # tiny mode
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

VARIANTS = ("plain", "lightning", "lightkit")
BATCH = 100
SEED = 0


def make_workload(name: str, samples: int) -> tuple[nn.Module, TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(SEED)
    if name == "mlp":
        centers = torch.randn(10, 64, generator=g) * 1.5
        y = torch.randint(0, 10, (samples,), generator=g)
        x = centers[y] + torch.randn(samples, 64, generator=g) * 2
        torch.manual_seed(SEED)
        net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
    else:
        templates = torch.randn(10, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (samples,), generator=g)
        x = templates[y] + torch.randn(samples, 1, 28, 28, generator=g) * 2
        torch.manual_seed(SEED)
        net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
        )  # fmt: skip
    n_val = samples // 5
    return net, TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val])


def run_plain(net, train, val, epochs, folder) -> tuple[list[float], float]:
    loader = DataLoader(
        train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED)
    )
    val_loader = DataLoader(val, batch_size=BATCH)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    stamps, val_loss = [], float("nan")
    for epoch in range(epochs):
        stamps.append(time.perf_counter())
        net.train()
        # zip with range: stop after the last batch without asking the loader for one more, as
        # Lightning does; exhausting the sampler would draw once more from the shuffle generator
        # and the next epoch's order would then differ from the Lightning variants'.
        for _, (x, y) in zip(range(len(loader)), loader, strict=False):
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()
        net.eval()
        total, count = torch.zeros(()), 0
        with torch.no_grad():
            for x, y in val_loader:
                total += F.cross_entropy(net(x), y) * len(y)
                count += len(y)
        val_loss = float(total / count)
        torch.save(
            {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
            f"{folder}/last.pt",
        )
    stamps.append(time.perf_counter())
    return stamps, val_loss


def run_lightning(net, train, val, epochs, folder) -> tuple[list[float], float]:
    import lightning as L

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val/loss", F.cross_entropy(self.net(x), y), batch_size=len(y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    stamps = _Stamps()
    trainer = L.Trainer(
        max_epochs=epochs, default_root_dir=folder, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[stamps], num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(
        train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED)
    )
    trainer.fit(Bare(), loader, DataLoader(val, batch_size=BATCH))
    return stamps.times, float(trainer.callback_metrics["val/loss"])


def run_lightkit(net, train, val, epochs, folder) -> tuple[list[float], float]:
    import lightkit as lk

    stamps = _Stamps()
    module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adam(lr=1e-3))
    datamodule = lk.data.DataModule(train, val=val, batch_size=BATCH, seed=SEED)
    trainer = lk.make_trainer(
        max_epochs=epochs, default_root_dir=folder, enable_progress_bar=False,
        callbacks=[stamps], num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return stamps.times, float(trainer.callback_metrics["val/loss"])


def _stamps_class():
    from lightning.pytorch.callbacks import Callback

    class Stamps(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter())

        def on_fit_end(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter())

    return Stamps


def _Stamps():  # a factory, so that the plain variant never imports Lightning
    return _stamps_class()()


def child(variant: str, workload: str, epochs: int, samples: int) -> dict:
    warnings.filterwarnings("ignore")
    net, train, val = make_workload(workload, samples)
    runner = {"plain": run_plain, "lightning": run_lightning, "lightkit": run_lightkit}[variant]
    with tempfile.TemporaryDirectory() as folder:
        stamps, val_loss = runner(copy.deepcopy(net), train, val, epochs, folder)
    epoch_times = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "epoch_s": statistics.median(epoch_times[1:] or epoch_times),
        "val_loss": val_loss,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.epochs, args.samples)))
        return

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.samples} samples "
        f"(20% validation), batch {BATCH}, {args.epochs} epochs per run, {args.pairs} rounds"
    )
    for workload in args.workloads.split(","):
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(args.pairs):
            for variant in VARIANTS:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", variant, workload,
                     "--epochs", str(args.epochs), "--samples", str(args.samples)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
        base = statistics.median(r["epoch_s"] for r in results["plain"])
        print(f"\n{workload}")
        print(
            f"{'variant':<11}{'s/epoch':>9}{'ratio':>8}{'range':>15}{'val loss':>11}{'peak MiB':>10}"
        )
        for variant, runs in results.items():
            times = [r["epoch_s"] for r in runs]
            median = statistics.median(times)
            spread = f"{min(times) / base:.2f}-{max(times) / base:.2f}"
            print(
                f"{variant:<11}{median:>9.3f}{median / base:>8.2f}{spread:>15}"
                f"{runs[-1]['val_loss']:>11.5f}{max(r['peak_mib'] for r in runs):>10.0f}"
            )


if __name__ == "__main__":
    main()
