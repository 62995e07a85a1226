"""Two DDP processes from one make_trainer call without ``version=``: do they share one run folder?

    python ddp_run_folder.py OUT

Each rank writes OUT/rank<global rank>.json with the run folder its trainer uses and where its
checkpoint callback writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import lightkit as lk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x[:, 0] > 0).long()
    trainer = lk.make_trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        default_root_dir=args.out / "runs",  # no version=: rank 0 claims a new folder
        seed=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    dm = lk.data.DataModule(TensorDataset(x, y), val_split=0.25, batch_size=16, num_workers=0)
    trainer.fit(lk.ClassificationModule(lk.models.MLP(8, 2), 2), datamodule=dm)
    report = {
        "global_rank": trainer.global_rank,
        "run_dir": trainer.default_root_dir,
        "checkpoints": str(trainer.checkpoint_callback.dirpath),
    }
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
