"""backbone(): any torchvision classifier with its head and stem adapted to your data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from lightkit._validation import check_instance, check_int
from lightkit.checkpointing import load_checkpoint

_STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
_TIMM = "timm/"


def backbone(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    weights: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """A ``torchvision.models`` (or timm) classifier with a new ``num_classes`` head and an
    adapted stem.

    The last ``nn.Linear`` layer (the classifier head) is replaced by a fresh one with
    ``num_classes`` outputs. When ``in_channels`` is not 3, the first convolution is replaced by one
    taking ``in_channels``; with pretrained ``weights`` its kernel starts as the mean of the RGB
    kernels, so grayscale or multispectral inputs still benefit from pretraining. Nothing is
    ever downloaded.

    Args:
        name: A torchvision model name, for example ``"resnet18"`` or ``"efficientnet_b0"``
            (``torchvision.models.list_models(torchvision.models)`` lists them), or
            ``"timm/<name>"`` for any of timm's models (``"timm/convnext_nano"``,
            ``"timm/resnet18.a1_in1k"``; the ``timm`` extra), built by ``timm.create_model``
            with its own head and stem options.
        num_classes: Outputs of the new head.
        in_channels: Channels of your images.
        weights: Where the starting weights come from:

            * None: random initialisation;
            * a torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``): read from the
              local torch hub cache (``torch.hub.get_dir()/checkpoints/``); when the file is not
              there, the error names the file and the URL to fetch it from on a machine with
              internet access;
            * a path to a ``state_dict`` file (``torch.save(net.state_dict(), path)``, or a
              lightkit checkpoint, whose ``net.`` weights are used) of this architecture,
              loaded with ``weights_only=True``: every layer must be there with its shape, except
              the head (kept fresh when its size differs: the file was trained for other classes)
              and the stem (averaged over the file's channels when they differ).

            For a timm model: None, a ``state_dict`` path as above, or ``"DEFAULT"``: the
            pretrained weights of the name's tag from the local Hugging Face cache (loaded by
            timm, which adapts its head and stem), a clear error naming the file otherwise.
    Returns:
        The plain torchvision (or timm) ``nn.Module``.

    Example:
        >>> net = lk.models.backbone("resnet18", num_classes=10, in_channels=1)
        >>> net(torch.randn(2, 1, 32, 32)).shape  # two 32×32 grayscale images
        torch.Size([2, 10])
    """
    check_instance("backbone", "name", name, str, "a torchvision model name (str)")
    if name.startswith(_TIMM):
        return _timm_backbone(name, num_classes, in_channels, weights)
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ValueError(
            f"backbone: unknown torchvision classifier {name!r}; expected one of "
            f"{', '.join(sorted(available))}"
        )
    check_int("backbone", "num_classes", num_classes, minimum=1)
    check_int("backbone", "in_channels", in_channels, minimum=1)
    state_dict, source = None, ""
    if _is_path(weights):
        source = os.fspath(weights)  # type: ignore[arg-type]
        state_dict = _read_state_dict(source)
        weights = None
    else:
        _check_weights(name, weights)
        _check_cached(name, weights)
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

    if state_dict is not None:
        stem = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
        _load_into(model, state_dict, name, head_name, stem, source)

    # Recorded so a checkpoint can rebuild the architecture; the weights come from the checkpoint.
    model.init_spec = {
        "class_path": "lightkit.models.backbone",
        "init_args": {"name": name, "num_classes": num_classes, "in_channels": in_channels},
    }
    return model


def _timm_backbone(
    name: str, num_classes: int, in_channels: int, weights: str | os.PathLike[str] | None
) -> nn.Module:
    """``timm/<model name>``: a timm model built with its own head and stem options."""
    try:
        import timm
    except ImportError:
        raise ImportError(
            f"backbone: {name!r} is a timm model and timm is not installed: "
            "pip install 'lightkit[timm]'"
        ) from None
    arch = name[len(_TIMM) :]
    if not arch or not timm.is_model(arch):
        raise ValueError(
            f"backbone: unknown timm model {arch!r} in {name!r}; "
            "timm.list_models('<pattern>*') lists them (for example 'timm/resnet18')"
        )
    check_int("backbone", "num_classes", num_classes, minimum=1)
    check_int("backbone", "in_channels", in_channels, minimum=1)
    options: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_channels}
    state_dict, source = None, ""
    if _is_path(weights):
        source = os.fspath(weights)  # type: ignore[arg-type]
        state_dict = _read_state_dict(source)
    elif weights is not None:
        # timm's own loader adapts these (its checkpoint filters, the stem, the head); the file
        # comes from the local Hugging Face cache only.
        options.update(pretrained=True, pretrained_cfg_overlay={"state_dict": _timm_cached(
            arch, weights, timm)})  # fmt: skip
    try:
        model = timm.create_model(arch, **options)
    except RuntimeError as err:  # timm's own words (a bad tag, weights that do not fit)
        raise ValueError(f"backbone: timm cannot build {name!r}: {err}") from err
    for cfg_name in ("pretrained_cfg", "default_cfg"):  # the overlay keeps no copy of the weights
        cfg = getattr(model, cfg_name, None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)
    if state_dict is not None:
        cfg = model.pretrained_cfg
        first = cfg.get("first_conv")
        stem = first[0] if isinstance(first, (list, tuple)) else first
        head = cfg.get("classifier")
        head = head[0] if isinstance(head, (list, tuple)) else head
        _load_into(model, state_dict, name, str(head), str(stem), source)
    model.init_spec = {
        "class_path": "lightkit.models.backbone",
        "init_args": {"name": name, "num_classes": num_classes, "in_channels": in_channels},
    }
    return model


def _timm_cached(arch: str, weights: object, timm: Any) -> dict[str, torch.Tensor]:
    """The pretrained weights of a timm model, from the local Hugging Face cache (never fetched)."""
    if weights != "DEFAULT":
        raise ValueError(
            "backbone: weights of a timm model must be None, 'DEFAULT' (the pretrained weights "
            "of the name's tag, such as 'timm/resnet18.a1_in1k', from the local Hugging Face "
            f"cache) or the path of a state_dict file, got {weights!r}"
        )
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except RuntimeError as err:
        raise ValueError(f"backbone: {err}") from None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        raise ValueError(
            f"backbone: timm has no Hugging Face weights for {arch!r}; pass weights=<the path "
            "of a state_dict file>"
        )
    from huggingface_hub import try_to_load_from_cache

    names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors",
                                                                "pytorch_model.bin"]  # fmt: skip
    for filename in names:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return _read_state_dict(found)
    raise FileNotFoundError(
        f"backbone: the weights of timm's {arch!r} ({hub_id}) are not in the local Hugging "
        "Face cache; lightkit downloads nothing: on a machine with internet access run "
        f"`hf download {hub_id}` (or timm.create_model({arch!r}, pretrained=True)) and copy "
        "the cache (HF_HUB_CACHE, ~/.cache/huggingface/hub) here, or pass weights=<the path of "
        "a state_dict file>"
    )


def _is_path(weights: object) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        "/" in weights or os.sep in weights or weights.lower().endswith(_STATE_DICT_SUFFIXES)
    )


def _read_state_dict(where: str) -> dict[str, torch.Tensor]:
    if not Path(where).is_file():
        raise FileNotFoundError(
            f"backbone: weights file {where!r} does not exist (weights= takes a torchvision "
            "weights name such as 'DEFAULT', or the path of a state_dict file)"
        )
    if where.lower().endswith(".safetensors"):
        return _read_safetensors(where)
    loaded = load_checkpoint(where)  # weights_only, checked for damage
    raw = loaded.get("state_dict", loaded)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(
            f"backbone: {where!r} does not hold a state_dict (a dict of tensors); save one with "
            "torch.save(net.state_dict(), path)"
        )
    if "state_dict" in loaded and any(k.startswith("net.") for k in raw):
        raw = {k[len("net.") :]: v for k, v in raw.items() if k.startswith("net.")}
    return raw


def _read_safetensors(where: str) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file (tensors only, nothing executed on load)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError(
            f"backbone: reading {where!r} needs the safetensors package (pip install "
            "safetensors; the timm extra brings it)"
        ) from None
    try:
        return load_file(where)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"backbone: {where!r} is not a readable safetensors file: {err}") from err


def _load_into(
    model: nn.Module, state: dict, name: str, head_name: str, stem_name: str, where: str
) -> None:
    """Load ``state`` into ``model``: every tensor but a head or stem of another size must fit."""
    own = model.state_dict()
    fitted: dict[str, torch.Tensor] = {}
    problems = []
    for key, value in own.items():
        saved = state.get(key)
        if saved is None:
            problems.append(f"{key} is missing")
        elif saved.shape == value.shape:
            fitted[key] = saved
        elif key.startswith(head_name + "."):
            continue  # trained for other classes: the new head stays fresh
        elif key == f"{stem_name}.weight" and saved.shape[2:] == value.shape[2:]:
            mean = saved.float().mean(dim=1, keepdim=True)
            fitted[key] = (
                mean.repeat(1, value.shape[1], 1, 1) * saved.shape[1] / value.shape[1]
            ).to(value.dtype)
        else:
            problems.append(f"{key} has shape {tuple(saved.shape)}, expected {tuple(value.shape)}")
    unexpected = sorted(set(state) - set(own))
    if problems or unexpected:
        shown = problems[:5] + [f"{k} is not a weight of {name}" for k in unexpected[:5]]
        raise ValueError(
            f"backbone: {where!r} does not hold weights of a {name!r}: "
            + "; ".join(shown)
            + (" ..." if len(problems) + len(unexpected) > 10 else "")
        )
    model.load_state_dict(fitted, strict=False)


def _check_cached(name: str, weights: Any) -> None:
    """torchvision weights are used only from the local torch hub cache: nothing is downloaded."""
    if weights is None:
        return
    resolved = torchvision.models.get_model_weights(name).verify(weights)
    url = resolved.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.is_file():
        raise FileNotFoundError(
            f"backbone: the {resolved} weights of {name!r} are not in the local torch hub cache "
            f"(expected {os.fspath(cached)!r}); lightkit downloads nothing: fetch {url} to that "
            "path on a machine with internet access (or set TORCH_HOME), or pass "
            "weights=<the path of a state_dict file>"
        )


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
