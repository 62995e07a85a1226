"""OOMMicrobatching: on out-of-memory, split the batch into microbatches and retry it in place.

Composer's automatic microbatching, on Lightning's public hooks. The callback wraps the
module's ``training_step``, ``validation_step``/``test_step``, ``backward`` and
``optimizer_zero_grad`` for the length of a run (instance attributes, removed at teardown, so a
user's own overrides are what it wraps). Until an out-of-memory error, every step is the
module's own and costs one ``try`` more. After one:

* **training**: the same batch is cut into microbatches of half its rows (halved again while
  they do not fit, down to one row); each microbatch's loss, weighted by its share of the rows,
  is backpropagated inside the step, so the summed gradient is the whole batch's. The step then
  returns the batch's loss with a zero-valued term that touches every trainable parameter: the
  backward Lightning runs on it adds nothing and, under DDP, is the one gradient all-reduce of
  the step, exactly as a normal step. So no optimizer step is repeated or lost, the effective
  batch and the LR schedule are unchanged, and ranks need not agree on the microbatch size (a
  rank that ran out of memory alone splits alone; no collective is added);
* **validation and testing**: the batch is evaluated in microbatches and their outputs joined
  (losses weighted by rows, per-sample tensors concatenated);
* the sizes are kept for the rest of the run and saved in the checkpoint (this callback's
  state), so a resumed run starts at the size that fit.
"""

from __future__ import annotations

import functools
import gc
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.memory import is_oom_error
from lightning.pytorch.utilities.model_helpers import is_overridden

from lightkit._lightning import skip_unused_step_hooks, training_batch_idx

ADVICE = (
    "use a smaller model, mixed precision (precision='bf16-mixed' or '16-mixed'), gradient "
    "checkpointing (gradient_checkpointing=True on lightkit tasks), or a device with more memory"
)


class MicrobatchError(RuntimeError):
    """Out of memory where splitting the batch cannot help (one row, or an unsplittable batch).

    :class:`OOMMicrobatching` raises it, from the out-of-memory error, with advice; it is a
    ``RuntimeError``, like the out-of-memory errors it replaces.

    Example:
        >>> issubclass(lk.tasks.MicrobatchError, RuntimeError)
        True
        >>> def fit_or_explain(trainer, module, dm):
        ...     try:
        ...         trainer.fit(module, datamodule=dm)
        ...     except lk.tasks.MicrobatchError as error:  # one row per microbatch did not fit
        ...         print(f"Use a smaller net or smaller inputs: {error}")
    """


