"""Eval transforms as plain data, so that checkpoints can record them and ``lk.Predictor`` and
``lightkit serve`` can run them on image files.

:func:`describe_transform` turns a torchvision pipeline into a spec when every step is one of
the deterministic steps below (``v2`` or the older ``torchvision.transforms`` classes, exactly,
not subclasses) and the pipeline rebuilt from the spec gives the same output as the original on
a probe image. :func:`eval_pipeline` builds the pipeline back; it is on lightkit's allow-list,
and it checks every step (name, argument names, types and bounds) before building anything,
because a checkpoint is untrusted.

Steps: ``ToImage``, ``PILToTensor``, ``ToTensor`` (recorded as ``ToImage`` + ``ToDtype(float32,
scale=True)``), ``ToDtype``, ``ConvertImageDtype``, ``Resize``, ``CenterCrop``, ``Normalize``,
``Grayscale``, ``Pad``, ``ToPureTensor``, ``Identity``, nested in ``Compose``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torchvision.transforms as v1
from PIL import Image
from torchvision.transforms import v2

from lightkit._validation import short_repr

PIPELINE_PATH = "lightkit.data._recorded.eval_pipeline"

MAX_STEPS = 32
MAX_SIDE = 8192  # the same bound as a recorded eval_preset's image_size
MAX_CHANNELS = 16
_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "uint8": torch.uint8,
}
_INTERPOLATIONS = {m.value: m for m in v2.InterpolationMode}
_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")

# op -> its arguments; every argument is required in a recorded step.
_OPS: dict[str, tuple[str, ...]] = {
    "ToImage": (),
    "PILToTensor": (),
    "ToPureTensor": (),
    "Identity": (),
    "ToDtype": ("dtype", "scale"),
    "Resize": ("size", "interpolation", "max_size", "antialias"),
    "CenterCrop": ("size",),
    "Normalize": ("mean", "std"),
    "Grayscale": ("num_output_channels",),
    "Pad": ("padding", "fill", "padding_mode"),
}


class NotDescribable(ValueError):
    """A transform that cannot be recorded as plain data (the message says which step and why)."""


# --- building (from a checkpoint: untrusted) -------------------------------------------------------


def check_steps(args: Mapping[str, Any], what: str) -> None:
    """Check ``eval_pipeline``'s arguments as read from a file; raise ``ValueError`` naming the
    step and argument at fault. Nothing is built."""
    if set(args) != {"steps"}:
        raise ValueError(
            f"{what}: eval_pipeline takes exactly one argument, steps; got {sorted(args)}"
        )
    steps = args["steps"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise ValueError(
            f"{what}: steps must be a list of 1 to {MAX_STEPS} steps, got {short_repr(steps)}"
        )
    for i, step in enumerate(steps):
        _check_step(step, f"{what}: step {i}")


def _check_step(step: Any, where: str) -> None:
    if not isinstance(step, Mapping) or not isinstance(step.get("op"), str):
        raise ValueError(f'{where}: expected {{"op": <name>, ...}}, got {short_repr(step)}')
    op = step["op"]
    if op not in _OPS:
        raise ValueError(f"{where}: unknown op {short_repr(op)}; lightkit records {sorted(_OPS)}")
    given = set(step) - {"op"}
    if given != set(_OPS[op]):
        raise ValueError(f"{where}: {op} takes {sorted(_OPS[op])}, got {sorted(given)}")
    for name in _OPS[op]:
        if not _valid(op, name, step[name]):
            raise ValueError(f"{where}: {op} has a bad {name}: {short_repr(step[name])}")


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _valid(op: str, name: str, value: Any) -> bool:
    if name in ("dtype", "interpolation", "padding_mode") and not isinstance(value, str):
        return False
    if name == "dtype":
        return value in _DTYPES
    if name in ("scale",):
        return isinstance(value, bool)
    if name == "antialias":
        return value is None or isinstance(value, bool)
    if name == "size":
        sides = value if isinstance(value, list) else [value]
        return 1 <= len(sides) <= 2 and all(_is_int(s, 1, MAX_SIDE) for s in sides)
    if name == "max_size":
        return value is None or _is_int(value, 1, 8 * MAX_SIDE)
    if name == "interpolation":
        return value in _INTERPOLATIONS
    if name in ("mean", "std"):
        ok = isinstance(value, list) and 1 <= len(value) <= MAX_CHANNELS
        ok = ok and all(_is_number(v) for v in value)
        return ok and (name == "mean" or all(v > 0 for v in value))
    if name == "num_output_channels":
        return _is_int(value, 1, 3) and value != 2
    if name == "padding":
        sides = value if isinstance(value, list) else [value]
        return len(sides) in (1, 2, 4) and all(_is_int(s, 0, MAX_SIDE) for s in sides)
    if name == "fill":
        fills = value if isinstance(value, list) else [value]
        return 1 <= len(fills) <= MAX_CHANNELS and all(_is_number(v) for v in fills)
    if name == "padding_mode":
        return value in _PADDING_MODES
    return False


def eval_pipeline(steps: list[dict[str, Any]]) -> v2.Compose:
    """A ``v2.Compose`` from recorded steps (see the module docstring); each step is checked first.

    Example:
        >>> tf = eval_pipeline([{"op": "ToImage"}, {"op": "ToDtype", "dtype": "float32", "scale": True}])
    """
    check_steps({"steps": steps}, "eval_pipeline")
    pipeline = v2.Compose([_build(step) for step in steps])
    pipeline.lightkit_spec = {  # type: ignore[attr-defined]
        "class_path": PIPELINE_PATH,
        "init_args": {"steps": [dict(s) for s in steps]},
    }
    return pipeline


def _build(step: Mapping[str, Any]) -> Any:
    op = step["op"]
    if op == "ToDtype":
        return v2.ToDtype(_DTYPES[step["dtype"]], scale=step["scale"])
    if op == "Resize":
        return v2.Resize(
            step["size"],
            interpolation=_INTERPOLATIONS[step["interpolation"]],
            max_size=step["max_size"],
            antialias=step["antialias"],
        )
    if op == "CenterCrop":
        return v2.CenterCrop(step["size"])
    if op == "Normalize":
        return v2.Normalize(step["mean"], step["std"])
    if op == "Grayscale":
        return v2.Grayscale(step["num_output_channels"])
    if op == "Pad":
        return v2.Pad(step["padding"], fill=step["fill"], padding_mode=step["padding_mode"])
    return getattr(v2, op)()


# --- sizes: what a recorded transform makes of an image of a given size ----------------------------

# The most numbers any step of a recorded transform may make from one image (unless the decoded
# image itself holds more): 32M, a 3×3264×3264 image. It bounds the memory a crafted transform
# (Resize to 8192² then Pad) or a crafted image (a 20000×1 strip resized by its shorter side)
# can take, and is checked before the transform runs.
MAX_STEP_NUMEL = 2**25


def output_sizes(
    spec: Mapping[str, Any], channels: int, height: int, width: int
) -> list[tuple[int, int, int]]:
    """The ``(C, H, W)`` after each step of a recorded transform (``eval_preset`` or
    ``eval_pipeline``, already checked) for an input image of that size."""
    args = spec.get("init_args") or {}
    if spec.get("class_path") == PIPELINE_PATH:
        steps = args["steps"]
    else:  # eval_preset: resize the shorter side (bounded longer side), centre crop
        size = args["image_size"]
        steps = [
            {"op": "Resize", "size": size, "max_size": 8 * size if isinstance(size, int) else None},
            {"op": "CenterCrop", "size": size},
        ]
    c, h, w = channels, height, width
    sizes = []
    for step in steps:
        op = step["op"]
        if op == "Grayscale":
            c = step["num_output_channels"]
        elif op == "Resize":
            h, w = _resized(h, w, step["size"], step.get("max_size"))
        elif op == "CenterCrop":
            size = step["size"] if isinstance(step["size"], list) else [step["size"]]
            h, w = (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
        elif op == "Pad":
            pad = step["padding"] if isinstance(step["padding"], list) else [step["padding"]]
            left, top, right, bottom = (
                (pad * 4)[:4]
                if len(pad) == 1
                else ((pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else tuple(pad))
            )
            h, w = h + top + bottom, w + left + right
        sizes.append((c, h, w))
    return sizes


def _resized(h: int, w: int, size: Any, max_size: int | None) -> tuple[int, int]:
    sides = size if isinstance(size, list) else [size]
    if len(sides) == 2:
        return sides[0], sides[1]
    short, long = (h, w) if h <= w else (w, h)
    new_short, new_long = sides[0], int(sides[0] * long / max(short, 1))
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


def image_size(image: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of a loaded image: a PIL image or a ``C×H×W`` tensor."""
    if isinstance(image, torch.Tensor):
        channels, height, width = image.shape[-3:]
        return int(channels), int(height), int(width)
    width, height = image.size
    return len(image.getbands()), height, width


