"""An ImageFolderDataModule run (worker processes, random augmentation, dropout) for the
fault-tolerance tests: SIGKILLed, resumed, compared bit for bit.

    python resumable_images.py ROOT OUT [--resume] [--devices 2] [--workers 2] [--delay 0.05]

Writes ROOT/progress ("step N" after each training batch, on rank 0) so that the test can kill
it at a chosen step, and the final weights to OUT (rank 0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

import lightkit as lk


class Progress(Callback):
    def __init__(self, path: Path, delay: float) -> None:
        self.path, self.delay = path, delay

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.delay)  # room for the test to kill the run at a chosen step
        if trainer.global_rank == 0:
            self.path.write_text(f"step {trainer.global_step}")


def images(root: Path) -> Path:
    """72 small generated PNGs in 3 class folders (the same every time)."""
    folder = root / "images"
    if folder.exists():
        return folder
    rng = np.random.default_rng(0)
    for c in range(3):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(24):
            pixels = (rng.random((20, 20, 3)) * 80 + c * 60).astype("uint8")
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    torch.set_num_threads(1)
    datamodule = lk.data.ImageFolderDataModule(
        images(args.root), image_size=16, val_split=0.2, batch_size=8, augment=True,
        num_workers=args.workers, seed=0,
    )  # fmt: skip
    torch.manual_seed(1)
    net = lk.models.ConvNet(3, 3, widths=(8, 16), dropout=0.3)  # dropout: the RNG matters
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.adamw(lr=3e-3))
    trainer = lk.fit(
        module,
        datamodule,
        resume=args.resume,
        max_epochs=3,
        seed=0,
        checkpoint_every_n_steps=1,
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        default_root_dir=args.root / "runs",
        version=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Progress(args.root / "progress", args.delay)],
    )
    if trainer.global_rank == 0:
        torch.save({k: v.clone() for k, v in module.state_dict().items()}, args.out)
        print(f"done at step {trainer.global_step}")


if __name__ == "__main__":
    main()
