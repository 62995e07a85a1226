"""Fine-tune a pretrained network: pretrain on digits 0-4, fine-tune on 5-9 from a few labels.

Nothing comes from the internet: the script first trains a small torchvision network
(ShuffleNet V2 0.5×) on scikit-learn's bundled digits 0-4 and saves its ``state_dict``, as you
would keep a network trained on one task. It then learns digits 5-9 from only
``--labels-per-class`` labelled images each, twice: from scratch, and fine-tuned from the saved
weights with ``lk.fine_tune`` (the new head alone first, then everything, the body at a tenth of
the head's learning rate). Both are tested on every other 5-9 digit::

    python examples/finetune_digits.py            # under a minute on a laptop CPU
    python examples/finetune_digits.py --fast     # a smoke test

It prints both test accuracies; fine-tuning wins by a wide margin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

import lightkit as lk

ARCH = "shufflenet_v2_x0_5"


def digits(classes: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits of ``classes`` as 1×32×32 images in [0, 1] (upscaled from 8×8: ImageNet-style nets
    halve the resolution five times), labels renumbered from 0."""
    data = load_digits()
    keep = np.isin(data.target, list(classes))
    x = torch.tensor(data.images[keep] / 16.0, dtype=torch.float32)[:, None]
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    y = torch.tensor(data.target[keep] - classes.start)
    return x, y


def few_labels(y: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of ``per_class`` labelled samples of each class, and of all the others."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    chosen = torch.cat([order[y[order] == c][:per_class] for c in range(int(y.max()) + 1)])
    rest = order[~torch.isin(order, chosen)]
    return chosen, rest


def train(net, x, y, x_test, y_test, epochs: int, root: Path, tune: bool, fast: bool) -> dict:
    module = lk.ClassificationModule(net, num_classes=5, optimizer=lk.optim.adamw(lr=3e-3))
    train_set, test_set = TensorDataset(x, y), TensorDataset(x_test, y_test)
    dm = lk.data.DataModule(train_set, test=test_set, val_split=0.0, batch_size=32)
    options = dict(
        default_root_dir=root, logger=False, enable_progress_bar=False, verbose=False,
        enable_model_summary=False, early_stopping=False, limit_train_batches=2 if fast else None,
    )  # fmt: skip
    if tune:
        trainer = lk.fine_tune(
            module, dm, epochs=epochs, freeze_epochs=max(1, epochs // 5), **options
        )
    else:
        trainer = lk.fit(module, dm, max_epochs=epochs, **options)
    return trainer.test(module, datamodule=dm, verbose=False)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/finetune_digits", help="run folder")
    parser.add_argument("--fast", action="store_true", help="a few batches, for smoke tests")
    args = parser.parse_args()
    epochs = 2 if args.fast else args.epochs
    root = Path(args.root)

    # 1. A network trained on another task (digits 0-4), kept as a state_dict file.
    L.seed_everything(args.seed, verbose=False)
    x_a, y_a = digits(range(0, 5))
    pretrained = lk.models.backbone(ARCH, num_classes=5, in_channels=1)
    train(
        pretrained, x_a, y_a, x_a, y_a, 1 if args.fast else 6, root / "pretrain", False, args.fast
    )
    weights = root / "digits_0_to_4.pt"
    torch.save(pretrained.state_dict(), weights)

    # 2. The task at hand: digits 5-9, from a few labels each.
    x_b, y_b = digits(range(5, 10))
    labelled, rest = few_labels(y_b, args.labels_per_class, args.seed)
    data = (x_b[labelled], y_b[labelled], x_b[rest], y_b[rest])

    L.seed_everything(args.seed, verbose=False)
    scratch = lk.models.backbone(ARCH, num_classes=5, in_channels=1)
    scratch_acc = train(scratch, *data, epochs, root / "scratch", False, args.fast)["test/acc"]

    L.seed_everything(args.seed, verbose=False)
    tuned = lk.models.backbone(ARCH, num_classes=5, in_channels=1, weights=weights)
    tuned = train(tuned, *data, epochs, root / "finetune", True, args.fast)

    print(f"digits 5-9 from {len(labelled)} labelled images, tested on {len(rest)}:")
    print(f"  from scratch:               test/acc {scratch_acc:.3f}")
    print(f"  fine-tuned from digits 0-4: test/acc {tuned['test/acc']:.3f}")
    print(
        f"test/acc={tuned['test/acc']:.4f} test/loss={tuned['test/loss']:.4f} "
        f"scratch/acc={scratch_acc:.4f} gain={tuned['test/acc'] - scratch_acc:.4f}"
    )


if __name__ == "__main__":
    main()
