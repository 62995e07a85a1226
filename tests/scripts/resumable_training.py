"""A small training run for the fault-tolerance tests: killed, resumed, compared bit for bit.

    python resumable_training.py ROOT OUT [--resume] [--pause-at POINT] [--slow-save-at N]
        [--ema D | --swa E]

Writes ROOT/progress (the last finished global step, or "epoch-end E") as it trains, and the
final weights to OUT. With ``--pause-at "step N"`` or ``--pause-at "epoch-end E"`` it stops
before the first training batch after that point and waits there for the test's SIGKILL, so the
kill lands at the chosen moment however busy the machine is.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import TensorDataset

import lightkit as lk


class Progress(Callback):
    def __init__(self, path: Path, delay: float, pause_at: str | None) -> None:
        self.path, self.delay, self.pause_at = path, delay, pause_at
        self.text = ""

    def _reached(self) -> bool:
        if not self.pause_at or not self.text:
            return False
        if self.pause_at.startswith("epoch-end"):
            return self.text == self.pause_at
        kind, number = self.text.split()
        return kind == "step" and int(number) >= int(self.pause_at.split()[1])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._reached():
            time.sleep(600)  # the test SIGKILLs the run here

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.delay)
        self.text = f"step {trainer.global_step}"
        self.path.write_text(self.text)

    def on_train_epoch_end(self, trainer, pl_module):
        self.text = f"epoch-end {trainer.current_epoch}"
        self.path.write_text(self.text)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0, help="sleep after each batch")
    parser.add_argument("--pause-at", default=None, help='"step N" or "epoch-end E"')
    parser.add_argument("--dataloader", action="store_true", help="per-sample DataLoader path")
    parser.add_argument("--ema", type=float, default=None, help="make_trainer(ema=...)")
    parser.add_argument("--swa", type=int, default=None, help="make_trainer(swa=...)")
    parser.add_argument("--slow-save-at", type=int, default=0, help="hang inside the Nth save")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)

    if args.slow_save_at:
        original, calls = torch.save, [0]

        def slow_save(obj, f, *a, **k):
            calls[0] += 1
            if calls[0] != args.slow_save_at:
                return original(obj, f, *a, **k)
            buffer = io.BytesIO()
            original(obj, buffer, *a, **k)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])  # half written, then the test kills us
            f.flush()
            (root / "saving").write_text("saving")
            time.sleep(60)
            return None

        torch.save = slow_save

    g = torch.Generator().manual_seed(0)
    x = torch.randn(480, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    extra = {"train_transform": _identity, "num_workers": 0} if args.dataloader else {}
    datamodule = lk.data.DataModule(
        TensorDataset(x, y), val_split=0.2, batch_size=32, seed=0, **extra
    )
    torch.manual_seed(1)
    module = lk.ClassificationModule(
        lk.models.MLP(8, 3, hidden=(32, 32), dropout=0.3),  # dropout: the RNG state matters
        num_classes=3,
        optimizer=lk.optim.adamw(lr=3e-3),
        scheduler=lk.optim.warmup_cosine(warmup=0.2),  # stepped per batch: its state matters
    )
    trainer = lk.fit(
        module,
        datamodule,
        resume=args.resume,
        max_epochs=4,
        seed=0,
        checkpoint_every_n_steps=3,
        default_root_dir=root / "runs",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Progress(root / "progress", args.delay, args.pause_at)],
        ema=args.ema,
        swa=args.swa,
    )
    torch.save({k: v for k, v in module.state_dict().items()}, args.out)
    print(f"done at step {trainer.global_step}")


if __name__ == "__main__":
    main()
