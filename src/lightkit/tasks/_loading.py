"""load_task(): a task module rebuilt from a checkpoint under lightkit's trust policy, from one read."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import torch

from lightkit._metadata import CheckpointMetadata
from lightkit._spec import check_trust, qualified_name, stored_bytes, trusting
from lightkit._validation import check_path, short_repr
from lightkit.checkpointing import CheckpointError, load_checkpoint
from lightkit.tasks._bookkeeping import check_recorded_temperature


def load_task(
    cls: Any,
    checkpoint_path: str | os.PathLike[str],
    *,
    map_location: Any,
    hparams_file: str | os.PathLike[str] | None,
    strict: bool | None,
    trust: str | list[str] | None,
    overrides: Mapping[str, Any],
) -> Any:
    """``cls.load_from_checkpoint``'s work (see :meth:`lightkit.TaskModule.load_from_checkpoint`)."""
    trusted = check_trust(trust, f"{cls.__name__}.load_from_checkpoint")
    check_path(f"{cls.__name__}.load_from_checkpoint", "checkpoint_path", checkpoint_path)
    path = os.fspath(checkpoint_path)
    if map_location is None:
        map_location = None if torch.cuda.is_available() else "cpu"
    # Read once: what is checked is what is built (no second read that a swapped file could
    # change), and the module is built by lightkit, never by an instantiator the file names.
    checkpoint = load_checkpoint(path, map_location=map_location)
    meta = CheckpointMetadata.from_checkpoint(checkpoint, path)
    _check_recorded_task(cls, meta.task, path)
    hparams = _read_hparams(hparams_file) if hparams_file is not None else None
    if hparams is None:
        hparams = checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY, {})
    if not isinstance(hparams, Mapping) or not all(isinstance(k, str) for k in hparams):
        raise CheckpointError(
            f"{cls.__name__}.load_from_checkpoint: the hyperparameters in {path!r} are "
            f"{short_repr(hparams)}, expected a dict of argument names to values"
        )
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise CheckpointError(
            f"{cls.__name__}.load_from_checkpoint: {path!r} has no valid 'state_dict' (a dict "
            "of names to tensors)"
        )
    # Keys starting with "_" are LightningCLI's instructions (`_instantiator`, `_class_path`),
    # not arguments: lightkit never lets a file choose how the module is built.
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    init_args.update(overrides)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        init_args = {k: v for k, v in init_args.items() if k in params and k != "self"}
    with trusting(trusted, max_bytes=stored_bytes(state_dict.values())):
        module = cls(**init_args)
    module._task_state.restore(checkpoint, path, resuming=False)
    check_recorded_temperature(module, module._task_state, path)
    module._task_state.loaded_from = path
    module.stage_metrics("val")  # a metric with persistent states has them in the state_dict
    module.on_load_checkpoint(checkpoint)  # your own hook, if you override it
    strict = module.strict_loading if strict is None else strict
    try:
        module.load_state_dict(state_dict, strict=strict)
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        raise CheckpointError(
            f"{cls.__name__}.load_from_checkpoint: the weights in {path!r} do not fit the "
            f"module built from its hyperparameters: {err}"
        ) from None
    first = next(iter(state_dict.values()), None)
    return module.to(first.device) if first is not None else module


def _check_recorded_task(cls: type, recorded: str | None, path: str) -> None:
    """Refuse a checkpoint that a different task class wrote (its outputs would mean other things)."""
    if recorded is None:
        return  # a plain Lightning checkpoint: nothing recorded to compare
    expected = qualified_name(cls)
    same = recorded == expected or (
        "__main__" in (recorded.rpartition(".")[0], cls.__module__)
        and recorded.rpartition(".")[2] == cls.__qualname__
    )
    if not same:
        raise TypeError(
            f"{cls.__name__}.load_from_checkpoint: {path!r} was written by {recorded}, not "
            f"{expected}; load it with that class (or lk.Predictor.from_checkpoint, which picks "
            "it), or load only its weights with "
            "module.load_state_dict(lk.checkpointing.load_checkpoint(path)['state_dict'])"
        )


def _read_hparams(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Hyperparameters from a YAML file, read as plain data (``yaml.safe_load``)."""
    import yaml

    name = os.fspath(path)
    if not name.lower().endswith((".yaml", ".yml")):
        raise ValueError(f"load_from_checkpoint: hparams_file must be a .yaml file, got {name!r}")
    with open(name, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"load_from_checkpoint: {name!r} is not valid YAML: {err}") from None
    if not isinstance(values, Mapping):
        raise ValueError(
            f"load_from_checkpoint: {name!r} must hold a mapping, got {short_repr(values)}"
        )
    return values


__all__ = ["load_task"]
