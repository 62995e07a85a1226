"""A small streaming run for the fault-tolerance and DDP tests of lk.data.StreamingDataModule.

    python streaming_training.py DATA ROOT OUT [--resume] [--delay S] [--devices N] [--ids]

DATA is a folder that ``lk.data.write_streaming(dataset(), DATA, val_split=0.25)`` wrote. Writes
ROOT/progress (the last finished global step) as it trains, so that a test can SIGKILL it at a
chosen step, the final weights to OUT, and with --ids each rank's training sample ids per epoch
to ROOT/ids-rank<r>.txt (one line per epoch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import TensorDataset

import lightkit as lk


def dataset(n: int = 512) -> TensorDataset:
    """Inputs whose first feature is the sample's id, so a test can count who saw what."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    return TensorDataset(x, y)


class Progress(Callback):
    def __init__(self, root: Path, delay: float, ids: bool) -> None:
        self.root, self.delay, self.ids, self.seen = root, delay, ids, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += batch[0][:, 0].long().tolist()
        time.sleep(self.delay)  # room for the test to kill the run at a chosen step
        if trainer.is_global_zero:
            (self.root / "progress").write_text(f"step {trainer.global_step}")

    def on_train_epoch_end(self, trainer, pl_module):
        if self.ids:
            with open(self.root / f"ids-rank{trainer.global_rank}.txt", "a") as f:
                f.write(" ".join(map(str, self.seen)) + "\n")
        self.seen = []


class Scaled(torch.nn.Module):
    """The id feature is large: scale it down so that training stays finite."""

    def __init__(self) -> None:
        super().__init__()
        self.net = lk.models.MLP(8, 3, hidden=(32,), dropout=0.3)  # dropout: RNG state matters

    def forward(self, x):
        return self.net(x * torch.tensor([1e-3] + [1.0] * 7))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--ids", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    datamodule = lk.data.StreamingDataModule(args.data, batch_size=32, seed=0)
    lightning.seed_everything(1, verbose=False)
    module = lk.ClassificationModule(
        Scaled(),
        num_classes=3,
        optimizer=lk.optim.adamw(lr=3e-3),
        scheduler=lk.optim.warmup_cosine(warmup=0.2),  # stepped per batch: its state matters
    )
    ddp = (
        {"strategy": "ddp", "accelerator": "cpu", "devices": args.devices}
        if args.devices > 1
        else {}
    )
    trainer = lk.fit(
        module,
        datamodule,
        resume=args.resume,
        max_epochs=args.epochs,
        seed=0,
        checkpoint_every_n_steps=2,
        default_root_dir=root / "runs",
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        callbacks=[Progress(root, args.delay, args.ids)],
        **ddp,
    )
    if trainer.is_global_zero:
        torch.save(dict(module.state_dict()), args.out)
        print(f"done at step {trainer.global_step}")


if __name__ == "__main__":
    main()
