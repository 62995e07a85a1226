"""The search space of a sweep: plain YAML of dotted config keys, checked before any trial runs."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

OWNER = "lk.sweep"
TYPES = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
# Settings the sweep itself decides for every trial.
RESERVED = {
    "trainer.default_root_dir": "every trial runs in <study_dir>/trials/version_<trial number>",
    "trainer.version": "every trial runs in <study_dir>/trials/version_<trial number>",
    "ckpt_path": "every trial starts from scratch",
    "resume": "every trial starts from scratch",
    "config": "the base config is the sweep's config argument",
    "trust": "trials load no checkpoint",
    "trainer.monitor": "every trial is compared by the config's monitor",
    "trainer.mode": "every trial is compared by the config's monitor",
}
MAX_FILE_BYTES = 1 << 20


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``, but a key given twice is an error (not the last one silently), and
    ``1e-4`` is a number as in YAML 1.2 (YAML 1.1 wants ``1.0e-4``)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Param:
    """One searched setting: its dotted config key and the range or choices Optuna samples."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value of this setting for ``trial`` (an ``optuna.Trial``)."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(
                self.key, self.low, self.high, log=self.log, step=self.step or 1
            )
        return trial.suggest_categorical(self.key, list(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether the search can give ``value`` (in the range, on its step, or a choice)."""
        if self.type == "categorical":
            return any(same_value(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)

    def samples(self) -> list[Any]:
        """Values that cover what this setting can take: both ends of a range, every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain data (what the study records and ``search_space.yaml`` holds)."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        spec: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        return spec


def read_yaml(source: str | os.PathLike[str], what: str) -> Any:
    """A YAML file's content, read with ``yaml.safe_load`` (nothing in it is imported or run)."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{OWNER}: {what} {os.fspath(source)!r} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(
            f"{OWNER}: {what} {os.fspath(source)!r} is over {MAX_FILE_BYTES >> 20} MiB; "
            "expected a small YAML file"
        )
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{OWNER}: {what} {os.fspath(source)!r} is not valid YAML: {err}"
        ) from None


def read_space(search_space: Any) -> list[Param]:
    """The search space (a YAML file or a mapping of dotted keys to specs), checked.

    Each key maps to ``{type: float|int, low, high[, log: true][, step]}``,
    ``{type: categorical, choices: [...]}``, or a plain list (categorical). Whether the config
    takes each key and value is checked separately (:func:`lightkit.sweeps.sweep`).
    """
    if isinstance(search_space, (str, os.PathLike)):
        data = read_yaml(search_space, "search_space")
        where = f"search space {os.fspath(search_space)!r}"
    else:
        data, where = search_space, "search_space"
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{OWNER}: {where} must map dotted config keys to ranges, e.g. "
            "'model.init_args.optimizer.init_args.lr: {type: float, low: 1e-4, high: 0.1, "
            f"log: true}}', got {type(data).__name__}"
        )
    if not data:
        raise ValueError(f"{OWNER}: {where} is empty; name at least one setting to search")
    return [_param(key, spec, where) for key, spec in data.items()]


def _param(key: Any, spec: Any, where: str) -> Param:
    if not isinstance(key, str) or not key or key != key.strip() or ".." in key:
        raise TypeError(f"{OWNER}: {where}: keys are dotted config keys (text), got {key!r}")
    name = f"{where}: key {key!r}"
    if key in RESERVED or key.split(".")[0] in RESERVED:
        reason = RESERVED.get(key, RESERVED.get(key.split(".")[0]))
        raise ValueError(f"{name} cannot be searched: {reason}")
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"{name}: expected {{type: float|int, low, high}}, {{type: categorical, choices: "
            f"[...]}} or a list of choices, got {spec!r}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise ValueError(f"{name}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    unknown = sorted(str(f) for f in spec if f not in _FIELDS[kind])
    if unknown:
        raise ValueError(
            f"{name}: unknown field(s) {unknown} for type {kind} "
            f"(it takes {', '.join(sorted(_FIELDS[kind]))})"
        )
    if kind == "categorical":
        return Param(key, kind, choices=_choices(name, spec.get("choices")))
    low, high = (_number(name, field, spec.get(field), kind) for field in ("low", "high"))
    if not low < high:
        raise ValueError(
            f"{name}: low ({low!r}) must be less than high ({high!r}); a fixed value belongs "
            "in the config"
        )
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise TypeError(f"{name}: log must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(name, "step", step, kind)
        if step <= 0:
            raise ValueError(f"{name}: step must be positive, got {step!r}")
        if log:
            raise ValueError(
                f"{name}: give log or step, not both (Optuna samples one or the other)"
            )
        steps = (high - low) / step
        if not math.isclose(steps, round(steps), abs_tol=1e-9):
            top = low + math.floor(steps + 1e-9) * step
            raise ValueError(
                f"{name}: the step {step!r} does not divide the range {low!r}..{high!r}; "
                f"high={top!r} is the last value it reaches"
            )
    if log and low <= 0:
        raise ValueError(f"{name}: a log range needs low > 0, got low={low!r}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _number(name: str, field: str, value: Any, kind: str) -> int | float:
    if value is None:
        raise ValueError(f"{name}: type {kind} needs {field}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: {field} of an int range must be an integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name}: {field} must be a finite number, got {value!r}")
    return float(value)


def _choices(name: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"{name}: categorical needs a non-empty list of choices, got {choices!r}")
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise TypeError(
                f"{name}: choices must be numbers, text, true/false or null (what Optuna "
                f"records), got {choice!r}; to choose between classes, list their paths as text "
                "where the config takes a class_path"
            )
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise ValueError(f"{name}: choices {choices!r} repeat a value")
    return tuple(choices)


def check_overrides(overrides: Any) -> list[str]:
    """Fixed settings for every trial, as the CLI takes them: ``--section.key=value``."""
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, (list, tuple)):
        raise TypeError(
            f"{OWNER}: overrides must be a list of '--section.key=value' strings, got {overrides!r}"
        )
    for item in overrides:
        key = item[2:].partition("=")[0] if isinstance(item, str) else ""
        if not (isinstance(item, str) and item.startswith("--") and "=" in item and key):
            raise ValueError(
                f"{OWNER}: each override is '--section.key=value' (e.g. "
                f"'--trainer.max_epochs=5'), got {item!r}"
            )
        if key in RESERVED or key.split(".")[0] in RESERVED:
            reason = RESERVED.get(key, RESERVED.get(key.split(".")[0]))
            raise ValueError(f"{OWNER}: override {item!r} cannot be given: {reason}")
    return list(overrides)


def override(key: str, value: Any) -> str:
    """The command-line form of one setting: ``--key=value``, text as it is when YAML reads it
    back as the same text (``csv``, ``lightkit.optim.sgd``; jsonargparse keeps quotes for
    ``str`` settings), everything else as JSON (which YAML reads)."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        if plain:
            return f"--{key}={value}"
    return f"--{key}={json.dumps(value)}"


def lookup(config: Any, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted key in a parsed config (namespaces and dicts)."""
    node = config
    for part in key.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return False, None
            node = node[part]
        elif hasattr(node, "__dict__") and part in vars(node):
            node = vars(node)[part]
        else:
            return False, None
    return True, node


def same_value(parsed: Any, value: Any) -> bool:
    """Whether the config kept ``value`` as given (an int where a float is taken counts)."""
    if isinstance(value, bool) or isinstance(parsed, bool):
        return type(parsed) is type(value) and parsed == value
    if isinstance(value, (int, float)) and isinstance(parsed, (int, float)):
        return float(parsed) == float(value)
    return parsed == value
