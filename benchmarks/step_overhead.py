"""Where a training step's time goes besides the math: Python calls per step, optimizer and metrics.

Wall-clock parity (``parity.py``) drifts with this machine's load; these numbers do not, or much
less. Three measurements, each against plain PyTorch in the same process:

1. Python function calls per training step (counted with ``sys.setprofile`` over one epoch of a
   tiny net, so every call is overhead): a plain loop over ``InMemoryLoader``, bare Lightning, and
   ``lk.ClassificationModule`` + ``lk.make_trainer`` defaults (logger on, progress bar off).
   The count is exact and repeatable; at roughly 0.3-0.6 µs per call here, it is the part of
   the step that does not depend on the net.
2. One optimizer step of the parity MLP (85k parameters): ``torch.optim.Adam`` as PyTorch
   defaults it against ``lk.optim.adam()`` (the fused kernel).
3. One validation-metric update (batch 100, 10 classes): torchmetrics' ``MulticlassAccuracy``
   + ``MulticlassF1Score`` in a ``MetricCollection`` against ``ClassificationModule``'s metrics.

::

    python benchmarks/step_overhead.py
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

import lightkit as lk

STEPS = 160  # batches per epoch: 16,000 samples in batches of 100


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(STEPS * 100, 64, generator=g), torch.randint(
        0, 10, (STEPS * 100,), generator=g
    )


class _Counter:
    """Counts Python and C function calls while ``on`` is set."""

    def __init__(self) -> None:
        self.on = False
        self.calls = 0

    def __call__(self, frame, event, arg) -> None:
        if self.on and event in ("call", "c_call"):
            self.calls += 1


class _CountSecondEpoch(Callback):
    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.counter.on = trainer.current_epoch == 1  # epoch 0 warms up (first-batch work)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.counter.on = False


def calls_per_step(variant: str) -> float:
    x, y = _data()
    torch.manual_seed(0)
    net = nn.Linear(64, 10)
    counter = _Counter()
    loader = lk.data.InMemoryLoader((x, y), batch_size=100, shuffle=True, seed=0)
    sys.setprofile(counter)
    try:
        if variant == "plain":
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
            for epoch in range(2):
                counter.on = epoch == 1
                for xb, yb in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(net(xb), yb).backward()
                    optimizer.step()
                counter.on = False
        else:
            _fit(variant, net, loader, _CountSecondEpoch(counter))
    finally:
        sys.setprofile(None)
    return counter.calls / STEPS


def _fit(variant: str, net: nn.Module, loader, callback: Callback) -> None:
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(io.StringIO()):
        if variant == "lightning":

            class Bare(L.LightningModule):
                def __init__(self) -> None:
                    super().__init__()
                    self.net = net

                def training_step(self, batch, batch_idx):
                    return F.cross_entropy(self.net(batch[0]), batch[1])

                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)

            trainer = L.Trainer(
                max_epochs=2, default_root_dir=folder, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
            )  # fmt: skip
            trainer.fit(Bare(), loader)
        else:
            module = lk.ClassificationModule(net, num_classes=10)
            trainer = lk.make_trainer(
                max_epochs=2, default_root_dir=folder, enable_progress_bar=False,
                enable_model_summary=False, limit_val_batches=0, callbacks=[callback],
                oom_retry=variant == "lightkit+oom",  # lk.fit's default: the OOM guard
            )  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):
                trainer.fit(module, loader)


def _microseconds(fn: Callable[[], object], repeat: int = 200) -> float:
    for _ in range(20):
        fn()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - start) / repeat * 1e6)
    return min(rounds)  # the least disturbed round


def optimizer_step_us() -> tuple[float, float]:
    def step_time(make: Callable) -> float:
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
        F.cross_entropy(net(torch.randn(100, 64)), torch.randint(0, 10, (100,))).backward()
        return _microseconds(make(net.parameters()).step)

    return step_time(lambda p: torch.optim.Adam(p, lr=1e-3)), step_time(lk.optim.adam(lr=1e-3))


def metric_update_us() -> tuple[float, float]:
    preds, target = torch.randn(100, 10), torch.randint(0, 10, (100,))
    kwargs = {"num_classes": 10, "validate_args": False}
    plain = MetricCollection(
        {"acc": MulticlassAccuracy(average="micro", **kwargs), "f1": MulticlassF1Score(**kwargs)}
    )
    ours = lk.ClassificationModule(nn.Linear(64, 10), num_classes=10).val_metrics
    return _microseconds(lambda: plain.update(preds, target)), _microseconds(
        lambda: ours.update(preds, target)
    )


def main() -> None:
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads"
    )
    print("\nPython calls per training step (tiny net, one epoch of 160 steps)")
    counts = {v: calls_per_step(v) for v in ("plain", "lightning", "lightkit", "lightkit+oom")}
    for variant, count in counts.items():
        print(f"  {variant:<13}{count:>8.0f}{count / counts['plain']:>8.2f}x")
    default, fused = optimizer_step_us()
    print("\nAdam step, parity MLP (85k parameters), µs (best of 5 rounds of 200)")
    print(f"  torch.optim.Adam (PyTorch default) {default:>8.0f}")
    print(f"  lk.optim.adam() (fused)            {fused:>8.0f}{fused / default:>8.2f}x")
    plain, ours = metric_update_us()
    print("\nValidation metric update, batch 100, 10 classes, µs")
    print(f"  MulticlassAccuracy + MulticlassF1Score  {plain:>8.0f}")
    print(f"  ClassificationModule's acc + f1         {ours:>8.0f}{ours / plain:>8.2f}x")


if __name__ == "__main__":
    main()
