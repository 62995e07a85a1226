"""What the validation figures cost: ``confusion_image`` and ``prediction_image`` with class names.

Draws a 10-class confusion matrix and a 16-image prediction grid (3×32×32) with names, best of
five rounds of 20 calls, against a plain-PyTorch baseline that does the same tensor work without
text (``torch.bincount`` heat map and ``make_grid``), and prints the ratio::

    python benchmarks/figures.py
    python benchmarks/figures.py --rounds 1 --calls 2   # tiny mode
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.utils import make_grid

from lightkit.callbacks.figures import confusion_image, prediction_image

ROUNDS, CALLS = 5, 20


def _best_ms(fn) -> float:
    rounds, calls = ROUNDS, CALLS
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1000


def main() -> None:
    global ROUNDS, CALLS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    ROUNDS, CALLS = args.rounds, args.calls
    g = torch.Generator().manual_seed(0)
    matrix = torch.randint(0, 50, (10, 10), generator=g)
    x = torch.rand(16, 3, 32, 32, generator=g)
    target, predicted = (
        torch.randint(0, 10, (16,), generator=g),
        torch.randint(0, 10, (16,), generator=g),
    )
    names = [f"class_{i}" for i in range(10)]
    rows = [
        (
            "confusion matrix (10 classes)",
            _best_ms(lambda: confusion_image(matrix, class_names=names)),
            _best_ms(
                lambda: (
                    (matrix.float() / matrix.sum(1, keepdim=True))
                    .repeat_interleave(25, 0)
                    .repeat_interleave(25, 1)
                )
            ),
        ),
        (
            "prediction grid (16 images)",
            _best_ms(lambda: prediction_image(x, target, predicted, class_names=names)),
            _best_ms(lambda: make_grid(torch.nn.functional.interpolate(x, scale_factor=2), nrow=8)),
        ),
    ]
    print(f"{'figure':32} {'lightkit ms':>12} {'plain ms':>10} {'ratio':>7}")
    for name, ours, plain in rows:
        print(f"{name:32} {ours:12.2f} {plain:10.2f} {ours / plain:7.1f}")


if __name__ == "__main__":
    main()
