"""Multilabel classification on generated data: each sample carries any subset of 6 tags.

Tags depend on hidden linear features of 20 inputs, with label noise, so no classifier is perfect.
MultilabelClassificationModule (BCE with logits; f1, acc, map). No download::

    python examples/multilabel_synthetic.py          # test/f1 0.921, test/map 0.957 (seed 0, ~20 s)
    python examples/multilabel_synthetic.py --fast   # smoke test
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from torch.utils.data import TensorDataset

import lightkit as lk

NUM_LABELS = 6


def make_data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, NUM_LABELS, generator=g)
    scores = torch.tanh(x @ w) + 0.3 * (x[:, :NUM_LABELS] ** 2 - 1)  # a little non-linearity
    labels = (scores > 0).long()
    flip = torch.rand(n, NUM_LABELS, generator=g) < 0.03  # 3% label noise
    return TensorDataset(x, labels ^ flip.long())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/multilabel", help="run folder")
    parser.add_argument("--fast", action="store_true", help="1 epoch, 2 batches per split")
    args = parser.parse_args()

    x, y = make_data(5000, args.seed).tensors  # one labelling rule for all splits
    train, test = TensorDataset(x[:4000], y[:4000]), TensorDataset(x[4000:], y[4000:])
    datamodule = lk.data.DataModule(train, test=test, batch_size=64, seed=args.seed)
    L.seed_everything(
        args.seed, verbose=False
    )  # before the net: the same initial weights every run
    module = lk.MultilabelClassificationModule(
        lk.models.MLP(20, NUM_LABELS, hidden=(128, 128), dropout=0.1),
        num_labels=NUM_LABELS,
        optimizer=lk.optim.adamw(lr=2e-3),
        scheduler=lk.optim.cosine(),
    )
    fast = {"limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2}
    trainer = lk.make_trainer(
        max_epochs=1 if args.fast else args.max_epochs,
        default_root_dir=args.root,
        seed=args.seed,
        enable_progress_bar=False,
        **(fast if args.fast else {}),
    )
    trainer.fit(module, datamodule=datamodule)
    results = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    print(" ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
    main()
