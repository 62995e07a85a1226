"""Plain-data specs (``{"class_path": ..., "init_args": ...}``) and the policy for building them.

Hyperparameters that lightkit saves are numbers, strings, lists, dicts and class paths, never pickled
objects, so that checkpoints load with ``weights_only=True`` and read well in YAML configs. The spec
format is the one LightningCLI and jsonargparse use.

A spec names something to import and call, so a spec read from a file is code: this module is the
one place where a spec is turned into an object, and it does so only under the trust policy.

* The allow-list, by kind: a ``net`` is a ``torch.nn.Module`` layer class from ``torch.nn``
  (``torch.nn.modules``), or a lightkit model (``MLP``, ``ConvNet``, ``UNet``, ``backbone``); an
  ``optimizer`` is a ``torch.optim.Optimizer`` subclass or a ``lightkit.optim`` optimizer preset;
  a ``scheduler`` is a ``torch.optim.lr_scheduler`` scheduler or a ``lightkit.optim`` scheduler
  preset; a ``transform`` is ``lightkit.data.transforms.eval_preset`` or a recorded pipeline of
  deterministic torchvision steps (``lightkit.data._recorded.eval_pipeline``), with bounded
  arguments; a
  ``task`` is one of lightkit's task modules.
* The class path is checked *before* anything is imported (only modules under ``lightkit``,
  ``torch.nn`` and ``torch.optim`` are imported) and the object's kind *before* it is called.
* What the user trusts explicitly (``trust=["mypkg.nets"]``: module prefixes or exact class paths)
  is imported and called as named when it is a class or function defined there, and its result
  is type-checked afterwards.
* A net built from a checkpoint's spec takes no integer argument larger than the checkpoint's
  weights (in bytes) and is first built on the ``meta`` device: one that would hold more bytes
  than the checkpoint's ``state_dict`` really stores is refused before it allocates any memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from lightkit._validation import short_repr

_PLAIN_SCALARS = (bool, int, float, str, type(None))

KINDS = ("net", "optimizer", "scheduler", "transform", "task")

# Modules that a spec may make lightkit import without the user's say-so. Importing them runs no
# code that a spec controls; what may then be *called* is decided per kind in `_allowed`.
_IMPORTABLE_PREFIXES = (
    "lightkit",
    "torch.nn",
    "torch.optim",
)

# Bounds on the arguments of a recorded transform, which is built when an image is predicted.
_MAX_IMAGE_SIDE = 8192
_MAX_CHANNELS = 16

_TRUST: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "lightkit_trust", default=()
)
_MAX_BYTES: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "lightkit_max_bytes", default=None
)


class UntrustedSpecError(ImportError):
    """A spec (from a checkpoint, a config or a request) names something lightkit will not run.

    Example:
        >>> spec = {"class_path": "os.system", "init_args": {"command": "echo hi"}}
        >>> try:
        ...     lk.ClassificationModule(spec, num_classes=3)
        ... except lk.UntrustedSpecError as error:
        ...     print(error)
        ClassificationModule(net=...): refusing to import and call 'os.system': it is not on
        lightkit's allow-list ... If you trust where this file came from, say so: trust=['os']
        (Python), --trust os (the lightkit command). ...
    """


def check_trust(value: Any, owner: str) -> tuple[str, ...]:
    """Normalise a ``trust=`` argument: None, a module prefix / class path, or a list of them.

    Example:
        >>> check_trust(["mypkg.nets"], "Predictor.from_checkpoint")
        ('mypkg.nets',)
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(
        isinstance(item, str) and item.strip(".") and " " not in item for item in items
    ):
        raise TypeError(
            f"{owner}: trust must be None, a module name or class path such as 'mypkg.nets', or a "
            f"list of them, got {value!r}"
        )
    return tuple(item.strip(".") for item in items)


@contextlib.contextmanager
def trusting(trust: Iterable[str] = (), max_bytes: int | None = None) -> Iterator[None]:
    """Within this block, specs may also name what ``trust`` lists; nets are bounded in size.

    Args:
        trust: Module prefixes or class paths the user trusts (added to those already trusted).
        max_bytes: The most bytes of parameters and buffers a net built from an untrusted spec
            may hold, and the largest integer argument it may take (the size of the checkpoint's
            weights); None: no bound.
    """
    token = _TRUST.set((*_TRUST.get(), *trust))
    bytes_token = _MAX_BYTES.set(max_bytes)
    try:
        yield
    finally:
        _MAX_BYTES.reset(bytes_token)
        _TRUST.reset(token)


