"""Checkpoint files: atomic writes, safe (weights-only) loading, damaged-file detection and fallback."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged (truncated, corrupt) or unsafe to unpickle."""


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: tensors and plain data only.

    Nothing in the file is executed: a checkpoint that pickles arbitrary objects (which could run
    code when unpickled) is refused, and so is a truncated or corrupt file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is damaged, or holds objects that are not plain data.

    Example:
        >>> ckpt = lk.checkpointing.load_checkpoint("runs/version_0/checkpoints/last.ckpt")
        >>> ckpt["hyper_parameters"]
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"refusing to load checkpoint {path!r}: it contains pickled Python objects that are "
                "not plain data (tensors, numbers, strings, lists, dicts), and unpickling them could "
                "run arbitrary code. lightkit loads checkpoints with torch.load(weights_only=True); "
                f"if you trust this file, load it yourself with weights_only=False. Details: "
                f"{str(err).splitlines()[0]}"
            ) from None
        raise CheckpointError(_damaged(path, err)) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(_damaged(path, err)) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {path!r} holds a {type(checkpoint).__name__}, not a Lightning checkpoint dict"
        )
    return checkpoint


def _damaged(path: str, err: BaseException) -> str:
    return (
        f"checkpoint {path!r} is damaged (truncated or corrupt) and cannot be loaded: "
        f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    )


def newest_good_checkpoint(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """The most recently modified of ``paths`` that loads, or None."""
    existing = [Path(p) for p in paths if Path(p).is_file()]
    for candidate in sorted(existing, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            load_checkpoint(candidate)
        except CheckpointError:
            continue
        return str(candidate)
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written checkpoint behind.

    * Saving writes to a temporary file in the same folder, flushes and fsyncs it, then renames it
      over the target with ``os.replace`` (atomic on POSIX and Windows); a process killed during a
      save leaves the previous checkpoint intact.
    * Loading uses :func:`load_checkpoint` (``weights_only=True``); a damaged file raises a
      :class:`CheckpointError` naming it. When a damaged file is a ``last*.ckpt`` (as picked by
      ``trainer.fit(ckpt_path="last")``), the newest good checkpoint in the same folder is loaded
      instead, with a warning naming both files.

    ``lk.make_trainer`` installs it; pass ``plugins=[lk.checkpointing.AtomicCheckpointIO()]`` to
    a plain ``Trainer`` to get the same behaviour.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"AtomicCheckpointIO.save_checkpoint got storage_options={storage_options!r}; "
                "it writes local files only"
            )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(target.parent)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        map_location: Any = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(
                "lightkit loads checkpoints with weights_only=True only; got weights_only=False"
            )
        location = map_location if map_location is not None else "cpu"
        try:
            return load_checkpoint(path, map_location=location)
        except CheckpointError as err:
            if "damaged" not in str(err) or not Path(path).name.startswith("last"):
                raise
            folder = Path(path).parent
            others = [p for p in folder.glob("*.ckpt") if p.resolve() != Path(path).resolve()]
            fallback = newest_good_checkpoint(others)
            if fallback is None:
                raise
            rank_zero_warn(
                f"lightkit: {os.fspath(path)!r} is damaged (truncated or corrupt); resuming from "
                f"the newest good checkpoint instead: {fallback!r}"
            )
            return load_checkpoint(fallback, map_location=location)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["AtomicCheckpointIO", "CheckpointError", "load_checkpoint", "newest_good_checkpoint"]
