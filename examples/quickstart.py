"""Quickstart: train a small ConvNet on scikit-learn's bundled digits and report test metrics.

After training it prints where the model is wrong on the test split (``lk.interpret``: per-class
table, most confused digits, highest-loss samples) and saves the pictures (confusion matrix,
ROC and precision-recall curves, reliability diagram, top losses) in
``<run>/interpret/test``.

Runs on a laptop CPU in well under a minute and needs no download::

    python examples/quickstart.py            # full run: test/acc >= 0.97
    python examples/quickstart.py --fast     # a few batches, for smoke tests
"""

from __future__ import annotations

import argparse

import lightning as L

import lightkit as lk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/quickstart", help="run folder")
    parser.add_argument("--fast", action="store_true", help="2 batches per split, 1 epoch")
    args = parser.parse_args()

    datamodule = lk.data.DigitsDataModule(batch_size=args.batch_size, seed=args.seed)
    L.seed_everything(
        args.seed, verbose=False
    )  # before the net: the same initial weights every run
    net = lk.models.ConvNet(in_channels=1, num_classes=10, widths=(32, 64, 128), dropout=0.1)
    module = lk.ClassificationModule(
        net,
        num_classes=10,
        optimizer=lk.optim.adam(lr=args.lr),
        scheduler=lk.optim.warmup_cosine(warmup=0.05),
    )
    limits = {"limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2}
    trainer = lk.make_trainer(
        max_epochs=1 if args.fast else args.max_epochs,
        default_root_dir=args.root,
        seed=args.seed,
        enable_progress_bar=False,
        **(limits if args.fast else {}),
    )
    trainer.fit(module, datamodule=datamodule)
    # Test the best checkpoint (by val/loss), not the last epoch's weights.
    results = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    print(f"checkpoints: {trainer.checkpoint_callback.dirpath}")
    print(lk.interpret(module, datamodule, split="test", top_k=8))  # tables; pictures saved
    print(" ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
    main()