@skip_unused_step_hooks
class OOMMicrobatching(Callback):
    """Recover from out-of-memory errors by splitting the batch, in place, losing no step.

    On an out-of-memory error (CUDA's or the CPU allocator's) in a training step, its forward or
    its backward, the same batch is retried in microbatches of half the rows, halving until they
    fit, with each microbatch's loss weighted by its share of the rows. The gradient, the
    optimizer step, the effective batch and the learning-rate schedule are those of the whole
    batch (equal up to float rounding), and no completed step is computed twice. Validation and
    test batches are split the same way. The microbatch sizes are kept for the rest of the run
    and in the checkpoint. ``lk.fit`` adds it (``oom_retry=True``, the default), as does
    ``lk.make_trainer(oom_retry=True)``; it works on any LightningModule with automatic
    optimization whose steps take a batch of tensors with the samples along the first
    dimension (tuples, lists and dicts of them).

    Under DDP, a step that itself communicates (``SyncBatchNorm``, ``self.log(...,
    sync_dist=True)`` on every step) must not be split on one rank alone: its collectives would
    no longer pair up across ranks; turn ``oom_retry`` off for such models.

    What differs from the whole batch: BatchNorm layers compute their batch statistics over
    each microbatch (normalisation then sees fewer rows, and running statistics are updated once
    per microbatch); a loss that is not a mean over the rows (a sum, a contrastive loss) is
    weighted as if it were. Under DDP, each rank splits on its own and gradients are averaged
    once per step as usual; an out-of-memory error inside Lightning's own backward pass (the
    first one of a step, before any split) is recovered on one process but ends a multi-process
    run, since the other ranks are already inside the gradient all-reduce (in the forward pass,
    where such errors usually happen, any rank recovers). A backward-pass error in the middle of
    gradient accumulation (``accumulate_grad_batches`` > 1, not its first batch) cannot be undone
    and is raised. A batch redone after an error in backward counts twice in that epoch's
    training metrics (never in the loss, the gradient or the weights). At one row per
    microbatch the error is raised with advice.

    Example:
        >>> trainer = lk.make_trainer(max_epochs=1, oom_retry=True, logger=False)
        >>> any(isinstance(c, lk.tasks.OOMMicrobatching) for c in trainer.callbacks)
        True
        >>> trainer = L.Trainer(callbacks=[lk.tasks.OOMMicrobatching()], logger=False)  # or by hand
    """

    def __init__(self) -> None:
        #: Rows per training / evaluation microbatch; None while whole batches fit.
        self.train_microbatch: int | None = None
        self.eval_microbatch: int | None = None
        self._originals: dict[str, Callable[..., Any]] = {}
        self._module: L.LightningModule | None = None
        self._skip_zero_grad = False  # the microbatched step zeroed the gradients itself
        self._inner_backward = False  # a microbatch's backward, not Lightning's
        self._pending: tuple[Callable[..., Any], tuple, dict] | None = None  # the last step
        self._rank, self._world_size = 0, 1

    # --- installing the wrappers -----------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._originals:
            return
        for name in _WRAPPED:  # left by a run that ended in an exception elsewhere
            if getattr(pl_module.__dict__.get(name), "_lightkit_microbatching", False):
                del pl_module.__dict__[name]
        hooks: dict[str, Callable[..., Any]] = {}
        if pl_module.automatic_optimization:
            hooks["training_step"] = self._training_step
            hooks["backward"] = self._backward
            hooks["optimizer_zero_grad"] = self._optimizer_zero_grad
        for name in ("validation_step", "test_step"):
            if is_overridden(name, pl_module):
                hooks[name] = functools.partial(self._evaluation_step, name)
        for name, wrapper in hooks.items():
            original = getattr(pl_module, name)
            self._originals[name] = original
            setattr(pl_module, name, _hook(wrapper, trainer, original))
        self._module = pl_module
        self._rank, self._world_size = trainer.global_rank, trainer.world_size

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.teardown(trainer, pl_module, "")  # Lightning calls no teardown after an exception

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        module = self._module
        if module is not None:
            for name in self._originals:
                module.__dict__.pop(name, None)
        self._originals, self._module, self._pending = {}, None, None

    def state_dict(self) -> dict[str, Any]:
        return {"train_microbatch": self.train_microbatch, "eval_microbatch": self.eval_microbatch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Read from a checkpoint file: only a positive int or None is taken.
        for key in ("train_microbatch", "eval_microbatch"):
            value = state_dict.get(key)
            ok = value is None or (type(value) is int and value >= 1)
            setattr(self, key, value if ok else None)

    # --- training --------------------------------------------------------------------------------

    def _training_step(
        self, trainer: L.Trainer, original: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        size = self.train_microbatch
        if size is not None:
            batch, batch_idx, call = _step_call(trainer, original, args, kwargs)
            rows = _rows(batch)
            if rows is not None and rows > size:
                return self._microbatched(trainer, call, batch, batch_idx, rows, size)
        # The usual case: nothing more than a call and a try.
        failure = ""
        try:
            out = original(*args, **kwargs)
        except RuntimeError as err:
            if not is_oom_error(err):
                raise
            failure = _summary(err)
        if not failure:
            self._pending = (original, args, kwargs)  # for an OOM in backward
            return out
        _free_memory()
        batch, batch_idx, call = _step_call(trainer, original, args, kwargs)
        rows = _rows(batch)
        size = self._halve("training", rows, failure, "train_microbatch")
        assert rows is not None
        return self._microbatched(trainer, call, batch, batch_idx, rows, size)

    def _microbatched(
        self, trainer: L.Trainer, call: Callable[[Any], Any], batch: Any, batch_idx: int,
        rows: int, size: int, inside_backward: bool = False,
    ) -> Any:  # fmt: skip
        """Forward and backward of ``batch`` in microbatches; returns what the step returns."""
        module = self._module
        assert module is not None
        accumulate = trainer.accumulate_grad_batches
        first_in_cycle = batch_idx % accumulate == 0
        if first_in_cycle:  # Lightning zeroes after the step, which would drop our gradients
            self._zero_grad(trainer, batch_idx)
            self._skip_zero_grad = not inside_backward
        start, total, out = 0, None, None
        while start < rows:
            stop = min(start + size, rows)
            phase, failure = "forward", ""
            try:
                out = call(_slice(batch, start, stop, rows))
                loss = _loss_of(out)
                weight = (stop - start) / rows
                phase = "backward"
                self._inner_backward = True
                trainer.strategy.backward(loss * (weight / accumulate), None)
                part = loss.detach().float() * weight
                total = part if total is None else total + part
                start = stop
            except RuntimeError as err:
                if not is_oom_error(err):
                    raise
                failure = _summary(err)
            finally:
                self._inner_backward = False
            if not failure:
                continue
            _free_memory()
            size = self._halve("training", stop - start, failure, "train_microbatch")
            if phase == "backward":  # part of this microbatch's gradient is in .grad already
                if not first_in_cycle:
                    raise MicrobatchError(
                        f"lightkit: out of memory in the backward pass of a microbatch of "
                        f"{stop - start} rows, in the middle of gradient accumulation "
                        f"(batch {batch_idx}): the gradients cannot be restored. {failure}"
                    )
                self._zero_grad(trainer, batch_idx)
                start, total = 0, None  # the batch again, from its first row
        assert total is not None
        if inside_backward:
            return None
        # The loss of the whole batch, plus a zero that reaches every trainable parameter: the
        # backward Lightning runs on it adds nothing, and under DDP it is the step's all-reduce.
        # Only parameters the step used (they hold a gradient now): an unused one keeps no
        # gradient, so the optimizer leaves it alone as in a whole-batch step.
        used = [p for p in module.parameters() if p.requires_grad and p.grad is not None]
        zero = sum((p.reshape(-1)[:1].sum() for p in used), torch.zeros((), device=total.device))
        result = total.to(zero.dtype) + zero * 0.0
        _record(module, "train", result, batch)
        if isinstance(out, Mapping):
            return {**out, "loss": result}
        return result

    def _backward(
        self, trainer: L.Trainer, original: Callable[..., Any], loss: torch.Tensor,
        *args: Any, **kwargs: Any,
    ) -> None:  # fmt: skip
        pending, self._pending = self._pending, None
        if self._inner_backward or pending is None:
            original(loss, *args, **kwargs)
            return
        failure = ""
        try:
            original(loss, *args, **kwargs)
        except RuntimeError as err:
            if not is_oom_error(err):
                raise
            failure = _summary(err)
        if not failure:
            return
        batch, batch_idx, call = _step_call(trainer, *pending)
        del loss
        _free_memory()
        rows = _rows(batch)
        if trainer.world_size > 1 or batch_idx % trainer.accumulate_grad_batches != 0:
            why = (
                "the other processes are already inside the gradient all-reduce"
                if trainer.world_size > 1
                else "the gradients accumulated since the last optimizer step cannot be restored"
            )
            raise MicrobatchError(
                f"lightkit: out of memory in the backward pass of batch {batch_idx}, and {why}; "
                f"resume the run (lk.fit(..., resume=True)) with a smaller batch_size. {failure}"
            )
        size = self._halve("training", rows, failure, "train_microbatch")
        self._microbatched(trainer, call, batch, batch_idx, rows or 1, size, inside_backward=True)

    def _optimizer_zero_grad(
        self, trainer: L.Trainer, original: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        if self._skip_zero_grad:
            self._skip_zero_grad = False
            return
        original(*args, **kwargs)

    def _zero_grad(self, trainer: L.Trainer, batch_idx: int) -> None:
        """The module's own ``optimizer_zero_grad``, as Lightning would call it."""
        self._originals["optimizer_zero_grad"](
            trainer.current_epoch, batch_idx, trainer.optimizers[0]
        )

    # --- validation and testing ------------------------------------------------------------------

    def _evaluation_step(
        self, name: str, trainer: L.Trainer, original: Callable[..., Any], *args: Any,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        size = self.eval_microbatch
        batch: Any = None
        rows: int | None = None
        if size is not None:
            batch, _, call = _step_call(trainer, original, args, kwargs)
            rows = _rows(batch)
        if size is None or rows is None or rows <= size:
            failure = ""
            try:
                return original(*args, **kwargs)
            except RuntimeError as err:
                if not is_oom_error(err):
                    raise
                failure = _summary(err)
            _free_memory()
            batch, _, call = _step_call(trainer, original, args, kwargs)
            rows = _rows(batch)
            size = self._halve(name.split("_")[0], rows, failure, "eval_microbatch")
        assert rows is not None
        outputs, weights, start = [], [], 0
        while start < rows:
            stop = min(start + size, rows)
            failure = ""
            try:
                outputs.append(call(_slice(batch, start, stop, rows)))
                weights.append((stop - start) / rows)
                start = stop
            except RuntimeError as err:
                if not is_oom_error(err):
                    raise
                failure = _summary(err)
            if failure:
                _free_memory()
                size = self._halve(name.split("_")[0], stop - start, failure, "eval_microbatch")
        joined = _join(outputs, weights)
        loss = joined.get("loss") if isinstance(joined, Mapping) else joined
        if isinstance(loss, torch.Tensor) and self._module is not None:
            _record(self._module, "val" if name == "validation_step" else "test", loss, batch)
        return joined

    # --- sizes -----------------------------------------------------------------------------------

    def _halve(self, stage: str, rows: int | None, failure: str, attribute: str) -> int:
        if rows is None:
            raise MicrobatchError(
                f"lightkit: out of memory in a {stage} step whose batch cannot be split into "
                f"microbatches (it holds no tensors with the samples along their first "
                f"dimension, or tensors of different lengths); {ADVICE}. {failure}"
            )
        if rows <= 1:
            raise MicrobatchError(
                f"lightkit: out of memory in a {stage} step even at a microbatch of one row; "
                f"{ADVICE}. {failure}"
            )
        size = rows // 2
        setattr(self, attribute, size)
        # Every rank says it: under DDP the rank that ran out of memory may not be rank 0.
        where = f" on rank {self._rank}" if self._world_size > 1 else ""
        warnings.warn(
            f"lightkit: out of memory in a {stage} step of {rows} rows{where}; continuing in "
            f"microbatches of {size} rows (kept for the rest of the run and in its checkpoints)",
            stacklevel=2,
        )
        return size


def _hook(wrapper: Callable[..., Any], trainer: L.Trainer, original: Callable[..., Any]) -> Any:
    """``wrapper`` bound to ``trainer`` and ``original`` as a plain function: Lightning reads a
    step's signature on every batch, which costs several times more for a ``functools.partial``.
    """

    def hook(*args: Any, **kwargs: Any) -> Any:
        return wrapper(trainer, original, *args, **kwargs)

    functools.update_wrapper(hook, original)
    hook._lightkit_microbatching = True  # type: ignore[attr-defined]
    return hook


_WRAPPED = ("training_step", "backward", "optimizer_zero_grad", "validation_step", "test_step")


def _step_call(
    trainer: L.Trainer, original: Callable[..., Any], args: tuple, kwargs: dict
) -> tuple[Any, int, Callable[[Any], Any]]:
    """The batch and its index from a step's arguments, however the step is declared
    (``(batch)``, ``(batch, batch_idx)``, keywords), and a call of the step on another batch."""
    if args:
        batch, rest = args[0], args[1:]

        def call(piece: Any) -> Any:
            return original(piece, *rest, **kwargs)

    else:
        batch = kwargs.get("batch")

        def call(piece: Any) -> Any:
            return original(**{**kwargs, "batch": piece})

    index = args[1] if len(args) > 1 else kwargs.get("batch_idx")
    if not isinstance(index, int):  # a step declared without batch_idx: the loop's own
        index = training_batch_idx(trainer) if trainer.training else 0
    return batch, int(index), call


# --- batches ---------------------------------------------------------------------------------------


def _rows(batch: Any) -> int | None:
    """The number of samples in ``batch`` (the first dimension its tensors share), or None."""
    sizes = {t.shape[0] for t in _tensors(batch) if t.ndim > 0}
    return sizes.pop() if len(sizes) == 1 else None


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for value in batch.values() for t in _tensors(value)]
    if isinstance(batch, (tuple, list)):
        return [t for value in batch for t in _tensors(value)]
    return []


def _slice(batch: Any, start: int, stop: int, rows: int) -> Any:
    """Rows ``start:stop`` of every tensor in ``batch``, and of every list of non-tensors with
    one item per row (file names a loader collated); anything else is kept whole."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.ndim > 0 else batch
    if isinstance(batch, Mapping):
        return type(batch)({k: _slice(v, start, stop, rows) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_slice(v, start, stop, rows) for v in batch))
    if isinstance(batch, (tuple, list)):
        if len(batch) == rows and not any(_tensors(v) for v in batch):
            return batch[start:stop]  # one item per sample: paths, ids, captions
        return type(batch)(_slice(v, start, stop, rows) for v in batch)
    return batch


def _loss_of(out: Any) -> torch.Tensor:
    loss = out.get("loss") if isinstance(out, Mapping) else out
    if not isinstance(loss, torch.Tensor):
        raise MicrobatchError(
            "lightkit: a microbatched training step must return its loss (a tensor, or a dict "
            f"with 'loss'), got {type(out).__name__}"
        )
    return loss


def _join(outputs: list[Any], weights: list[float]) -> Any:
    """Microbatch outputs as one batch's: scalars averaged by rows, per-sample tensors joined."""
    first = outputs[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        if first.ndim == 0:
            return sum(o.detach().float() * w for o, w in zip(outputs, weights, strict=True))
        return torch.cat(outputs)
    if isinstance(first, Mapping):
        return {key: _join([o[key] for o in outputs], weights) for key in first}
    return outputs[-1]


def _record(module: Any, stage: str, loss: torch.Tensor, batch: Any) -> None:
    """A lightkit task's bookkeeping sees the whole batch's loss and size, not the last piece's."""
    state = getattr(module, "_task_state", None)
    if state is None or not hasattr(module, "unpack_batch"):
        return
    try:
        x = module.unpack_batch(batch)[0]
    except (ValueError, TypeError):
        return
    state.record_step(stage, loss.detach(), x)


def _summary(err: BaseException) -> str:
    """The first line of an out-of-memory error, kept as text so the error and its frames go."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["MicrobatchError", "OOMMicrobatching"]
