"""backbone(): any torchvision classifier with its head and stem adapted to your data."""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from lightkit._validation import check_instance, check_int


def backbone(
    name: str, num_classes: int, in_channels: int = 3, weights: str | None = None
) -> nn.Module:
    """A ``torchvision.models`` classifier with a new ``num_classes`` head and an adapted stem.

    The last ``nn.Linear`` layer (the classifier head) is replaced by a fresh one with
    ``num_classes`` outputs. When ``in_channels`` is not 3, the first convolution is replaced by one
    taking ``in_channels``; with pretrained ``weights`` its kernel starts as the mean of the RGB
    kernels, so grayscale or multispectral inputs still benefit from pretraining. Nothing is
    downloaded unless you pass ``weights``.

    Args:
        name: A torchvision model name, for example ``"resnet18"`` or ``"efficientnet_b0"``
            (``torchvision.models.list_models(torchvision.models)`` lists them).
        num_classes: Outputs of the new head.
        in_channels: Channels of your images.
        weights: Pretrained weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``), or None.

    Returns:
        The plain torchvision ``nn.Module``.

    Example:
        >>> net = lk.models.backbone("resnet18", num_classes=10, in_channels=1)
        >>> net(torch.randn(2, 1, 64, 64)).shape
        torch.Size([2, 10])
    """
    check_instance("backbone", "name", name, str, "a torchvision model name (str)")
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ValueError(
            f"backbone: unknown torchvision classifier {name!r}; expected one of "
            f"{', '.join(sorted(available))}"
        )
    check_int("backbone", "num_classes", num_classes, minimum=1)
    check_int("backbone", "in_channels", in_channels, minimum=1)
    _check_weights(name, weights)
    model = torchvision.models.get_model(name, weights=weights)

    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"backbone: {name!r} has no nn.Linear classifier head to replace")
    head_name, head = linears[-1]
    _set_submodule(model, head_name, nn.Linear(head.in_features, num_classes))

    if in_channels != 3:
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"backbone: {name!r} has no Conv2d stem to adapt to {in_channels}")
        stem_name, stem = convs[0]
        new = nn.Conv2d(
            in_channels,
            stem.out_channels,
            stem.kernel_size,
            stride=stem.stride,
            padding=stem.padding,
            dilation=stem.dilation,
            groups=1,
            bias=stem.bias is not None,
        )
        if weights is not None:
            with torch.no_grad():
                mean = stem.weight.mean(dim=1, keepdim=True)
                new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * 3 / in_channels)
                if stem.bias is not None:
                    new.bias.copy_(stem.bias)
        _set_submodule(model, stem_name, new)

    # Recorded so a checkpoint can rebuild the architecture; the weights come from the checkpoint.
    model.init_spec = {
        "class_path": "lightkit.models.backbone",
        "init_args": {"name": name, "num_classes": num_classes, "in_channels": in_channels},
    }
    return model


def _check_weights(name: str, weights: object) -> None:
    """``weights`` is None, or names weights of this model (checked before anything downloads).

    torchvision's legacy interface reads any other truthy value (``True``, ``5``) as "download the
    ImageNet weights", so those are refused here.
    """
    if weights is None:
        return
    check_instance(
        "backbone",
        "weights",
        weights,
        (str, WeightsEnum),
        "a weights name such as 'DEFAULT', or None",
    )
    enum = torchvision.models.get_model_weights(name)
    try:
        enum.verify(weights)
    except (KeyError, ValueError, TypeError) as err:
        names = ", ".join(dict.fromkeys(["DEFAULT", *enum.__members__]))
        raise ValueError(
            f"backbone: weights must be None or one of {names} for {name!r}, got {weights!r}"
        ) from err


def _set_submodule(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent: Any = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
