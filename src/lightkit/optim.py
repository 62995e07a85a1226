"""Optimizer and LR-scheduler presets: small callables that build torch optimizers and schedulers.

A preset is plain data (a name and keyword arguments), so the same value works from Python, from a
YAML config and from a checkpoint::

    import lightkit as lk

    module = lk.ClassificationModule(
        net, num_classes=10, optimizer=lk.optim.sgd(lr=0.1), scheduler=lk.optim.warmup_cosine()
    )

Any callable ``params -> Optimizer`` (for an optimizer) or ``optimizer -> LRScheduler`` (for a
scheduler) works in their place; presets add checkpoint-friendly hyperparameters and, for schedulers
that need it, the total step count read from the trainer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightkit._validation import (
    check_bool,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_sequence,
    short_repr,
)

__all__ = [
    "OptimizerPreset",
    "SchedulerPreset",
    "adam",
    "adamw",
    "cosine",
    "onecycle",
    "plateau",
    "rmsprop",
    "sgd",
    "step",
    "warmup_cosine",
]


class OptimizerPreset:
    """A named optimizer recipe; calling it with model parameters returns the optimizer.

    Parameters may come as a list of tensors or of param groups (dicts, as torch optimizers
    take them). With ``filter_bias_and_norm`` and a weight decay above 0, every group is split in
    two: parameters with one dimension or fewer (biases, the weights of normalisation layers)
    get ``weight_decay=0``, as timm, fastai and Hugging Face do; the rest keep the decay.

    Args:
        name: The ``lightkit.optim`` function that made it (used to rebuild it from a checkpoint).
        optimizer_class: The ``torch.optim.Optimizer`` subclass to build.
        kwargs: Keyword arguments for ``optimizer_class``. ``fused=None`` (the presets' default)
            means "fused if every parameter allows it": see :func:`adam`.
        filter_bias_and_norm: No weight decay on biases and normalisation weights (recorded in
            the preset's spec as ``filter_bias_and_norm``).

    Example:
        >>> preset = lk.optim.OptimizerPreset("adam", torch.optim.Adam, {"lr": 0.01})
        >>> preset  # what lk.optim.adam(lr=0.01, ...) returns, with its own defaults
        lk.optim.adam(lr=0.01)
        >>> preset.to_spec()  # plain data: how checkpoints and YAML configs record it
        {'class_path': 'lightkit.optim.adam', 'init_args': {'lr': 0.01}}
        >>> type(preset(net.parameters())).__name__
        'Adam'
    """

    def __init__(
        self,
        name: str,
        optimizer_class: type[Optimizer],
        kwargs: dict[str, Any],
        filter_bias_and_norm: bool | None = None,
    ) -> None:
        check_instance("OptimizerPreset", "name", name, str, "the preset's name (str)")
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError(
                "OptimizerPreset: optimizer_class must be a torch.optim.Optimizer subclass, got "
                f"{short_repr(optimizer_class)}"
            )
        check_instance("OptimizerPreset", "kwargs", kwargs, dict, "a dict of keyword arguments")
        if filter_bias_and_norm is not None:
            check_bool("OptimizerPreset", "filter_bias_and_norm", filter_bias_and_norm)
        self.name = name
        self.optimizer_class = optimizer_class
        self.kwargs = kwargs
        self.filter_bias_and_norm = filter_bias_and_norm  # None: the preset has no such option

    def __call__(self, params: Iterable[Any]) -> Optimizer:
        kwargs = dict(self.kwargs)
        if self.filter_bias_and_norm and kwargs.get("weight_decay", 0) > 0:
            params = _without_decay_on_bias_and_norm(params)
        if "fused" in kwargs and kwargs["fused"] is None:
            params = [_materialized(item) for item in params]  # read twice: here and by torch
            if _fusable(params):
                try:
                    return self.optimizer_class(params, **{**kwargs, "fused": True})
                except RuntimeError:
                    pass  # this PyTorch has no fused kernel for these parameters: the default
        return self.optimizer_class(params, **kwargs)

    def to_spec(self) -> dict[str, Any]:
        return {"class_path": f"lightkit.optim.{self.name}", "init_args": self._args()}

    def _args(self) -> dict[str, Any]:
        args = dict(self.kwargs)
        if self.filter_bias_and_norm is not None:
            args["filter_bias_and_norm"] = self.filter_bias_and_norm
        return args

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"lk.optim.{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptimizerPreset) and self.to_spec() == other.to_spec()

    __hash__ = None  # type: ignore[assignment]


class SchedulerPreset:
    """A named LR-scheduler recipe.

    Calling it as ``preset(optimizer, total_steps)`` returns the scheduler; ``total_steps`` (the
    number of optimizer steps in the whole run) is filled in by :class:`lightkit.TaskModule` from
    ``trainer.estimated_stepping_batches`` for presets that need it.

    Args:
        name: The ``lightkit.optim`` function that made it.
        build: ``(optimizer, total_steps) -> LRScheduler``.
        kwargs: The preset's arguments, kept for checkpoints and ``repr``.
        interval: ``"epoch"`` or ``"step"``: when Lightning calls ``scheduler.step()``.
        needs_total_steps: Whether ``build`` needs ``total_steps``.
        monitor: The logged metric a ``ReduceLROnPlateau`` scheduler watches.

    Example:
        >>> preset = lk.optim.warmup_cosine(warmup=0.1)  # a SchedulerPreset
        >>> preset.interval, preset.needs_total_steps
        ('step', True)
        >>> scheduler = preset(torch.optim.SGD(net.parameters(), lr=0.1), total_steps=100)
        >>> type(scheduler).__name__
        'LambdaLR'
    """

    def __init__(
        self,
        name: str,
        build: Callable[[Optimizer, int | None], LRScheduler | Any],
        kwargs: dict[str, Any],
        interval: str = "epoch",
        needs_total_steps: bool = False,
        monitor: str | None = None,
    ) -> None:
        owner = "SchedulerPreset"
        check_instance(owner, "name", name, str, "the preset's name (str)")
        if not callable(build):
            raise TypeError(f"{owner}: build must be callable, got {short_repr(build)}")
        check_instance(owner, "kwargs", kwargs, dict, "a dict of keyword arguments")
        check_choice(owner, "interval", interval, ("epoch", "step"))
        check_bool(owner, "needs_total_steps", needs_total_steps)
        if monitor is not None:
            check_instance(owner, "monitor", monitor, str, "a metric name (str) or None")
        self.name = name
        self.build = build
        self.kwargs = kwargs
        self.interval = interval
        self.needs_total_steps = needs_total_steps
        self.monitor = monitor

    def __call__(self, optimizer: Optimizer, total_steps: int | None = None) -> LRScheduler:
        if self.needs_total_steps and (total_steps is None or total_steps <= 0):
            raise ValueError(
                f"lk.optim.{self.name} needs the run's total number of optimizer steps, got "
                f"total_steps={total_steps!r}; set max_epochs or max_steps on the Trainer"
            )
        return self.build(optimizer, total_steps)

    def to_spec(self) -> dict[str, Any]:
        return {"class_path": f"lightkit.optim.{self.name}", "init_args": dict(self.kwargs)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"lk.optim.{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SchedulerPreset) and self.to_spec() == other.to_spec()

    __hash__ = None  # type: ignore[assignment]


def _owner(fn: str) -> str:
    return f"lk.optim.{fn}"


def _lr(fn: str, name: str, value: Any) -> float:
    """A learning rate: a finite number > 0."""
    return check_float(_owner(fn), name, value, minimum=0.0, min_inclusive=False)


def _non_negative(fn: str, name: str, value: Any) -> float:
    return check_float(_owner(fn), name, value, minimum=0.0)


def _unit(fn: str, name: str, value: Any) -> float:
    """A decay coefficient or momentum in ``[0, 1)``: 1 or more never forgets, or diverges."""
    return check_float(_owner(fn), name, value, 0.0, 1.0, max_inclusive=False)


def _check_ratio(fn: str, ratio: float) -> float:
    return check_float(_owner(fn), "min_lr_ratio", ratio, 0.0, 1.0)


def _check_betas(fn: str, betas: Any) -> tuple[float, float]:
    unit = functools.partial(check_float, minimum=0.0, maximum=1.0, max_inclusive=False)
    return check_sequence(_owner(fn), "betas", betas, unit, length=2)  # type: ignore[return-value]


# --- optimizers ---------------------------------------------------------------------------------

_FUSED_DEVICES = ("cpu", "cuda")


def _fusable(params: list[Any]) -> bool:
    """Whether PyTorch's fused optimizer kernels can take every parameter in ``params``.

    Plain dense floating-point tensors on the CPU or a CUDA GPU only: tensor subclasses (DTensor,
    FSDP's flat parameters), sparse or complex parameters and other devices keep PyTorch's default
    implementation.
    """
    tensors = []
    for item in params:
        group = item.get("params", []) if isinstance(item, dict) else [item]
        tensors.extend([group] if isinstance(group, torch.Tensor) else group)
    return bool(tensors) and all(
        isinstance(p, torch.Tensor)
        and type(p) in (torch.Tensor, torch.nn.Parameter)
        and p.layout == torch.strided
        and p.is_floating_point()
        and p.device.type in _FUSED_DEVICES
        for p in tensors
    )


def _without_decay_on_bias_and_norm(params: Iterable[Any]) -> list[dict[str, Any]]:
    """Each param group split into its decayed part and its 0-or-1-dimensional part (no decay)."""
    groups = []
    items = [_materialized(item) for item in params]
    if items and not isinstance(items[0], dict):
        items = [{"params": items}]
    for group in items:
        tensors = group["params"]
        tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        decayed = [p for p in tensors if p.ndim > 1]
        flat = [p for p in tensors if p.ndim <= 1]
        if decayed:
            groups.append({**group, "params": decayed})
        if flat:
            groups.append({**group, "params": flat, "weight_decay": 0.0})
    return groups


def _materialized(item: Any) -> Any:
    """A param group's ``params`` as a list (a generator there would be used up by ``_fusable``)."""
    if isinstance(item, dict) and not isinstance(item.get("params"), (list, tuple, torch.Tensor)):
        return {**item, "params": list(item.get("params", []))}
    return item


def _check_fused(fn: str, fused: bool | None) -> None:
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(
            f"lk.optim.{fn}: fused must be True, False or None (auto), got {short_repr(fused)} "
            f"({type(fused).__name__})"
        )


def adam(
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool | None = None,
) -> OptimizerPreset:
    """Adam: the default for most tasks.

    Args:
        lr: Learning rate.
        weight_decay: L2 penalty added to the gradients.
        betas: Coefficients of the running averages of the gradient and its square.
        fused: ``None`` (default): PyTorch's fused kernel (``torch.optim.Adam(fused=True)``, one
            kernel for all parameters instead of about a dozen operations per parameter) when every
            parameter is a plain floating-point tensor on the CPU or a CUDA GPU, otherwise
            PyTorch's default. The fused step computes the same update up to float rounding and is
            several times faster for small nets (``benchmarks/RESULTS.md``). ``False``: never.

    Example:
        >>> preset = lk.optim.adam(lr=3e-4)
        >>> preset
        lk.optim.adam(lr=0.0003, weight_decay=0.0, betas=(0.9, 0.999), fused=None)
        >>> optimizer = preset(net.parameters())  # what TaskModule does in configure_optimizers
        >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
        ('Adam', 0.0003)
    """
    _lr("adam", "lr", lr)
    _non_negative("adam", "weight_decay", weight_decay)
    betas = _check_betas("adam", betas)
    _check_fused("adam", fused)
    kwargs = {"lr": lr, "weight_decay": weight_decay, "betas": betas, "fused": fused}
    return OptimizerPreset("adam", torch.optim.Adam, kwargs)


def adamw(
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool | None = None,
    filter_bias_and_norm: bool = True,
) -> OptimizerPreset:
    """AdamW: Adam with decoupled weight decay; the usual choice for transformers and fine-tuning.

    ``fused``: as for :func:`adam`. ``filter_bias_and_norm`` (default True): no weight decay on
    biases and normalisation weights (every parameter with one dimension or fewer), as timm,
    fastai and Hugging Face do; False decays every parameter.

    Example:
        >>> optimizer = lk.optim.adamw(lr=1e-3, weight_decay=0.05)(net.parameters())
        >>> [group["weight_decay"] for group in optimizer.param_groups]  # weights, then biases
        [0.05, 0.0]
    """
    _lr("adamw", "lr", lr)
    _non_negative("adamw", "weight_decay", weight_decay)
    betas = _check_betas("adamw", betas)
    _check_fused("adamw", fused)
    check_bool("lk.optim.adamw", "filter_bias_and_norm", filter_bias_and_norm)
    kwargs = {"lr": lr, "weight_decay": weight_decay, "betas": betas, "fused": fused}
    return OptimizerPreset("adamw", torch.optim.AdamW, kwargs, filter_bias_and_norm)


def sgd(
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    fused: bool | None = None,
    filter_bias_and_norm: bool = True,
) -> OptimizerPreset:
    """SGD with momentum: the classic choice for CNNs trained from scratch.

    ``fused``: as for :func:`adam`. ``filter_bias_and_norm``: as for :func:`adamw` (it matters
    only with a ``weight_decay`` above 0).

    Example:
        >>> module = lk.ClassificationModule(net, 3, optimizer=lk.optim.sgd(lr=0.1, nesterov=True))
        >>> lk.optim.sgd(lr=0.1, weight_decay=5e-4)
        lk.optim.sgd(lr=0.1, momentum=0.9, weight_decay=0.0005, nesterov=False, fused=None, filter_bias_and_norm=True)
    """
    _lr("sgd", "lr", lr)
    _unit("sgd", "momentum", momentum)
    _non_negative("sgd", "weight_decay", weight_decay)
    check_bool("lk.optim.sgd", "nesterov", nesterov)
    if nesterov and momentum == 0:
        raise ValueError(
            f"lk.optim.sgd: nesterov=True needs a momentum > 0, got momentum={momentum!r}"
        )
    _check_fused("sgd", fused)
    check_bool("lk.optim.sgd", "filter_bias_and_norm", filter_bias_and_norm)
    kwargs = {
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "fused": fused,
    }
    return OptimizerPreset("sgd", torch.optim.SGD, kwargs, filter_bias_and_norm)


def rmsprop(
    lr: float = 1e-3, alpha: float = 0.99, momentum: float = 0.0, weight_decay: float = 0.0
) -> OptimizerPreset:
    """RMSprop: an option for regression and recurrent nets.

    Example:
        >>> optimizer = lk.optim.rmsprop(lr=1e-3)(net.parameters())
        >>> type(optimizer).__name__
        'RMSprop'
    """
    _lr("rmsprop", "lr", lr)
    check_float(
        "lk.optim.rmsprop", "alpha", alpha, 0.0, 1.0, min_inclusive=False, max_inclusive=False
    )
    _unit("rmsprop", "momentum", momentum)
    _non_negative("rmsprop", "weight_decay", weight_decay)
    kwargs = {"lr": lr, "alpha": alpha, "momentum": momentum, "weight_decay": weight_decay}
    return OptimizerPreset("rmsprop", torch.optim.RMSprop, kwargs)


# --- schedulers ---------------------------------------------------------------------------------


def plateau(
    patience: int = 5, factor: float = 0.5, monitor: str = "val/loss", mode: str = "min"
) -> SchedulerPreset:
    """ReduceLROnPlateau: multiply the LR by ``factor`` when ``monitor`` stops improving.

    Example:
        >>> scheduler = lk.optim.plateau(patience=3, monitor="val/acc", mode="max")
        >>> module = lk.ClassificationModule(net, 3, scheduler=scheduler)
        >>> scheduler.monitor  # Lightning steps it with this logged metric after validation
        'val/acc'
    """
    owner = "lk.optim.plateau"
    check_int(owner, "patience", patience, minimum=0)
    check_float(owner, "factor", factor, 0.0, 1.0, min_inclusive=False, max_inclusive=False)
    check_instance(owner, "monitor", monitor, str, "the name of a logged metric (str)")
    if not monitor:
        raise ValueError(f"{owner}: monitor must name a logged metric such as 'val/loss', got ''")
    check_choice(owner, "mode", mode, ("min", "max"))

    def build(optimizer: Optimizer, total_steps: int | None) -> Any:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience
        )

    kwargs = {"patience": patience, "factor": factor, "monitor": monitor, "mode": mode}
    return SchedulerPreset("plateau", build, kwargs, interval="epoch", monitor=monitor)


def step(step_size: int = 30, gamma: float = 0.1) -> SchedulerPreset:
    """StepLR: multiply the LR by ``gamma`` every ``step_size`` epochs.

    Example:
        >>> module = lk.ClassificationModule(net, 3, scheduler=lk.optim.step(10, gamma=0.5))
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> scheduler = lk.optim.step(step_size=10, gamma=0.5)(optimizer)
        >>> for epoch in range(10):
        ...     scheduler.step()
        >>> scheduler.get_last_lr()
        [0.05]
    """
    check_int("lk.optim.step", "step_size", step_size, minimum=1)
    check_float("lk.optim.step", "gamma", gamma, minimum=0.0, min_inclusive=False)

    def build(optimizer: Optimizer, total_steps: int | None) -> LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)

    return SchedulerPreset("step", build, {"step_size": step_size, "gamma": gamma})


def cosine(min_lr_ratio: float = 0.0) -> SchedulerPreset:
    """Cosine annealing over the whole run (stepped every batch), down to ``min_lr_ratio * lr``.

    Example:
        >>> module = lk.ClassificationModule(net, 3, scheduler=lk.optim.cosine(min_lr_ratio=0.01))
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> scheduler = lk.optim.cosine()(optimizer, total_steps=100)  # a TaskModule passes these
        >>> for batch in range(50):
        ...     scheduler.step()
        >>> scheduler.get_last_lr()  # half-way: half the LR
        [0.05...]
    """
    _check_ratio("cosine", min_lr_ratio)

    def build(optimizer: Optimizer, total_steps: int | None) -> LRScheduler:
        assert total_steps is not None
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, _cosine_factor(total_steps, 0, min_lr_ratio)
        )

    return SchedulerPreset(
        "cosine", build, {"min_lr_ratio": min_lr_ratio}, interval="step", needs_total_steps=True
    )


