"""Parity: seconds per epoch of lightkit's defaults against a hand-written PyTorch loop.

Three variants train the same net from the same initial weights, on the same data in the same
order, with Adam (lr 1e-3) and the same number of steps, and validate and save a checkpoint
every epoch:

    (a) plain:     a PyTorch loop over DataLoader(TensorDataset), torch.save each epoch
    (b) lightning: a bare LightningModule (self.log of train/loss every step, val/loss per epoch)
                   with a default Trainer (logger, checkpoint), progress bar off
    (c) lightkit:  lk.ClassificationModule + lk.data.DataModule + lk.make_trainer defaults
                   (TensorBoard logger, acc/F1 metrics, figures, best+last checkpoints, early
                   stopping, LR and gradient-norm monitors, NaN guard), progress bar off;
                   Adam through lk.optim.adam, which picks PyTorch's fused kernel

This machine's speed drifts by tens of percent within a minute, so (b) and (c) are timed against
(a) in the same process, epoch by epoch: at the start of each of their epochs, one epoch of the
plain loop (its own copy of the net, optimizer and DataLoader) runs and is timed; the pair's ratio
is framework epoch / plain epoch. Reported: the median of those paired ratios over all epochs
after the first (the warm-up) of all rounds, with their quartiles; median seconds per epoch; the
final validation loss of each variant (the plain loop's and lightkit's agree to 5 decimals: same
data order, same arithmetic up to float rounding); and the peak resident memory of each process
((a) also runs alone, for its memory and its loss). Rounds alternate a b c a b c ...::

    python benchmarks/parity.py                          # 3 rounds, 6 epochs per run
    python benchmarks/parity.py --pairs 1 --epochs 2 --samples 2000   # tiny mode
    python benchmarks/parity.py --workloads mlp --ema 0.999   # lightkit with make_trainer(ema=)
    python benchmarks/parity.py --workloads mlp --swa 2       # lightkit with make_trainer(swa=)
    python benchmarks/parity.py --workloads mlp --oom-retry   # lightkit with lk.fit's OOM guard
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


class PlainLoop:
    """The hand-written loop, one epoch per call: train, validate, save a checkpoint."""

    def __init__(self, net: nn.Module, train: TensorDataset, val: TensorDataset, folder: str):
        self.net, self.folder = net, folder
        self.loader = DataLoader(
            train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED)
        )
        self.val_loader = DataLoader(val, batch_size=BATCH)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        self.val_loss = float("nan")

    def epoch(self, epoch: int) -> float:
        net, optimizer = self.net, self.optimizer
        net.train()
        # zip with range: stop after the last batch without asking the loader for one more, as
        # Lightning does; exhausting the sampler would draw once more from the shuffle generator
        # and the next epoch's order would then differ from the Lightning variants'.
        for _, (x, y) in zip(range(len(self.loader)), self.loader, strict=False):
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()
        net.eval()
        total, count = torch.zeros(()), 0
        with torch.no_grad():
            for x, y in self.val_loader:
                total += F.cross_entropy(net(x), y) * len(y)
                count += len(y)
        self.val_loss = float(total / count)
        torch.save(
            {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
            f"{self.folder}/last.pt",
        )
        return self.val_loss


def run_plain(net, train, val, epochs, folder) -> tuple[list[float], float]:
    loop = PlainLoop(net, train, val, folder)
    stamps = []
    for epoch in range(epochs):
        stamps.append(time.perf_counter())
        loop.epoch(epoch)
    stamps.append(time.perf_counter())
    return stamps, loop.val_loss


def run_lightning(net, train, val, epochs, folder, stamps) -> float:
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

    trainer = L.Trainer(
        max_epochs=epochs, default_root_dir=folder, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[stamps], num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(
        train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED)
    )
    trainer.fit(Bare(), loader, DataLoader(val, batch_size=BATCH))
    return float(trainer.callback_metrics["val/loss"])


EMA: float | None = None  # --ema: lightkit's run keeps an exponential moving average
SWA: int | None = None  # --swa: lightkit's run averages each epoch from this one on
OOM_RETRY = False  # --oom-retry: lightkit's run has lk.fit's out-of-memory guard


def run_lightkit(net, train, val, epochs, folder, stamps) -> float:
    import lightkit as lk

    module = lk.ClassificationModule(net, num_classes=10, optimizer=lk.optim.adam(lr=1e-3))
    datamodule = lk.data.DataModule(train, val=val, batch_size=BATCH, seed=SEED)
    trainer = lk.make_trainer(
        max_epochs=epochs, default_root_dir=folder, enable_progress_bar=False,
        callbacks=[stamps], num_sanity_val_steps=0, ema=EMA, swa=SWA, oom_retry=OOM_RETRY,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return float(trainer.callback_metrics["val/loss"])


def _interleaved_class():
    from lightning.pytorch.callbacks import Callback

    class Interleaved(Callback):
        """Times the framework's epochs, and runs (and times) one plain epoch before each."""

        def __init__(self, plain: PlainLoop) -> None:
            self.plain = plain
            self.framework: list[float] = []
            self.paired_plain: list[float] = []
            self._mark: float | None = None

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if self._mark is not None:
                self.framework.append(time.perf_counter() - self._mark)
            with torch.inference_mode(False), torch.enable_grad():
                start = time.perf_counter()
                self.plain.epoch(trainer.current_epoch)
                self.paired_plain.append(time.perf_counter() - start)
            self._mark = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:
            self.framework.append(time.perf_counter() - self._mark)

    return Interleaved


