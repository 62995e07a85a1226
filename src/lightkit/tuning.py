"""find_lr() and find_batch_size(): Lightning's Tuner behind one call each, with a saved LR plot."""

from __future__ import annotations

import contextlib
import gc
import io
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.utilities import rank_zero_only

from lightkit.data import DataModule
from lightkit.trainer import make_trainer


def find_lr(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
    **make_trainer_kwargs: Any,
) -> float:
    """Run a learning-rate range test and return the suggested learning rate.

    The learning rate grows exponentially from ``min_lr`` to ``max_lr`` over ``num_training``
    steps (stopping early once the loss diverges). The suggestion follows fastai's "valley"
    rule: in the longest stretch over which the smoothed loss keeps falling, the rate about
    halfway down it; unlike the steepest point of the curve, a noisy start or a hump before the
    valley cannot pull it to a rate where the loss is still rising. The loss-vs-LR plot is saved as ``lr_find.png`` in the run
    folder (``<default_root_dir>/version_<n>/``) and its path printed. The module's weights are
    restored afterwards, so it can be trained right away; set the suggested rate yourself, for
    example ``optimizer=lk.optim.adam(lr=lr)``.

    Args:
        module: The LightningModule to test (its optimizer comes from ``configure_optimizers``).
        datamodule: Its data.
        min_lr: Smallest learning rate tried.
        max_lr: Largest learning rate tried.
        num_training: Number of steps (learning rates) tried.
        **make_trainer_kwargs: Passed to :func:`~lightkit.make_trainer` (``default_root_dir``,
            ``seed``, ``precision``, ...).

    Returns:
        The suggested learning rate.

    Raises:
        ValueError: bad bounds, or too few steps ran to suggest a rate (a tiny dataset: lower
            ``num_training`` or add data).

    Example:
        >>> lr = lk.find_lr(module, dm, num_training=20, logger=False, enable_progress_bar=False)
        lightkit: suggested learning rate ...; plot saved to ...lr_find.png
        >>> module = lk.ClassificationModule(net, num_classes=3, optimizer=lk.optim.adam(lr=lr))
    """
    if not (isinstance(min_lr, (int, float)) and isinstance(max_lr, (int, float))):
        raise TypeError(f"find_lr: min_lr and max_lr must be numbers, got {min_lr!r}, {max_lr!r}")
    if not 0 < min_lr < max_lr:
        raise ValueError(
            f"find_lr: need 0 < min_lr < max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}"
        )
    if not isinstance(num_training, int) or isinstance(num_training, bool) or num_training < 13:
        # Lightning's suggestion skips the first 10 and the last point and needs 2 more.
        raise ValueError(f"find_lr: num_training must be an integer >= 13, got {num_training!r}")
    return lr_range_test(
        module,
        datamodule,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
        trainer_kwargs=make_trainer_kwargs,
    ).suggestion


@dataclass(frozen=True)
class RangeTest:
    """What a learning-rate range test found: the suggestion, the curve and the plot's path."""

    suggestion: float
    lrs: list[float]
    losses: list[float]
    plot: Path


def lr_range_test(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    min_lr: float,
    max_lr: float,
    num_training: int,
    trainer_kwargs: dict[str, Any],
) -> RangeTest:
    """find_lr's work, for lightkit's workflows (``lk.diagnose``); arguments are not re-checked."""
    trainer = _tuning_trainer(trainer_kwargs)
    with _without_lr_finder_bar(trainer_kwargs.get("verbose", False)):
        finder = Tuner(trainer).lr_find(
            module,
            datamodule=datamodule,
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=num_training,
            update_attr=False,
        )
    found = valley(finder.results["lr"], finder.results["loss"]) if finder is not None else None
    if finder is None or found is None:
        steps = len(finder.results.get("lr", [])) if finder is not None else 0
        raise ValueError(
            f"find_lr: only {steps} of {num_training} steps ran, too few to suggest a learning "
            "rate: the loss diverged early (lower max_lr) or the run ended first (raise "
            "max_epochs, or use more training data)"
        )
    index, lr = found
    path = Path(trainer.default_root_dir) / "lr_find.png"
    if rank_zero_only.rank == 0:
        figure = finder.plot(suggest=False, show=False)
        figure.axes[0].plot(lr, finder.results["loss"][index], "ro", label=f"suggested {lr:.2g}")
        figure.axes[0].legend()
        figure.savefig(path, dpi=100)
        _close(figure)
        print(f"lightkit: suggested learning rate {lr:.3g}; plot saved to {path}")
    return RangeTest(float(lr), list(finder.results["lr"]), list(finder.results["loss"]), path)


_LR_FINDER_BAR = "Finding best initial lr"


@contextlib.contextmanager
def _without_lr_finder_bar(verbose: bool) -> Iterator[None]:
    """Lightning's LR finder always draws a tqdm bar on standard error (in a log file, a wall of
    redraws). Unless ``verbose``, capture standard error while it runs and pass on everything
    else written there (warnings, messages)."""
    if verbose:
        yield
        return
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        kept = [
            line
            for line in captured.getvalue().replace("\r", "\n").splitlines(keepends=True)
            if _LR_FINDER_BAR not in line and line.strip()
        ]
        sys.stderr.write("".join(kept))


