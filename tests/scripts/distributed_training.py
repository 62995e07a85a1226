"""A short multi-process training run for the distributed tests: each rank reports what it saw.

    python distributed_training.py OUT --devices 2                # DDP, 2 CPU processes (gloo)
    torchrun --nnodes=2 --nproc-per-node=1 --node-rank=R ... distributed_training.py OUT --num-nodes 2

Each rank writes OUT/rank<global rank>.json with the world size, the synced val/acc and val/loss
that rank logged, how many training batches it ran per epoch and a checksum of its weights.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import lightkit as lk


def blobs(n: int = 512, num_classes: int = 3, features: int = 8) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(num_classes, features, generator=g) * 3
    y = torch.randint(0, num_classes, (n,), generator=g)
    return TensorDataset(centers[y] + torch.randn(n, features, generator=g) * 2, y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument(
        "--recipes",
        action="store_true",
        help="balanced sampler, MixUp/CutMix, EMA and fine-tuning on 1×2×4 'images'",
    )
    args = parser.parse_args()
    recipes = args.recipes

    trainer = lk.make_trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        default_root_dir=args.out / "runs",
        version=0,  # every rank writes to the same run folder
        seed=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        **(
            {"ema": 0.9, "callbacks": [lk.callbacks.FineTuning(freeze_epochs=1)]} if recipes else {}
        ),
    )
    # Built after make_trainer(seed=0), so every launch starts from the same weights.
    data = blobs()
    if recipes:  # 4-D inputs for MixUp/CutMix
        data = TensorDataset(data.tensors[0].reshape(-1, 1, 2, 4), data.tensors[1])
    sampler = "balanced" if recipes else None
    dm = lk.data.DataModule(data, val_split=0.25, batch_size=32, num_workers=0, sampler=sampler)
    net = lk.models.MLP(8, 3, hidden=(32,))
    if recipes:
        net = torch.nn.Sequential(torch.nn.Flatten(), net)
    extra = {"mixup": 0.2, "cutmix": 1.0} if recipes else {}
    module = lk.ClassificationModule(net, num_classes=3, optimizer=lk.optim.adam(lr=1e-2), **extra)
    trainer.fit(module, datamodule=dm)
    weights = torch.cat([p.detach().flatten() for p in module.parameters()])
    report = {
        "global_rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "num_nodes": trainer.num_nodes,
        "node_rank": trainer.node_rank,
        "strategy": type(trainer.strategy).__name__,
        "backend": getattr(trainer.strategy, "process_group_backend", None),
        "val_acc": float(trainer.callback_metrics["val/acc"]),
        "val_loss": float(trainer.callback_metrics["val/loss"]),
        "train_batches": trainer.num_training_batches,
        "weights_sum": float(weights.double().sum()),
        "weights_abs_sum": float(weights.double().abs().sum()),
        "pid": os.getpid(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