def warmup_cosine(warmup: float = 0.05, min_lr_ratio: float = 0.0) -> SchedulerPreset:
    """Linear warmup, then cosine annealing; stepped every batch.

    Args:
        warmup: Warmup length, as a fraction of the run (``< 1``) or a number of steps (``>= 1``).
        min_lr_ratio: The final LR as a fraction of the peak LR.

    Example:
        >>> module = lk.ClassificationModule(net, 3, scheduler=lk.optim.warmup_cosine(warmup=0.1))
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> scheduler = lk.optim.warmup_cosine(warmup=0.1)(optimizer, total_steps=100)
        >>> scheduler.get_last_lr()  # the first of 10 warmup steps: a tenth of the LR
        [0.01...]
    """
    _non_negative("warmup_cosine", "warmup", warmup)
    if warmup >= 1 and warmup != int(warmup):
        raise ValueError(
            f"lk.optim.warmup_cosine: warmup must be a fraction of the run (< 1) or a whole "
            f"number of steps (>= 1), got {warmup!r}"
        )
    _check_ratio("warmup_cosine", min_lr_ratio)

    def build(optimizer: Optimizer, total_steps: int | None) -> LRScheduler:
        assert total_steps is not None
        warmup_steps = int(warmup * total_steps) if warmup < 1 else int(warmup)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, _cosine_factor(total_steps, warmup_steps, min_lr_ratio)
        )

    kwargs = {"warmup": warmup, "min_lr_ratio": min_lr_ratio}
    return SchedulerPreset("warmup_cosine", build, kwargs, interval="step", needs_total_steps=True)


