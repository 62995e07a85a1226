"""MLP: a multilayer perceptron for tabular data and flattened inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightkit._recompute import run_blocks
from lightkit._validation import check_float, check_int, check_positive_int, check_sequence


class MLP(nn.Module):
    """Linear–ReLU(–Dropout) blocks followed by a linear head.

    Inputs of any shape ``N×...`` are flattened to ``N×in_features``. Set
    ``gradient_checkpointing = True`` (or pass ``gradient_checkpointing=True`` to a task) to
    recompute each block's activations in backward instead of storing them.

    Args:
        in_features: Number of input features (after flattening).
        out_features: Number of outputs (classes, labels or regression targets).
        hidden: Width of each hidden layer; ``()`` gives a linear model.
        dropout: Dropout probability after each hidden layer.

    Example:
        >>> net = lk.models.MLP(64, 10, hidden=(256, 128), dropout=0.1)
        >>> net(torch.randn(4, 64)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (128, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("MLP", "in_features", in_features, minimum=1)
        check_int("MLP", "out_features", out_features, minimum=1)
        hidden = check_sequence("MLP", "hidden", hidden, check_positive_int)
        check_float("MLP", "dropout", dropout, 0.0, 1.0, max_inclusive=False)
        self.init_args = {
            "in_features": in_features,
            "out_features": out_features,
            "hidden": list(hidden),
            "dropout": dropout,
        }
        self.in_features = in_features
        self.gradient_checkpointing = False
        blocks: list[nn.Module] = []
        width = in_features
        for h in hidden:
            block = [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*block))
            width = h
        blocks.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"MLP: expected {self.in_features} input features per sample, got input of shape "
                f"{tuple(x.shape)} ({x.shape[1]} features after flattening)"
            )
        return run_blocks(self.layers, x, self.gradient_checkpointing and self.training)
