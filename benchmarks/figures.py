"""What the validation figures cost: drawing them at epoch end, and sampling after each batch.

Draws a 10-class confusion matrix (names, counts and shares, colour bar) and a 16-image
prediction grid (3×32×32, captions with confidences), best of five rounds of 20 calls, against a
plain-PyTorch baseline that does the same tensor work without text (a heat map and
``make_grid``), and prints the ratio::

    python benchmarks/figures.py
    python benchmarks/figures.py --rounds 1 --calls 2   # tiny mode

``--batch-end`` measures instead what ``ValidationFigures.on_validation_batch_end`` adds to each
validation batch (256 images of 3×32×32: confusion counts, and the images spread over the
classes for the grid), against the confusion count alone (``torch.bincount``, all the earlier
callback did after its first batch), and a small ConvNet's forward pass on the same batch for
scale::

    python benchmarks/figures.py --batch-end
"""

from __future__ import annotations

import argparse
import functools
import logging
import tempfile
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


def _drawing_rows() -> list[tuple[str, float, float]]:
    g = torch.Generator().manual_seed(0)
    matrix = torch.randint(0, 50, (10, 10), generator=g)
    x = torch.rand(16, 3, 32, 32, generator=g)
    target, predicted = (
        torch.randint(0, 10, (16,), generator=g),
        torch.randint(0, 10, (16,), generator=g),
    )
    confidence = torch.rand(16, generator=g)
    names = [f"class_{i}" for i in range(10)]
    return [
        (
            "confusion matrix (10 classes)",
            _best_ms(lambda: confusion_image(matrix, class_names=names)),
            _best_ms(
                lambda: (
                    (matrix.float() / matrix.sum(1, keepdim=True))
                    .repeat_interleave(40, 0)
                    .repeat_interleave(40, 1)
                )
            ),
        ),
        (
            "prediction grid (16 images)",
            _best_ms(lambda: prediction_image(x, target, predicted, names, confidence)),
            _best_ms(lambda: make_grid(torch.nn.functional.interpolate(x, scale_factor=3), nrow=8)),
        ),
    ]


class _Described:
    """A module as the callback sees it."""

    def __init__(self, classes: int) -> None:
        import lightkit as lk

        self.outputs = lk.TaskOutputs("multiclass", num_classes=classes)

    def task_outputs(self):
        return self.outputs

    def unpack_batch(self, batch):
        return batch


def _batch_end_rows() -> list[tuple[str, float, float, float]]:
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    import lightkit as lk

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available: ..."
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 3, 32, 32, generator=g)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        trainer = L.Trainer(logger=TensorBoardLogger(folder), enable_progress_bar=False,
                            enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
        for classes in (10, 1000):
            y = torch.randint(0, classes, (256,), generator=g)
            logits = torch.randn(256, classes, generator=g)
            callback = lk.callbacks.ValidationFigures(max_classes=1000)
            module = _Described(classes)
            callback.on_validation_epoch_start(trainer, module)
            batch_end = functools.partial(
                callback.on_validation_batch_end, trainer, module, {"preds": logits}, (x, y), 0
            )
            count = functools.partial(_count, y, logits.argmax(1), classes)
            rows.append((f"batch end, {classes} classes", _best_ms(batch_end), _best_ms(count)))
    net = lk.models.ConvNet(3, 10, widths=(16, 32)).eval()
    with torch.inference_mode():
        forward = _best_ms(lambda: net(x))
    return [(name, ours, earlier, forward) for name, ours, earlier in rows]


def _count(target: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """All the earlier callback did after its first validation batch: count the cells."""
    return torch.bincount(target * classes + predicted, minlength=classes * classes)


def main() -> None:
    global ROUNDS, CALLS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--batch-end", action="store_true", help="the per-batch sampling cost")
    args = parser.parse_args()
    ROUNDS, CALLS = args.rounds, args.calls
    if args.batch_end:
        print(f"{'per validation batch (256 images)':36} {'lightkit ms':>12} {'earlier ms':>11} "
              f"{'ratio':>7} {'of a forward':>13}")  # fmt: skip
        for name, ours, earlier, forward in _batch_end_rows():
            share = f"{ours / forward:.1%}"
            print(f"{name:36} {ours:12.2f} {earlier:11.2f} {ours / earlier:7.1f} {share:>13}")
        print(f"(ConvNet(3, 10, widths=(16, 32)) forward on the batch: {forward:.2f} ms)")
        return
    print(f"{'figure':36} {'lightkit ms':>12} {'plain ms':>12} {'ratio':>7}")
    for name, ours, plain in _drawing_rows():
        print(f"{name:36} {ours:12.2f} {plain:12.2f} {ours / plain:7.1f}")


if __name__ == "__main__":
    main()
