"""Argument checks shared by every public function: each error names the owner, argument and value.

A boolean is a ``bool`` (a string such as ``"no"`` is not), an integer is an ``int`` that is not a
``bool``, and a float is a finite real number unless the caller allows infinity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
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
    if type(value).__name__ == "bool_" and type(value).__module__ == "numpy":
        return bool(value)
    raise TypeError(f"{owner}: {name} must be True or False, got {value!r} ({type(value).__name__})")


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
        raise ValueError(f"{owner}: {name} must be an integer{_range(minimum, maximum)}, got {value}")
    return value


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