def onecycle(max_lr: float, pct_start: float = 0.3) -> SchedulerPreset:
    """OneCycleLR: warm up to ``max_lr`` and anneal over the run; stepped every batch. Param
    groups at lower learning rates (``lr_multipliers``, fine-tuning) peak in proportion.

    Example:
        >>> module = lk.ClassificationModule(
        ...     net, 3, optimizer=lk.optim.sgd(), scheduler=lk.optim.onecycle(max_lr=0.1)
        ... )
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        >>> lk.optim.onecycle(max_lr=0.1)(optimizer, total_steps=100).get_last_lr()  # max_lr / 25
        [0.004...]
    """
    _lr("onecycle", "max_lr", max_lr)
    check_float(
        "lk.optim.onecycle",
        "pct_start",
        pct_start,
        0.0,
        1.0,
        min_inclusive=False,
        max_inclusive=False,
    )

    def build(optimizer: Optimizer, total_steps: int | None) -> LRScheduler:
        # Param groups at different learning rates (discriminative LRs, fine-tuning) keep their
        # ratios: the group at the highest rate peaks at max_lr, the others in proportion.
        rates = [group["lr"] for group in optimizer.param_groups]
        top = max(rates)
        peaks = [max_lr * rate / top for rate in rates] if top > 0 else max_lr
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct_start
        )

    kwargs = {"max_lr": max_lr, "pct_start": pct_start}
    return SchedulerPreset("onecycle", build, kwargs, interval="step", needs_total_steps=True)


def _cosine_factor(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
