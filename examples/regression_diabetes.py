"""Regression: scikit-learn's bundled diabetes data (442 patients, 10 features, 1 target).

An MLP with RegressionModule (MSE; mae, mse, r2) and RMSprop. No download::

    python examples/regression_diabetes.py          # test/r2 0.447 (seed 0, ~12 s; linear models score ~0.45)
    python examples/regression_diabetes.py --fast   # smoke test
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from sklearn.datasets import load_diabetes
from torch.utils.data import TensorDataset

import lightkit as lk


def datasets(seed: int) -> tuple[TensorDataset, TensorDataset, float, float]:
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32).unsqueeze(1)  # N×1, like the net's output
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test_idx, train_idx = order[:88], order[88:]  # 20% test
    x = (x - x[train_idx].mean(0)) / x[train_idx].std(0)
    y_mean, y_std = float(y[train_idx].mean()), float(y[train_idx].std())
    y = (y - y_mean) / y_std  # standardized target: the loss and r2 are scale-free
    return (
        TensorDataset(x[train_idx], y[train_idx]),
        TensorDataset(x[test_idx], y[test_idx]),
        y_mean,
        y_std,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/regression", help="run folder")
    parser.add_argument("--fast", action="store_true", help="1 epoch, 2 batches per split")
    args = parser.parse_args()

    train, test, _, y_std = datasets(args.seed)
    datamodule = lk.data.DataModule(train, test=test, val_split=0.15, batch_size=32, seed=args.seed)
    L.seed_everything(
        args.seed, verbose=False
    )  # before the net: the same initial weights every run
    module = lk.RegressionModule(
        lk.models.MLP(10, 1, hidden=(32,), dropout=0.1),
        loss="mse",
        optimizer=lk.optim.rmsprop(lr=3e-3, weight_decay=1e-2),
        scheduler=lk.optim.plateau(patience=5),
    )
    fast = {"limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2}
    trainer = lk.make_trainer(
        max_epochs=1 if args.fast else args.max_epochs,
        default_root_dir=args.root,
        seed=args.seed,
        patience=20,
        enable_progress_bar=False,
        **(fast if args.fast else {}),
    )
    trainer.fit(module, datamodule=datamodule)
    results = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    results["test/mae_original_units"] = results["test/mae"] * y_std
    print(" ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
    main()
