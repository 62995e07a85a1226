"""CheckpointMetadata: the ``"lightkit"`` section of a checkpoint, written and read in one place.

A lightkit task module records, next to Lightning's own entries, what inference needs to rebuild
and feed it from the file alone: its class, the shape of one input sample and how files become
inputs (the eval transform's spec). Tasks write it (through their bookkeeping callback),
``load_from_checkpoint``, ``lk.Predictor``, ``lightkit serve`` and the CLI read it, all through
this class. A checkpoint is untrusted input, so :meth:`CheckpointMetadata.from_checkpoint`
checks every field before anyone uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lightkit._validation import check_class_names, short_repr
from lightkit.checkpointing import CheckpointError

_MAX_DIMS = 8
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3
_IMAGE_MODES = ("RGB", "L", "RGBA")


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a lightkit checkpoint records for inference.

    Args:
        task: The task module's ``module.QualifiedName`` (None: not written by a lightkit task).
        input_shape: The shape of one input sample, as seen in training (None: not recorded).
        inference: ``{"transform": <eval transform spec>, "image_mode": "RGB"}`` when the data
            module could describe its eval transform, else None.
        class_names: The name of each class (label ``i`` is ``class_names[i]``), when the data
            module knew them (``ImageFolderDataModule``'s folders, ``class_names=``).
        temperature: The temperature ``lk.calibrate`` fitted (logits are divided by it before
            the softmax or sigmoid at inference), or None.
    """

    KEY: ClassVar[str] = "lightkit"

    task: str | None = None
    input_shape: tuple[int, ...] | None = None
    inference: dict[str, Any] | None = None
    class_names: tuple[str, ...] | None = None
    temperature: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain-data section saved under ``checkpoint["lightkit"]``."""
        return {
            "task": self.task,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "inference": self.inference,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "temperature": self.temperature,
        }

    @property
    def transform_spec(self) -> Mapping[str, Any] | None:
        """The recorded eval transform's spec (checked against the trust policy when used)."""
        spec = (self.inference or {}).get("transform")
        return spec if isinstance(spec, Mapping) else None

    @property
    def image_mode(self) -> str:
        """The PIL mode images were loaded in for training (``"RGB"`` when not recorded)."""
        return (self.inference or {}).get("image_mode") or "RGB"

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any], where: str) -> CheckpointMetadata:
        """Read and check the section of a loaded checkpoint; ``where`` names the file in errors.

        A checkpoint without the section (plain Lightning) gives an empty one. A malformed field
        raises :class:`~lightkit.checkpointing.CheckpointError` naming it.
        """
        section = checkpoint.get(cls.KEY)
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise CheckpointError(
                f"{where}: the checkpoint's 'lightkit' section is a {type(section).__name__}, "
                "expected a dict"
            )
        task = section.get("task")
        if task is not None and not isinstance(task, str):
            raise CheckpointError(
                f"{where}: the checkpoint records its task as {short_repr(task)}, not a name"
            )
        return cls(
            task=task or None,
            input_shape=_checked_shape(section.get("input_shape"), where),
            inference=_checked_inference(section.get("inference"), where),
            class_names=_checked_names(section.get("class_names"), where),
            temperature=checked_temperature(section.get("temperature"), where),
        )


def _checked_shape(shape: Any, where: str) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if not (
        isinstance(shape, (list, tuple))
        and 0 < len(shape) <= _MAX_DIMS
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise CheckpointError(
            f"{where}: the checkpoint records input_shape {short_repr(shape)}; expected a list "
            f"of 1 to {_MAX_DIMS} positive integers"
        )
    return tuple(shape)


def _checked_names(names: Any, where: str) -> tuple[str, ...] | None:
    try:
        return check_class_names(where, "the checkpoint's class_names", names)
    except (TypeError, ValueError) as err:
        raise CheckpointError(str(err)) from None


def checked_temperature(value: Any, where: str) -> float | None:
    """A recorded temperature: None, or a finite float in [1e-3, 1e3] (a file may hold anything)."""
    if value is None:
        return None
    try:
        number = float(value) if isinstance(value, (int, float)) else math.nan
    except OverflowError:  # an int beyond float range
        number = math.inf
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(number)
        or not MIN_TEMPERATURE <= number <= MAX_TEMPERATURE
    ):
        raise CheckpointError(
            f"{where}: the checkpoint records temperature {short_repr(value)}; expected a number "
            f"in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}] (or none)"
        )
    return number


def _checked_inference(inference: Any, where: str) -> dict[str, Any] | None:
    if inference is None:
        return None
    if not isinstance(inference, Mapping):
        raise CheckpointError(
            f"{where}: the checkpoint's inference record is {short_repr(inference)}; expected a "
            "dict with 'transform' and 'image_mode'"
        )
    mode = inference.get("image_mode")
    if mode is not None and mode not in _IMAGE_MODES:
        raise CheckpointError(
            f"{where}: the checkpoint records image_mode {short_repr(mode)}; expected one of "
            + ", ".join(repr(m) for m in _IMAGE_MODES)
        )
    return dict(inference)


__all__ = ["MAX_TEMPERATURE", "MIN_TEMPERATURE", "CheckpointMetadata", "checked_temperature"]
