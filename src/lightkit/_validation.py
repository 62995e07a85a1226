"""Argument checks shared by every public function: each error names the owner, argument and value.

A boolean is a ``bool`` (a string such as ``"no"`` is not), an integer is an ``int`` that is not a
``bool``, and a float is a finite real number unless the caller allows infinity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``value`` if it is a real ``bool`` (numpy's too); a ``TypeError`` otherwise.

    Example:
        >>> check_bool("make_trainer", "early_stopping", "false")
        Traceback (most recent call last):
        TypeError: make_trainer: early_stopping must be True or False, got 'false' (str)
    """
    if isinstance(value, bool):
        return value
    # numpy's bool scalar type is named bool_ before numpy 2 and bool since
    if type(value).__name__ in ("bool_", "bool") and type(value).__module__ == "numpy":
        return bool(value)
    raise TypeError(
        f"{owner}: {name} must be True or False, got {value!r} ({type(value).__name__})"
    )


def check_int(
    owner: str,
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """``value`` if it is an integer (not a bool) within ``[minimum, maximum]``.

    Raises ``TypeError`` for a non-integer and ``ValueError`` for one out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}: {name} must be an integer{_range(minimum, maximum)}, got {value!r} "
            f"({type(value).__name__})"
        )
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(
            f"{owner}: {name} must be an integer{_range(minimum, maximum)}, got {value}"
        )
    return value


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` if it is an integer >= 1 (for ``check_sequence`` items such as layer widths)."""
    return check_int(owner, name, value, minimum=1)


def check_float(
    owner: str,
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float if it is a real number (not a bool), finite, and within the bounds.

    Raises ``TypeError`` for a non-number and ``ValueError`` for NaN, infinity or a value out of
    range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: {name} must be a number{_interval(minimum, maximum, min_inclusive, max_inclusive)}"
            f", got {value!r} ({type(value).__name__})"
        )
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    low_bad = minimum is not None and (number < minimum if min_inclusive else number <= minimum)
    high_bad = maximum is not None and (number > maximum if max_inclusive else number >= maximum)
    if low_bad or high_bad:
        raise ValueError(
            f"{owner}: {name} must be a number"
            f"{_interval(minimum, maximum, min_inclusive, max_inclusive)}, got {value!r}"
        )
    return number


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared by equality, strings case-sensitively)."""
    options = list(choices)
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in options):
        raise ValueError(f"{owner}: {name} must be one of {_listing(options)}, got {value!r}")
    try:
        found = value in options
    except TypeError:  # an unhashable or incomparable value
        found = False
    if not found:
        raise ValueError(f"{owner}: {name} must be one of {_listing(options)}, got {value!r}")
    return value


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _interval(
    minimum: float | None, maximum: float | None, min_inclusive: bool, max_inclusive: bool
) -> str:
    if minimum is None and maximum is None:
        return ""
    low = "(-inf" if minimum is None else ("[" if min_inclusive else "(") + f"{minimum:g}"
    high = "inf)" if maximum is None else f"{maximum:g}" + ("]" if max_inclusive else ")")
    return f" in {low}, {high}"


def _listing(options: list[Any]) -> str:
    return ", ".join(repr(o) for o in options)


# --- additions: sequences, types, seeds ---------------------------------------------------------

#: Seeds lightkit accepts: the range Lightning's ``seed_everything`` and numpy accept.
MAX_SEED = 2**32 - 1


def check_seed(owner: str, name: str, value: Any) -> int:
    """``value`` if it is an integer seed in ``[0, 2**32 - 1]`` (what numpy and Lightning take).

    Example:
        >>> check_seed("DataModule", "seed", None)
        Traceback (most recent call last):
        TypeError: DataModule: seed must be an integer in [0, 4294967295], got None (NoneType)
    """
    return check_int(owner, name, value, minimum=0, maximum=MAX_SEED)


def check_instance(
    owner: str, name: str, value: Any, types: type | tuple[type, ...], expected: str
) -> Any:
    """``value`` if it is an instance of ``types``; else a ``TypeError`` saying ``expected``.

    A ``bool`` is not accepted where ``int`` or ``float`` is asked for.

    Example:
        >>> check_instance("plateau", "monitor", 5, str, "a metric name (str)")
        Traceback (most recent call last):
        TypeError: plateau: monitor must be a metric name (str), got 5 (int)
    """
    wants_bool = types is bool or (isinstance(types, tuple) and bool in types)
    if not isinstance(value, types) or (isinstance(value, bool) and not wants_bool):
        raise TypeError(
            f"{owner}: {name} must be {expected}, got {short_repr(value)} ({type(value).__name__})"
        )
    return value


def check_sequence(
    owner: str,
    name: str,
    value: Any,
    item: Callable[[str, str, Any], Any] | None = None,
    *,
    length: int | None = None,
    min_length: int = 0,
) -> tuple[Any, ...]:
    """``value`` as a tuple if it is a list, tuple or other sequence that is not a string.

    ``item(owner, "name[i]", element)`` checks (and may convert) each element, for example
    ``check_int`` with bounds through ``functools.partial``. Raises ``TypeError`` for a
    non-sequence and ``ValueError`` for the wrong number of elements.

    Example:
        >>> check_sequence("MLP", "hidden", 64, item=check_int)
        Traceback (most recent call last):
        TypeError: MLP: hidden must be a list or tuple, got 64 (int)
    """
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{owner}: {name} must be a list or tuple{_count(length, min_length)}, got "
            f"{short_repr(value)} ({type(value).__name__})"
        )
    if (length is not None and len(value) != length) or len(value) < min_length:
        raise ValueError(
            f"{owner}: {name} must be a list or tuple{_count(length, min_length)}, got "
            f"{short_repr(value)} ({len(value)} item{'' if len(value) == 1 else 's'})"
        )
    if item is None:
        return tuple(value)
    return tuple(item(owner, f"{name}[{i}]", element) for i, element in enumerate(value))


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages about any input."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 5] + " ...>"


def _count(length: int | None, min_length: int) -> str:
    if length is not None:
        return f" of {length} item{'' if length == 1 else 's'}"
    if min_length:
        return f" of at least {min_length} item{'' if min_length == 1 else 's'}"
    return ""


def check_path(owner: str, name: str, value: Any, what: str = "a file path") -> Any:
    """``value`` if it is a non-empty ``str`` or ``os.PathLike`` (not bytes).

    Example:
        >>> check_path("fit", "default_root_dir", 123, "a folder path")
        Traceback (most recent call last):
        TypeError: fit: default_root_dir must be a folder path (str or pathlib.Path), got 123 (int)
    """
    import os

    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{owner}: {name} must be {what} (str or pathlib.Path), got {short_repr(value)} "
            f"({type(value).__name__})"
        )
    if not os.fspath(value).strip():
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return value


MAX_CLASS_NAMES = 100_000
MAX_CLASS_NAME_CHARS = 256


def check_class_names(owner: str, name: str, value: Any) -> tuple[str, ...] | None:
    """``value`` as a tuple of distinct, non-empty class names (strings), or None.

    Bounded (at most 100,000 names of at most 256 characters), since class names are also read
    back from checkpoints.

    Example:
        >>> check_class_names("DataModule", "class_names", ["cat", "dog"])
        ('cat', 'dog')
    """
    if value is None:
        return None
    names = check_sequence(owner, name, value, min_length=2)
    if len(names) > MAX_CLASS_NAMES:
        raise ValueError(f"{owner}: {name} holds {len(names):,} names; at most {MAX_CLASS_NAMES:,}")
    for i, item in enumerate(names):
        if not isinstance(item, str):
            raise TypeError(
                f"{owner}: {name}[{i}] must be a string, got {short_repr(item)} "
                f"({type(item).__name__})"
            )
        if not item or len(item) > MAX_CLASS_NAME_CHARS:
            raise ValueError(
                f"{owner}: {name}[{i}] must be 1 to {MAX_CLASS_NAME_CHARS} characters, got "
                f"{short_repr(item)}"
            )
    if len(set(names)) != len(names):  # linear: names may come from a hostile checkpoint
        seen: set[str] = set()
        repeated = sorted({n for n in names if n in seen or seen.add(n)})
        raise ValueError(f"{owner}: {name} repeats {short_repr(repeated)}; names must differ")
    return names
