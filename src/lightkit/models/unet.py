"""UNet: the classic encoder-decoder with skip connections for semantic segmentation."""

from __future__ import annotations

import torch
from torch import nn

from lightkit._recompute import checkpoint_block
from lightkit._validation import check_int


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    """Upsample ×2, concatenate the skip connection, double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = _double_conv(out_channels * 2, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """UNet (Ronneberger et al., 2015) with BatchNorm: ``N×in_channels×H×W`` → ``N×num_classes×H×W``.

    ``depth`` downsamplings, each halving the size and doubling the width (``base`` channels at
    full resolution), then as many upsamplings with skip connections. H and W must be divisible by
    ``2**depth``. ``gradient_checkpointing = True`` recomputes each block's activations in backward.

    Args:
        in_channels: Channels of the input images.
        num_classes: Output channels (classes, background included).
        base: Channels of the first block.
        depth: Number of downsampling steps.

    Example:
        >>> net = lk.models.UNet(in_channels=3, num_classes=3, base=16, depth=3)
        >>> net(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, in_channels: int, num_classes: int, base: int = 16, depth: int = 3) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("base", base),
            ("depth", depth),
        ):
            check_int("UNet", name, value, minimum=1)
        self.init_args = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "base": base,
            "depth": depth,
        }
        self.in_channels = in_channels
        self.depth = depth
        self.gradient_checkpointing = False
        widths = [base * 2**i for i in range(depth + 1)]
        self.stem = _double_conv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(widths[i], widths[i + 1]))
            for i in range(depth)
        )
        self.ups = nn.ModuleList(_Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.depth
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet: expected input of shape N×{self.in_channels}×H×W, got {tuple(x.shape)}"
            )
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"UNet: height and width must be divisible by 2**depth = {factor} "
                f"(depth={self.depth}), got {x.shape[2]}×{x.shape[3]}; resize or pad the images"
            )
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()

        def run(block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
            return checkpoint_block(block, *args) if use_ckpt else block(*args)

        skips = [run(self.stem, x)]
        for down in self.downs:
            skips.append(run(down, skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = run(up, x, skips.pop())
        return self.head(x)