def stored_bytes(tensors: Iterable[Any]) -> int:
    """Bytes the distinct storages of ``tensors`` really hold (an expanded tensor counts once)."""
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() in seen and storage.data_ptr() != 0:
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()
    return total


def is_plain(value: Any) -> bool:
    """Whether ``value`` is made only of numbers, strings, None, lists, tuples and str-keyed dicts."""
    if isinstance(value, _PLAIN_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a ``{"class_path": str, "init_args": dict}`` mapping."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("class_path"), str)
        and isinstance(value.get("init_args", {}), Mapping)
    )


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def to_spec(obj: Any) -> dict[str, Any] | None:
    """Describe ``obj`` as a plain-data spec, or return None when it cannot be described.

    Understood: objects with a ``to_spec()`` method (lightkit's optimizer and scheduler presets),
    ``functools.partial`` of an importable callable with plain keyword arguments, modules that
    record their constructor arguments in an ``init_args`` attribute (lightkit's models), and
    objects that carry a whole spec in an ``init_spec`` attribute (``lk.models.backbone``).
    """
    if obj is None:
        return None
    if hasattr(obj, "to_spec") and callable(obj.to_spec):
        return obj.to_spec()
    init_spec = getattr(obj, "init_spec", None)
    if is_spec(init_spec) and is_plain(init_spec):
        return dict(init_spec)
    if isinstance(obj, functools.partial) and not obj.args and is_plain(obj.keywords):
        if _importable(obj.func):
            # "partial": rebuilt as a partial again (an optimizer class still needs its params).
            path = qualified_name(obj.func)
            return {"class_path": path, "init_args": dict(obj.keywords), "partial": True}
        return None
    init_args = getattr(obj, "init_args", None)
    if isinstance(init_args, Mapping) and is_plain(init_args) and _importable(type(obj)):
        return {"class_path": qualified_name(type(obj)), "init_args": dict(init_args)}
    return None


def from_spec(spec: Mapping[str, Any], what: str, kind: str | None = None) -> Any:
    """Build the object a spec describes, under the trust policy (see the module docstring).

    Args:
        spec: A ``{"class_path": ..., "init_args": ...}`` mapping.
        what: The argument the spec was given for, used in error messages.
        kind: ``"net"``, ``"optimizer"``, ``"scheduler"``, ``"transform"`` or ``"task"``; None
            accepts whatever is allow-listed for any kind.

    Raises:
        UntrustedSpecError: the class path is neither allow-listed for ``kind`` nor trusted.
        TypeError: a malformed spec, or arguments the class does not take.
        ValueError: arguments out of bounds, or a net larger than the checkpoint's weights.
    """
    target = resolve(spec, what, kind)
    args = dict(spec.get("init_args") or {})
    if spec.get("partial"):
        return functools.partial(target, **args)
    trusted = _user_trusted(spec["class_path"])
    if kind == "net" and not trusted:
        _check_net_size(target, args, spec["class_path"], what)
    try:
        obj = target(**args)
    except TypeError as err:
        raise TypeError(
            f"{what}: could not build {spec['class_path']} from init_args {args!r}: {err}"
        ) from err
    if kind == "net":
        from torch import nn

        if not isinstance(obj, nn.Module):
            raise TypeError(
                f"{what}: {spec['class_path']} built a {type(obj).__name__}, not a torch.nn.Module"
            )
    return obj


def resolve(spec: Any, what: str, kind: str | None = None) -> Any:
    """The callable that ``spec`` names, after checking it against the policy; nothing is called."""
    if not is_spec(spec):
        raise TypeError(
            f"{what}: expected a {{'class_path': str, 'init_args': dict}} spec, got {spec!r}"
        )
    if kind is not None and kind not in KINDS:
        raise ValueError(f"from_spec: kind must be one of {KINDS} or None, got {kind!r}")
    path = spec["class_path"]
    if (
        len(path) > 300
        or path.count(".") > 30
        or not all(p.isidentifier() for p in path.split("."))
    ):
        raise TypeError(f"{what}: class_path must be a dotted Python name, got {short_repr(path)}")
    trusted = _user_trusted(path)
    if not trusted and not _within(path, _IMPORTABLE_PREFIXES):
        raise _untrusted(path, what, kind)
    target = import_object(path, what)
    if trusted:
        # What is called must be defined in the trusted module, not merely reachable through it
        # (`mypkg.nets.os.system` is os.system).
        if not (isinstance(target, type) or inspect.isfunction(target)) or not _user_trusted(
            qualified_name(target)
        ):
            raise _untrusted(path, what, kind)
        return target
    if _MAX_BYTES.get() is not None:
        _check_integer_args(spec.get("init_args") or {}, _MAX_BYTES.get(), path, what)
    kinds = KINDS if kind is None else (kind,)
    if not any(_allowed(target, k, bool(spec.get("partial"))) for k in kinds):
        raise _untrusted(path, what, kind)
    if "transform" in kinds and _allowed(target, "transform", False):
        args = dict(spec.get("init_args") or {})
        if target is import_object("lightkit.data._recorded.eval_pipeline", what):
            # The pipeline's own checker, by path (this module sits below lightkit.data).
            check = import_object("lightkit.data._recorded.check_steps", what)
            check(args, what)
        else:
            _check_transform_args(args, what)
    return target


