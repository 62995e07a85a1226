"""Multi-node training with lightkit presets on streaming data: one script for every process.

Launched once per GPU by torchrun (``torchrun.sh``) or by SLURM's srun (``slurm.sbatch``); each
process builds the same trainer, and Lightning reads the rank, world size and master address from
the launcher's environment. Every rank uses the run folder rank 0 chose (``version=`` is not
needed), and each rank streams its own share of every epoch from the shards.

    # once, before launching: write the shards (any fsspec URL works: s3://bucket/digits, ...)
    python examples/cluster/train.py --write-digits /shared/data/digits
    # then, on every node (see torchrun.sh and slurm.sbatch):
    python examples/cluster/train.py --data /shared/data/digits --root /shared/runs \\
        --num-nodes 2 --devices 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L

import lightkit as lk


def write_digits(output: str) -> None:
    """scikit-learn's bundled digits (seeded train/val/test split) as streaming shards."""
    dm = lk.data.DigitsDataModule(seed=0)
    dm.setup("fit")
    dm.setup("test")
    out = lk.data.write_streaming(
        dm.train_dataset, output, val=dm.val_dataset, test=dm.test_dataset,
        class_names=dm.class_names, chunk_bytes="256KB",
    )  # fmt: skip
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-digits", metavar="DIR", help="write the shards, then exit")
    parser.add_argument("--data", help="folder or URL that write_streaming wrote")
    parser.add_argument("--root", default="runs/cluster", help="run folder, shared by all nodes")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--devices", default="auto", help="processes (GPUs) per node")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--workers", type=int, default=2, help="data-loading workers per process")
    parser.add_argument("--resume", action="store_true", help="continue the newest run")
    args = parser.parse_args()
    if args.write_digits:
        write_digits(args.write_digits)
        return
    if not args.data:
        parser.error("--data is required (write shards first with --write-digits DIR)")

    datamodule = lk.data.StreamingDataModule(
        args.data, batch_size=args.batch_size, num_workers=args.workers, seed=0
    )
    L.seed_everything(0, verbose=False)  # before the net: every rank starts from the same weights
    module = lk.ClassificationModule(
        lk.models.ConvNet(1, datamodule.num_classes, widths=(32, 64)),
        num_classes=datamodule.num_classes,
        optimizer=lk.optim.adamw(lr=3e-3),
        scheduler=lk.optim.warmup_cosine(),
    )
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    trainer = lk.fit(
        module,
        datamodule,
        resume=args.resume,
        max_epochs=args.max_epochs,
        seed=0,
        default_root_dir=args.root,
        strategy="ddp",
        accelerator=args.accelerator,
        devices=devices,
        num_nodes=args.num_nodes,
        checkpoint_every_n_steps=50,  # a preempted job loses at most 50 steps
        enable_progress_bar=False,
    )
    result = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    if trainer.is_global_zero:
        print(f"run folder: {Path(trainer.checkpoint_callback.dirpath).parent}")
        print(" ".join(f"{k}={v:.4f}" for k, v in sorted(result.items())))


if __name__ == "__main__":
    main()
