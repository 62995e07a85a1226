"""A training run whose forward pass runs out of memory on one rank, for the microbatching tests.

    python oom_microbatching.py OUT [--devices 2] [--oom-rank R] [--oom-after 30]

The net raises CUDA's out-of-memory error from its forward pass on rank R (-1: never) for
training batches of more than 16 rows, once that rank has run ``--oom-after`` training forward
passes. Each rank writes OUT/rank<r>.pt: its final weights, its optimizer steps, and the rows of
every training forward pass it ran (negative for the one that failed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk


class OutOfMemoryAfter(nn.Module):
    def __init__(self, rank: int, after: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
        self.rank, self.after = rank, after
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            this_rank = int(os.environ.get("LOCAL_RANK", "0")) == self.rank
            if this_rank and len(self.rows) >= self.after and x.shape[0] > 16:
                self.rows.append(-x.shape[0])
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.rows.append(x.shape[0])
        return self.layers(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--oom-rank", type=int, default=-1)
    parser.add_argument("--oom-after", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (640,), generator=g)
    data = TensorDataset(centers[y] + torch.randn(640, 8, generator=g) * 2, y)
    torch.manual_seed(0)
    net = OutOfMemoryAfter(args.oom_rank, args.oom_after)
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.adamw(lr=1e-2))
    trainer = lk.fit(
        module,
        lk.data.DataModule(data, val_split=0.2, batch_size=32, seed=0),
        max_epochs=4,  # 32 steps a rank: the OOM comes at the 31st
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        default_root_dir=args.out / "runs",
        version=0,
        seed=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    rank = trainer.global_rank
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    torch.save(
        {"weights": state, "steps": trainer.global_step, "rows": net.rows},
        args.out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main()