def check_image_size(
    spec: Mapping[str, Any], channels: int, height: int, width: int, what: str
) -> None:
    """Raise ``ValueError`` when a step of the recorded transform would make more than
    :data:`MAX_STEP_NUMEL` numbers (or more than the image itself holds, if that is larger)."""
    limit = max(MAX_STEP_NUMEL, channels * height * width)
    for i, (c, h, w) in enumerate(output_sizes(spec, channels, height, width)):
        if c * h * w > limit:
            raise ValueError(
                f"{what}: the eval transform would make a {c}×{h}×{w} image from this "
                f"{width}×{height} image (step {i}), more than the {limit:,} numbers lightkit "
                "allows; send an image of more usual proportions"
            )


# --- describing (the user's own transform) --------------------------------------------------------


def describe_transform(transform: Any, image_mode: str = "RGB") -> dict[str, Any]:
    """The plain-data spec of ``transform``, checked on a probe image; raises
    :class:`NotDescribable` saying which step cannot be recorded."""
    spec = getattr(transform, "lightkit_spec", None)
    if isinstance(spec, Mapping) and isinstance(spec.get("class_path"), str):
        return dict(spec)
    steps = _steps(transform)
    try:
        check_steps({"steps": steps}, "eval transform")
    except ValueError as err:
        raise NotDescribable(str(err)) from None
    _compare(transform, eval_pipeline(steps), image_mode)
    return {"class_path": PIPELINE_PATH, "init_args": {"steps": steps}}