def check_net_spec(spec: Any, what: str) -> Any:
    """``resolve(spec, what, "net")`` plus, under ``trusting(max_bytes=...)``, the size probe.

    For callers that hand an untrusted net spec to something else to build (the CLI gives it to
    jsonargparse): nothing is built but the ``meta``-device probe.
    """
    target = resolve(spec, what, "net")
    if not _user_trusted(spec["class_path"]):
        _check_net_size(target, dict(spec.get("init_args") or {}), spec["class_path"], what)
    return target


def import_object(path: str, what: str) -> Any:
    """Import ``package.module.Name`` (nested qualified names allowed)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name, attrs = ".".join(parts[:split]), parts[split:]
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        try:
            for attr in attrs:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ImportError(f"{what}: cannot import {path!r}; expected an importable 'module.Name' path")


# --- the policy ------------------------------------------------------------------------------------


def _within(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _user_trusted(path: str) -> bool:
    return _within(path, _TRUST.get())


def _untrusted(path: str, what: str, kind: str | None) -> UntrustedSpecError:
    expected = {
        None: "a lightkit model, optimizer or scheduler preset, or a torch.nn / torch.optim class",
        "net": "a torch.nn layer class or a lightkit model (torchvision nets: lk.models.backbone)",
        "optimizer": "a torch.optim.Optimizer class or a lightkit.optim optimizer preset",
        "scheduler": "a torch.optim.lr_scheduler class or a lightkit.optim scheduler preset",
        "transform": "lightkit.data.transforms.eval_preset",
        "task": "one of lightkit's task modules",
    }[kind]
    module = path.rpartition(".")[0] or path
    return UntrustedSpecError(
        f"{what}: refusing to import and call {path!r}: it is not on lightkit's allow-list "
        f"({expected}). Checkpoints and the configs derived from them are untrusted input, and "
        f"a class path in them is code. If you trust where this file came from, say so: "
        f"trust=[{module!r}] (Python), --trust {module} (the lightkit command). See 'What "
        "lightkit trusts' in the README."
    )


# lightkit's own objects that a spec may name without the user's trust, by kind. They are named
# by path, not imported here: this helper sits below the layers it lists (tasks, models, data),
# and resolves a path only when a spec asks for it. tests/test_spec.py checks that the task list
# is every class in lightkit.tasks.__all__.
LIGHTKIT_ALLOWED: dict[str, tuple[str, ...]] = {
    "net": (
        "lightkit.models.MLP",
        "lightkit.models.ConvNet",
        "lightkit.models.UNet",
        "lightkit.models.backbone",
    ),
    "optimizer": (
        "lightkit.optim.adam",
        "lightkit.optim.adamw",
        "lightkit.optim.sgd",
        "lightkit.optim.rmsprop",
    ),
    "scheduler": (
        "lightkit.optim.plateau",
        "lightkit.optim.step",
        "lightkit.optim.cosine",
        "lightkit.optim.warmup_cosine",
        "lightkit.optim.onecycle",
    ),
    "transform": (
        "lightkit.data.transforms.eval_preset",
        "lightkit.data._recorded.eval_pipeline",
    ),
    "task": (
        "lightkit.tasks.BinaryClassificationModule",
        "lightkit.tasks.ClassificationModule",
        "lightkit.tasks.MultilabelClassificationModule",
        "lightkit.tasks.RegressionModule",
        "lightkit.tasks.SegmentationModule",
        "lightkit.tasks.TaskModule",
    ),
}


@functools.cache
def _lightkit_allowed() -> dict[str, frozenset[int]]:
    """The ids of the objects in :data:`LIGHTKIT_ALLOWED`, imported on first use."""
    return {
        kind: frozenset(id(import_object(path, "lightkit's allow-list")) for path in paths)
        for kind, paths in LIGHTKIT_ALLOWED.items()
    }


def _allowed(target: Any, kind: str, partial: bool) -> bool:
    if id(target) in _lightkit_allowed()[kind]:
        return not partial
    if not isinstance(target, type):
        return False
    module = getattr(target, "__module__", "") or ""
    import torch

    if kind == "net":
        return (
            not partial
            and issubclass(target, torch.nn.Module)
            and _within(module, ("torch.nn.modules",))
        )
    if kind == "optimizer":
        return (
            partial
            and issubclass(target, torch.optim.Optimizer)
            and _within(module, ("torch.optim",))
        )
    if kind == "scheduler":
        schedulers = (
            torch.optim.lr_scheduler.LRScheduler,
            torch.optim.lr_scheduler.ReduceLROnPlateau,
        )
        return partial and issubclass(target, schedulers) and _within(module, ("torch.optim",))
    return False


def _check_net_size(target: Any, args: dict[str, Any], path: str, what: str) -> None:
    """Build the net on the meta device first and refuse one larger than the checkpoint allows."""
    limit = _MAX_BYTES.get()
    if limit is None:
        return
    import torch

    try:
        with torch.device("meta"):
            probe = target(**args)
    except Exception:  # the real build below reports a bad argument in its own words
        return
    if not isinstance(probe, torch.nn.Module):
        return
    size = sum(t.numel() * t.element_size() for t in (*probe.parameters(), *probe.buffers()))
    if size > limit:
        raise ValueError(
            f"{what}: the net described as {path} with init_args {short_repr(args)} would hold "
            f"{size:,} bytes of weights, more than the {limit:,} the checkpoint's weights hold; "
            "the file's hyperparameters do not match its weights (damaged or crafted), refusing "
            "to build it"
        )


def _check_integer_args(args: Any, limit: int, path: str, what: str, depth: int = 0) -> None:
    """No integer argument of a spec read from a file may exceed the size of its weights in bytes.

    A layer ``n`` wide holds at least ``n`` numbers, so a larger integer (``num_layers=10**9``) can
    only make building the net slow or huge; refused before anything is built, even on ``meta``.
    """
    if depth > 8:
        raise ValueError(f"{what}: {path} has arguments nested more than 8 deep (crafted?)")
    values = args.values() if isinstance(args, Mapping) else args
    for value in values:
        if isinstance(value, (list, tuple, Mapping)):
            _check_integer_args(value, limit, path, what, depth + 1)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > max(limit, 64):
            raise ValueError(
                f"{what}: {path} has an argument {value:,}, larger than the checkpoint's "
                f"{limit:,} bytes of weights (damaged or crafted), refusing to build it"
            )


def _check_transform_args(args: dict[str, Any], what: str) -> None:
    """Bounds on ``eval_preset``'s arguments, so that a recorded transform stays cheap to run."""
    size = args.get("image_size")
    sides = size if isinstance(size, (list, tuple)) else [size]
    if not (
        1 <= len(sides) <= 2
        and all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= _MAX_IMAGE_SIDE
            for s in sides
        )
    ):
        raise ValueError(
            f"{what}: image_size must be an integer or a pair of integers in [1, "
            f"{_MAX_IMAGE_SIDE}], got {size!r}"
        )
    for name in ("mean", "std"):
        if name not in args:
            continue
        values = args[name]
        ok = (
            isinstance(values, (list, tuple))
            and 1 <= len(values) <= _MAX_CHANNELS
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            )
        )
        if ok and name == "std":
            ok = all(v > 0 for v in values)
        if not ok:
            raise ValueError(
                f"{what}: {name} must be a list of 1 to {_MAX_CHANNELS} finite numbers"
                + (" above 0" if name == "std" else "")
                + f", got {values!r}"
            )
    unknown = set(args) - {"image_size", "mean", "std"}
    if unknown:
        raise ValueError(f"{what}: eval_preset takes no argument(s) {sorted(unknown)}")


def _importable(obj: Any) -> bool:
    name = getattr(obj, "__qualname__", "")
    module = getattr(obj, "__module__", None)
    if not module or not name or "<" in name or module == "__main__":
        return False
    try:
        return import_object(f"{module}.{name}", "spec") is obj
    except ImportError:
        return False
