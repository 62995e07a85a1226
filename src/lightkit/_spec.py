"""Plain-data specs (``{"class_path": ..., "init_args": ...}``) for objects stored in checkpoints.

Hyperparameters that lightkit saves are numbers, strings, lists, dicts and class paths, never pickled
objects, so that checkpoints load with ``weights_only=True`` and read well in YAML configs. The spec
format is the one LightningCLI and jsonargparse use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

_PLAIN_SCALARS = (bool, int, float, str, type(None))


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


def from_spec(spec: Mapping[str, Any], what: str) -> Any:
    """Import ``spec["class_path"]`` and call it with ``spec["init_args"]``.

    Args:
        spec: A ``{"class_path": ..., "init_args": ...}`` mapping.
        what: The argument the spec was given for, used in error messages.
    """
    if not is_spec(spec):
        raise TypeError(
            f"{what}: expected a {{'class_path': str, 'init_args': dict}} spec, got {spec!r}"
        )
    target = import_object(spec["class_path"], what)
    if spec.get("partial"):
        return functools.partial(target, **dict(spec.get("init_args", {})))
    try:
        return target(**dict(spec.get("init_args", {})))
    except TypeError as err:
        raise TypeError(
            f"{what}: could not build {spec['class_path']} from init_args "
            f"{dict(spec.get('init_args', {}))!r}: {err}"
        ) from err


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


def _importable(obj: Any) -> bool:
    name = getattr(obj, "__qualname__", "")
    module = getattr(obj, "__module__", None)
    if not module or not name or "<" in name or module == "__main__":
        return False
    try:
        return import_object(f"{module}.{name}", "spec") is obj
    except ImportError:
        return False