def valley(lrs: list[float], losses: list[float]) -> tuple[int, float] | None:
    """fastai's "valley" suggestion for a range test: ``(index, learning rate)``, or None.

    The longest run of points over which the loss keeps falling (a longest decreasing
    subsequence), and the point about halfway down it (as fastai: ``start + 1/3 + 1/6`` of its
    length; fastai counts from the point before the run, which on a short curve can land on
    the top of a hump). Points after the first non-finite loss are ignored. Needs at least 3 points.

    Example:
        >>> valley([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1], [1.0, 1.3, 1.1, 0.7, 0.4, 9.0])
        (2, 0.0001)
    """
    finite = []
    for loss in losses:
        if not math.isfinite(loss):
            break
        finite.append(loss)
    n = len(finite)
    if n < 3:
        return None
    longest = [1] * n  # longest decreasing run ending at each point
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if finite[i] < finite[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
                start = end - longest[end] + 1  # the run's first point (fastai: one before it)
    sections = (end - start) / 3
    index = start + int(sections) + int(sections / 2)
    return index, float(lrs[index])


def find_batch_size(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    init_val: int = 2,
    max_val: int = 8192,
    steps_per_trial: int = 3,
    **make_trainer_kwargs: Any,
) -> int:
    """Find the largest batch size that fits in memory, and set it on the datamodule.

    Starting at ``init_val``, the batch size doubles until a training step runs out of memory
    or the next size would exceed ``max_val`` or the training set's size; the last size that
    worked is set as ``datamodule.batch_size`` and returned. Only sizes that ran are returned
    (``init_val`` times a power of two, ``max_val`` included): on the CPU, where nothing runs
    out of memory, that is the largest such size up to ``max_val`` and the training set's size
    (64 for a training set of 72 samples). The module's weights are restored afterwards.

    Args:
        module: The LightningModule to train.
        datamodule: Its data; needs a ``batch_size`` attribute (every lightkit DataModule has one).
        init_val: First batch size tried.
        max_val: Largest batch size tried (it is tried when doubling reaches it).
        steps_per_trial: Training steps run at each size.
        **make_trainer_kwargs: Passed to :func:`~lightkit.make_trainer`.

    Returns:
        The batch size found (also set on ``datamodule.batch_size``).

    Example:
        >>> batch_size = lk.find_batch_size(
        ...     module, dm, max_val=16, steps_per_trial=1, logger=False, enable_progress_bar=False
        ... )
        >>> batch_size, dm.batch_size  # on the CPU nothing runs out of memory: max_val
        (16, 16)
    """
    for name, value in (
        ("init_val", init_val),
        ("max_val", max_val),
        ("steps_per_trial", steps_per_trial),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"find_batch_size: {name} must be an integer >= 1, got {value!r}")
    if init_val > max_val:
        raise ValueError(f"find_batch_size: init_val={init_val} is larger than max_val={max_val}")
    if not isinstance(getattr(datamodule, "batch_size", None), int):
        raise ValueError(
            f"find_batch_size: {type(datamodule).__name__} needs an integer `batch_size` "
            "attribute that its train_dataloader() uses"
        )
    train_size = _train_size(datamodule)
    if train_size is not None:
        max_val = max(init_val, min(max_val, train_size))  # a larger batch is the whole set
    previous = datamodule.batch_size
    # Lightning builds the first trial's loader before it sets init_val, so the first trial would
    # run at the datamodule's own batch size.
    datamodule.batch_size = init_val
    trainer = _tuning_trainer(make_trainer_kwargs)
    try:
        with _collected_once():
            found = Tuner(trainer).scale_batch_size(
                module,
                datamodule=datamodule,
                mode="power",
                init_val=init_val,
                # Lightning stops before trying a size >= its max_val: max_val itself is tried.
                max_val=max_val + 1,
                steps_per_trial=steps_per_trial,
            )
    except BaseException:
        datamodule.batch_size = previous
        raise
    batch_size = int(found if found is not None else datamodule.batch_size)
    if batch_size > max_val:
        # Lightning's search stops when doubling passes its limit and returns that untried size;
        # the last size that ran is half of it.
        batch_size //= 2
    batch_size = min(batch_size, max_val)
    datamodule.batch_size = batch_size
    return batch_size


@contextlib.contextmanager
def _collected_once() -> Iterator[None]:
    """One full garbage collection for the whole batch-size search, not one per trial.

    Lightning's search runs ``gc.collect()`` before every trial, which takes most of a second in
    a process that has imported torch and Lightning. Collect once, then freeze the survivors
    (``gc.freeze``) so that the per-trial collections scan only what the trials create, which is
    where a failed trial's tensors are. Left alone when the process froze objects itself.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _train_size(datamodule: L.LightningDataModule) -> int | None:
    if not isinstance(datamodule, DataModule):
        return None
    datamodule.setup("fit")
    return len(datamodule.train_dataset)  # type: ignore[arg-type]


def _tuning_trainer(kwargs: dict[str, Any]) -> L.Trainer:
    kwargs.setdefault("early_stopping", False)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_progress_bar", False)
    kwargs.setdefault("enable_model_summary", False)
    return make_trainer(**kwargs)


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


__all__ = ["find_batch_size", "find_lr"]
