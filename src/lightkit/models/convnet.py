"""ConvNet: a small, fast convolutional classifier for images of any size from 8×8 up."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightkit._recompute import run_blocks
from lightkit._validation import check_float, check_int, check_positive_int, check_sequence


class ConvNet(nn.Module):
    """Conv3×3–BatchNorm–ReLU blocks, 2× max-pooling between blocks, global average pooling, a head.

    ``gradient_checkpointing = True`` recomputes each block's activations in backward.

    Args:
        in_channels: Channels of the input images (1 for grayscale, 3 for RGB).
        num_classes: Number of outputs.
        widths: Channels of each block; the spatial size halves between blocks.
        dropout: Dropout probability before the linear head.

    Example:
        >>> net = lk.models.ConvNet(in_channels=1, num_classes=10)
        >>> net(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_int("ConvNet", "in_channels", in_channels, minimum=1)
        check_int("ConvNet", "num_classes", num_classes, minimum=1)
        widths = check_sequence("ConvNet", "widths", widths, check_positive_int, min_length=1)
        check_float("ConvNet", "dropout", dropout, 0.0, 1.0, max_inclusive=False)
        self.init_args = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "widths": list(widths),
            "dropout": dropout,
        }
        self.in_channels = in_channels
        self.gradient_checkpointing = False
        blocks: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(widths):
            if i > 0:
                # ceil_mode keeps odd sizes (and 1×1 maps) valid instead of shrinking them to zero.
                blocks.append(nn.MaxPool2d(2, ceil_mode=True))
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(prev, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                )
            )
            prev = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(prev, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvNet: expected input of shape N×{self.in_channels}×H×W, got {tuple(x.shape)}"
            )
        x = run_blocks(self.features, x, self.gradient_checkpointing and self.training)
        return self.head(x)