def child(variant: str, workload: str, epochs: int, samples: int) -> dict:
    warnings.filterwarnings("ignore")
    net, train, val = make_workload(workload, samples)
    with tempfile.TemporaryDirectory() as folder:
        if variant == "plain":
            stamps, val_loss = run_plain(copy.deepcopy(net), train, val, epochs, folder)
            times = [b - a for a, b in itertools.pairwise(stamps)]
            result = {"epoch_s": times, "val_loss": val_loss}
        else:
            plain = PlainLoop(copy.deepcopy(net), train, val, folder)
            timer = _interleaved_class()(plain)
            runner = {"lightning": run_lightning, "lightkit": run_lightkit}[variant]
            val_loss = runner(copy.deepcopy(net), train, val, epochs, folder, timer)
            result = {
                "epoch_s": timer.framework,
                "plain_s": timer.paired_plain,
                "val_loss": val_loss,
                "plain_val_loss": plain.val_loss,
            }
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _after_warmup(values: list[float]) -> list[float]:
    return values[1:] or values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="rounds of a b c")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--ema", type=float, default=None, help="lightkit with make_trainer(ema=)")
    parser.add_argument("--swa", type=int, default=None, help="lightkit with make_trainer(swa=)")
    parser.add_argument("--oom-retry", action="store_true", help="lightkit with oom_retry=True")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global EMA, SWA, OOM_RETRY
    EMA, SWA, OOM_RETRY = args.ema, args.swa, args.oom_retry
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
                     "--epochs", str(args.epochs), "--samples", str(args.samples),
                     *(["--ema", str(args.ema)] if args.ema is not None else []),
                     *(["--swa", str(args.swa)] if args.swa is not None else []),
                     *(["--oom-retry"] if args.oom_retry else [])],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"\n{workload}")
        print(
            f"{'variant':<11}{'s/epoch':>9}{'plain s/epoch':>15}{'ratio':>8}{'quartiles':>13}"
            f"{'val loss':>11}{'peak MiB':>10}"
        )
        for variant, runs in results.items():
            seconds = statistics.median(t for r in runs for t in _after_warmup(r["epoch_s"]))
            peak = max(r["peak_mib"] for r in runs)
            loss = runs[-1]["val_loss"]
            if variant == "plain":
                print(
                    f"{variant:<11}{seconds:>9.3f}{'':>15}{1:>8.2f}{'':>13}{loss:>11.5f}{peak:>10.0f}"
                )
                continue
            ratios = [
                f / p
                for r in runs
                for f, p in zip(
                    _after_warmup(r["epoch_s"]), _after_warmup(r["plain_s"]), strict=True
                )
            ]
            paired = statistics.median(t for r in runs for t in _after_warmup(r["plain_s"]))
            low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            print(
                f"{variant:<11}{seconds:>9.3f}{paired:>15.3f}{statistics.median(ratios):>8.2f}"
                f"{f'{low:.2f}-{high:.2f}':>13}{loss:>11.5f}{peak:>10.0f}"
            )
        same = all(
            f"{r['plain_val_loss']:.5f}" == f"{r['val_loss']:.5f}" for r in results["lightkit"]
        )
        if EMA is None:  # with EMA, lightkit validates the averaged weights: another loss
            print(
                f"check: final val loss of plain and lightkit equal to 5 decimals: "
                f"{'yes' if same else 'NO'}"
            )


if __name__ == "__main__":
    main()
