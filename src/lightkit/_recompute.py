"""Activation (gradient) checkpointing helpers shared by lightkit's models and TaskModule."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_BATCHNORM = (nn.modules.batchnorm._BatchNorm,)


def checkpoint_block(block: nn.Module, *args: Any) -> Any:
    """Run ``block(*args)`` without storing its activations; they are recomputed in backward.

    BatchNorm running statistics are updated once, as in a plain forward: during the recomputation
    they are frozen (momentum 0, counter restored), so a checkpointed run keeps the same buffers.
    """
    return checkpoint(
        block,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _frozen_batchnorm_stats(block)),
    )


def run_blocks(blocks: Iterable[nn.Module], x: Any, enabled: bool) -> Any:
    """Apply ``blocks`` in order, checkpointing each when ``enabled`` and gradients are needed."""
    use = enabled and torch.is_grad_enabled()
    for block in blocks:
        x = checkpoint_block(block, x) if use else block(x)
    return x


@contextlib.contextmanager
def _frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    saved = []
    for m in module.modules():
        if isinstance(m, _BATCHNORM) and m.training and m.track_running_stats:
            counter = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
            saved.append((m, m.momentum, counter))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, counter in saved:
            m.momentum = momentum
            if counter is not None:
                m.num_batches_tracked.copy_(counter)
