"""One rank of a torchrun launch that trains a tiny model: which run folder did it use?

    torchrun --nnodes=2 --nproc-per-node=1 --node-rank=R --master-addr=127.0.0.1 \
        --master-port=P torchrun_run_dir.py ROOT OUT [--after PATH] [--resume]

``--after PATH``: ranks other than 0 wait until PATH exists before building their trainer (so
they choose after rank 0 has claimed its folder, the order in which guessing went wrong).
``--resume``: ``lk.fit(resume=True)`` instead of a new run. Each rank writes
OUT/rank<global rank>.json with its run folder, checkpoint folder and the checkpoint it resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import lightkit as lk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out", type=Path)
    parser.add_argument("--after", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    if args.after is not None and rank != 0:
        deadline = time.monotonic() + 120
        while not args.after.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    dm = lk.data.DataModule(
        TensorDataset(x, (x[:, 0] > 0).long()), val_split=0.25, batch_size=16, num_workers=0
    )
    options = dict(
        max_epochs=2 if args.resume else 1,
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        strategy="ddp",
        default_root_dir=args.root,
        seed=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = lk.ClassificationModule(lk.models.MLP(4, 2, hidden=(8,)), 2)
    trainer = lk.fit(module, dm, resume=args.resume, oom_retry=False, **options)
    report = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "run_dir": trainer.default_root_dir,
        "checkpoints": str(trainer.checkpoint_callback.dirpath),
        "resumed_from": trainer.ckpt_path,
        "epochs": trainer.current_epoch,
    }
    (args.out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