def _steps(transform: Any) -> list[dict[str, Any]]:
    kind = type(transform)
    if kind in (v2.Compose, v1.Compose):
        return [step for inner in transform.transforms for step in _steps(inner)]
    name = _DESCRIBED.get(kind)
    if name is None:
        raise NotDescribable(
            f"{kind.__module__}.{kind.__qualname__} is not a step lightkit can record (it records "
            f"torchvision's deterministic {', '.join(sorted(set(_DESCRIBED.values())))})"
        )
    try:
        return _describe_step(name, vars(transform))
    except (TypeError, ValueError, KeyError) as err:
        raise NotDescribable(f"{name}: cannot record its arguments ({err})") from None


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _describe_step(name: str, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    if name == "ToTensor":
        return [{"op": "ToImage"}, {"op": "ToDtype", "dtype": "float32", "scale": True}]
    if name == "ConvertImageDtype":
        return [{"op": "ToDtype", "dtype": _dtype_name(attrs["dtype"]), "scale": True}]
    if name == "ToDtype":
        return [{"op": "ToDtype", "dtype": _dtype_name(attrs["dtype"]), "scale": attrs["scale"]}]
    if name == "Resize":
        size = _plain(attrs["size"])
        interpolation = attrs["interpolation"]
        interpolation = getattr(interpolation, "value", interpolation)
        return [
            {
                "op": "Resize",
                "size": size,
                "interpolation": interpolation,
                "max_size": attrs["max_size"],
                "antialias": attrs["antialias"],
            }
        ]
    if name == "CenterCrop":
        return [{"op": "CenterCrop", "size": _plain(attrs["size"])}]
    if name == "Normalize":
        mean, std = _plain(attrs["mean"]), _plain(attrs["std"])
        mean = mean if isinstance(mean, list) else [mean]
        std = std if isinstance(std, list) else [std]
        return [
            {"op": "Normalize", "mean": [float(m) for m in mean], "std": [float(s) for s in std]}
        ]
    if name == "Grayscale":
        return [{"op": "Grayscale", "num_output_channels": attrs["num_output_channels"]}]
    if name == "Pad":
        return [
            {
                "op": "Pad",
                "padding": _plain(attrs["padding"]),
                "fill": _plain(attrs["fill"]),
                "padding_mode": attrs["padding_mode"],
            }
        ]
    return [{"op": name}]


def _dtype_name(dtype: Any) -> str:
    for name, value in _DTYPES.items():
        if dtype is value:
            return name
    raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")


_DESCRIBED: dict[type, str] = {
    v2.ToImage: "ToImage",
    v2.PILToTensor: "PILToTensor",
    v2.ToPureTensor: "ToPureTensor",
    v2.Identity: "Identity",
    v2.ToDtype: "ToDtype",
    v2.Resize: "Resize",
    v2.CenterCrop: "CenterCrop",
    v2.Normalize: "Normalize",
    v2.Grayscale: "Grayscale",
    v2.Pad: "Pad",
    v1.ToTensor: "ToTensor",
    v1.PILToTensor: "PILToTensor",
    v1.ConvertImageDtype: "ConvertImageDtype",
    v1.Resize: "Resize",
    v1.CenterCrop: "CenterCrop",
    v1.Normalize: "Normalize",
    v1.Grayscale: "Grayscale",
    v1.Pad: "Pad",
}


def _compare(original: Any, rebuilt: Any, image_mode: str) -> None:
    """The rebuilt pipeline must give what the original gives on a probe image in ``image_mode``."""
    channels = {"RGB": 3, "L": 1, "RGBA": 4}.get(image_mode, 3)
    pixels = np.random.default_rng(0).integers(0, 256, (47, 61, channels), dtype=np.uint8)
    probe = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, image_mode)
    try:
        expected = original(probe)
    except Exception as err:
        raise NotDescribable(
            f"it fails on a PIL image in mode {image_mode!r} ({type(err).__name__}: {err}), and "
            "image files are loaded as PIL images"
        ) from None
    try:
        got = rebuilt(probe.copy())
    except Exception as err:  # pragma: no cover - a step described wrongly
        raise NotDescribable(f"its recorded form fails on a probe image ({err})") from None
    same = (
        isinstance(expected, torch.Tensor)
        and isinstance(got, torch.Tensor)
        and expected.shape == got.shape
        and expected.dtype == got.dtype
        and torch.allclose(expected.double(), got.double(), rtol=1e-5, atol=1e-6)
    )
    if not same:
        raise NotDescribable(
            "its recorded form gives a different result on a probe image (it must turn a PIL "
            "image into a tensor)"
        )


__all__ = [
    "MAX_STEP_NUMEL",
    "NotDescribable",
    "check_image_size",
    "check_steps",
    "describe_transform",
    "eval_pipeline",
    "image_size",
    "output_sizes",
]
