"""Checkpoint files: atomic writes, safe (weights-only) loading, damaged-file detection and fallback."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import pickle
import pickletools
import posixpath
import re
import secrets
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from lightkit._processes import alive
from lightkit._validation import short_repr

# A temporary file newer than this may still be being written (here, or by a process on another
# machine that shares the folder, whose pid means nothing here): it is never removed.
_TEMP_GRACE_S = 60.0
# Every temporary file this process writes is newer than this (the import of lightkit).
_STARTED = time.time()
# Only lightkit's own temporary checkpoint files match (another program's `.x.123.tmp` never does).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+\.ckpt)\.lightkit-(?P<pid>\d+)\.tmp$")
# torch.save's legacy (pre-zip) format begins with a pickled magic number: protocol 2, LONG1.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
# How torch's PyTorchStreamWriter reports a write that failed underneath it.
_WRITER_FAILURE = re.compile(r"PytorchStreamWriter failed|unexpected pos|file write failed")
_SAFE_DATA = "plain data (tensors, numbers, strings, lists, dicts)"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, unsafe to unpickle, or not writable.

    The base of :class:`DamagedCheckpointError`, :class:`UnsafeCheckpointError` and
    :class:`CheckpointSaveError`: catch it to handle any checkpoint that lightkit refuses.

    Example:
        >>> with open("notes.ckpt", "w") as f:  # not something torch.save wrote
        ...     _ = f.write("epoch 3, val/loss 0.41")
        >>> try:
        ...     lk.checkpointing.load_checkpoint("notes.ckpt")
        ... except lk.checkpointing.CheckpointError as error:
        ...     print(type(error).__name__)
        DamagedCheckpointError
    """


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file whose bytes are not what ``torch.save`` wrote: truncated or corrupt.

    Example:
        >>> with open(checkpoint, "rb") as f:  # a copy cut short, as by a full disk or a kill
        ...     data = f.read()
        >>> with open("cut.ckpt", "wb") as f:
        ...     _ = f.write(data[: len(data) // 2])
        >>> try:
        ...     lk.checkpointing.load_checkpoint("cut.ckpt")
        ... except lk.checkpointing.DamagedCheckpointError as error:
        ...     print(error)
        checkpoint 'cut.ckpt' is damaged (truncated or corrupt) and cannot be loaded: ...
    """


class UnsafeCheckpointError(CheckpointError):
    """An intact checkpoint file that pickles Python objects other than plain data.

    Example:
        >>> from fractions import Fraction
        >>> torch.save({"state_dict": {}, "ratio": Fraction(1, 3)}, "unsafe.ckpt")
        >>> try:
        ...     lk.checkpointing.load_checkpoint("unsafe.ckpt")
        ... except lk.checkpointing.UnsafeCheckpointError as error:
        ...     print(error)
        refusing to load checkpoint 'unsafe.ckpt': it pickles the Python object
        'fractions.Fraction', which is not plain data ...
    """


class CheckpointSaveError(OSError, CheckpointError):
    """Writing a checkpoint failed (a full disk, no permission...); the previous file is intact.

    It is an ``OSError`` too, with the ``errno`` of the failure (``errno.ENOSPC`` for a full disk)
    and the checkpoint's path as ``filename``.

    Example:
        >>> open("runs_file", "w").close()  # a file where the checkpoint folder should be
        >>> io = lk.checkpointing.AtomicCheckpointIO()
        >>> try:
        ...     io.save_checkpoint({"epoch": 0}, "runs_file/last.ckpt")
        ... except lk.checkpointing.CheckpointSaveError as error:
        ...     print(error.filename, isinstance(error, OSError))
        ...     print(error)
        runs_file/last.ckpt True
        cannot save checkpoint 'runs_file/last.ckpt': FileExistsError: ... No file was written,
        and the partial temporary file was removed. ...
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: tensors and plain data only.

    Nothing in the file is executed. The file is checked first: ``torch.save`` writes a zip
    archive with a CRC-32 checksum per entry, and every entry must be complete and match its
    checksum, so a truncated, bit-flipped or random file is reported as damaged rather than
    loaded with wrong weights (``torch.load`` itself does not check them). An intact file that
    pickles Python objects other than plain data (which could run code when unpickled) is
    refused, naming the object.

    Raises:
        FileNotFoundError: no such file.
        DamagedCheckpointError: the file is truncated or corrupt (a :class:`CheckpointError`).
        UnsafeCheckpointError: the file holds objects that are not plain data (a
            :class:`CheckpointError`).
        CheckpointError: the file holds something other than a checkpoint dict.

    Example:
        >>> ckpt = lk.checkpointing.load_checkpoint(checkpoint)  # a path or a URL (s3://...)
        >>> ckpt["epoch"], ckpt["global_step"]
        (0, 3)
        >>> ckpt["hyper_parameters"]["num_classes"], ckpt["hyper_parameters"]["net"]["class_path"]
        (3, 'lightkit.models.mlp.MLP')
        >>> ckpt["state_dict"]["net.layers.0.0.weight"].shape
        torch.Size([16, 8])
    """
    if is_url(path):
        url = os.fspath(path)
        with _local_copy(url) as local:
            return _load(local, url, map_location)
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a folder, not a checkpoint file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"checkpoint {path!r} {what}")
    return _load(path, path, map_location)


def _load(path: str, shown: str, map_location: Any) -> dict[str, Any]:
    """:func:`load_checkpoint` of the local file ``path``, named ``shown`` in messages."""
    layout = _check_intact(path, shown)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        names = _globals_in(path) if layout == "zip" else []
        found = _unsupported_global(err) or (names[0] if names else None)
        if found is None and layout != "zip":
            raise DamagedCheckpointError(_damaged(shown, _torch_reason(err))) from None
        if found is None:  # intact (checksums match): what torch.save wrote, not damage
            what = f"objects that torch.load(weights_only=True) refuses ({_torch_reason(err)})"
        else:
            others = [name for name in names if name != found]
            what = f"the Python object {found!r}"
            what += f" (the file also names {', '.join(others)})" if others else ""
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint {shown!r}: it pickles {what}, which is not {_SAFE_DATA}, "
            "and unpickling it could run arbitrary code. lightkit loads checkpoints with "
            "torch.load(weights_only=True) only and will not load this file. If you wrote it, "
            "store plain data in place of such objects (a string or a dict of numbers in "
            "save_hyperparameters or on_save_checkpoint, a state_dict for a module) and save the "
            "checkpoint again"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        if layout != "zip":
            raise DamagedCheckpointError(_damaged(shown, _first_detail(err))) from err
        # The checksums matched, so these are the bytes torch.save wrote (a map_location this
        # machine lacks, for one): not damage.
        raise CheckpointError(
            f"checkpoint {shown!r} is intact but cannot be loaded here: {_first_detail(err)}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {shown!r} holds a {type(checkpoint).__name__}, not a Lightning checkpoint dict"
        )
    return checkpoint


def _check_intact(path: str, shown: str) -> str:
    """``"zip"`` or ``"legacy"`` (torch.save's format); :class:`DamagedCheckpointError` unless the
    file's structure and checksums are sound."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_MAGIC))
    if not head:
        raise DamagedCheckpointError(_damaged(shown, "the file is empty (0 bytes)"))
    if head.startswith(_LEGACY_MAGIC):
        return "legacy"  # no checksums in this format; torch.load reports what it finds
    if not head.startswith(b"PK"):
        raise DamagedCheckpointError(
            _damaged(
                shown,
                f"it is not a file torch.save writes (a zip archive): it starts with {head[:8]!r}",
            )
        )
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if not any(e.filename.rsplit("/", 1)[-1] == "data.pkl" for e in entries):
                raise DamagedCheckpointError(
                    _damaged(
                        shown,
                        "the zip archive has no data.pkl entry, so torch.save did not write it",
                    )
                )
            for entry in entries:
                if entry.CRC == 0 and entry.file_size > 0:
                    continue  # written with torch.serialization.set_crc32_options(False)
                with archive.open(entry) as member:  # raises BadZipFile on a checksum mismatch
                    while member.read(1 << 24):
                        pass
    except zipfile.BadZipFile as err:
        detail = str(err)
        if "Bad CRC-32" in detail:
            detail += " (bytes changed on disk or in transfer)"
        elif "not a zip file" in detail:
            detail = f"the zip archive's directory is missing: the file ends early ({size} bytes)"
        raise DamagedCheckpointError(_damaged(shown, detail)) from None
    except (OSError, EOFError, ValueError, NotImplementedError, zlib.error) as err:
        raise DamagedCheckpointError(_damaged(shown, _first_detail(err))) from None
    return "zip"


def _unsupported_global(err: BaseException) -> str | None:
    """The global that torch's weights-only unpickler refused, if that is what ``err`` says."""
    text = str(err)
    found = (
        re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        or re.search(r"unsupported GLOBAL ([\w.]+)", text)
        or re.search(r"Unsupported class ([\w.]+)", text)
    )
    if not found:
        return None
    name = found.group(1)
    return name if "." in name else f"builtins.{name}"


def _globals_in(path: str, limit: int = 64 << 20) -> list[str]:
    """The importable names an intact archive's pickle refers to, other than torch's own.

    Read with :mod:`pickletools`, which parses the opcodes and runs nothing.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entry = next(e for e in archive.infolist() if e.filename.endswith("data.pkl"))
            if entry.file_size > limit:
                return []
            data = archive.read(entry)
    except (OSError, StopIteration, zipfile.BadZipFile):
        return []
    names: list[str] = []
    pushed: list[Any] = []  # recent stack pushes, enough to name STACK_GLOBAL's two strings
    memo: dict[int, Any] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            op = opcode.name
            if op in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif op == "STACK_GLOBAL" and len(pushed) >= 2:
                module, attr = pushed[-2], pushed[-1]
                name = f"{module}.{attr}" if isinstance(module, str) else "?"
            elif op == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
                continue
            elif op in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = pushed[-1] if pushed else None
                continue
            elif op in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(int(arg)))
                continue
            else:
                pushed.append(arg if isinstance(arg, str) else None)
                continue
            pushed.append(None)
            name = name.replace("__builtin__.", "builtins.", 1)
            safe = name.startswith("torch.") or name == "collections.OrderedDict"
            if not safe and name not in names:
                names.append(name)
    except (ValueError, EOFError, KeyError, IndexError):
        pass  # names found so far
    return names


def _torch_reason(err: BaseException) -> str:
    """The line of a weights-only failure that says what was refused, without torch's advice."""
    advice = ("weights_only", "Check the documentation", "Please file", "(1)", "(2)")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not any(a in line for a in advice)]
    reason = reasons[0] if reasons else ""
    return reason.removeprefix("WeightsUnpickler error:").strip() or type(err).__name__


def _first_detail(err: BaseException) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _damaged(path: str, detail: str) -> str:
    return (
        f"checkpoint {path!r} is damaged (truncated or corrupt) and cannot be loaded: {detail}. "
        "Use another checkpoint (best.ckpt, an earlier one) or copy the file again; lightkit "
        "never loads a damaged file"
    )


def newest_good_checkpoint(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """The most recently modified of ``paths`` (local files or URLs) that loads, or None.

    Paths that do not exist are skipped, and so are files that fail to load with a
    :class:`CheckpointError` (damaged, unsafe).

    Example:
        >>> import os, shutil
        >>> _ = shutil.copyfile(checkpoint, "epoch3.ckpt")
        >>> os.utime("epoch3.ckpt", (0, 0))  # older
        >>> with open("last.ckpt", "wb") as f:  # newer, but cut short by a kill
        ...     _ = f.write(b"PK\x03\x04")
        >>> lk.checkpointing.newest_good_checkpoint(["last.ckpt", "epoch3.ckpt", "missing.ckpt"])
        'epoch3.ckpt'
    """
    for candidate in _newest_first(list(paths)):
        try:
            load_checkpoint(candidate)
        except CheckpointError:
            continue
        return candidate
    return None


# --- Checkpoints in fsspec stores (``memory://``, ``file://``, ``s3://``...) -------------------

# A temporary object a save into a store writes before committing it (pid and a random token:
# processes on several machines share the store, and their pids mean nothing here).
_STORE_TEMP_NAME = re.compile(r"^\.(?P<name>.+\.ckpt)\.lightkit-\d+-[0-9a-f]+\.tmp$")
_PROTOCOL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*")
_STORE_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                   "abfs": "adlfs", "abfss": "adlfs", "hf": "huggingface_hub"}  # fmt: skip


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL (``"<protocol>://..."``) that lightkit opens with fsspec.

    A ``pathlib.Path`` is never one (it turns ``//`` into ``/``).

    Example:
        >>> from pathlib import Path
        >>> is_url = lk.checkpointing.is_url
        >>> is_url("s3://bucket/runs/last.ckpt"), is_url("runs/last.ckpt")
        (True, False)
        >>> is_url(Path("memory://runs"))  # Path made it 'memory:/runs'
        False
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        return False
    text = os.fspath(path)
    return isinstance(text, str) and "://" in text


def store_filesystem(url: str, owner: str = "lightkit", name: str = "path") -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path inside it.

    A URL fsspec cannot open is an error that names ``owner``'s argument ``name``: an unknown
    protocol, a missing package (``s3fs`` for ``s3://``...) or the root of a store.

    Example:
        >>> fs, path = lk.checkpointing.store_filesystem("memory://runs")
    """
    import fsspec

    protocol = url.split("://", 1)[0]
    expected = (
        "a local folder, or a URL fsspec opens such as 'memory://runs', 'file:///data/runs' or "
        "'s3://bucket/runs'"
    )
    if not _PROTOCOL.fullmatch(protocol):
        raise ValueError(f"{owner}: {name}={url!r} is not a URL fsspec opens; expected {expected}")
    try:
        fs, inner = fsspec.core.url_to_fs(url)
    except ImportError as err:
        package = _STORE_PACKAGES.get(
            protocol.split("::")[-1], f"the fsspec package for {protocol}"
        )
        raise ModuleNotFoundError(
            f"{owner}: {name}={url!r} needs {package} (pip install {package}): {err}"
        ) from None
    except (ValueError, TypeError, KeyError) as err:  # fsspec: "Protocol not known: ..."
        raise ValueError(
            f"{owner}: {name}={url!r}: {_first_detail(err)}; expected {expected}"
        ) from None
    if not str(inner).strip("/"):
        raise ValueError(
            f"{owner}: {name}={url!r} is the root of the store; name a folder inside it "
            f"(e.g. '{protocol}://runs' or '{protocol}://bucket/runs')"
        )
    return fs, str(inner).rstrip("/")


def store_mtime(fs: Any, path: str) -> float | None:
    """When ``path`` in the store ``fs`` was last written (seconds since the epoch), if known.

    Example:
        >>> import time
        >>> fs, path = lk.checkpointing.store_filesystem("memory://store_mtime_example/a.txt")
        >>> fs.pipe(path, b"written now")
        >>> abs(lk.checkpointing.store_mtime(fs, path) - time.time()) < 60
        True
        >>> lk.checkpointing.store_mtime(fs, "/store_mtime_example/missing.txt") is None
        True
    """
    try:
        value: Any = fs.modified(path)
    except (NotImplementedError, OSError, AttributeError, ValueError):
        try:
            info = fs.info(path)
        except OSError:
            return None
        value = next(
            (info[k] for k in ("mtime", "LastModified", "last_modified", "created") if info.get(k)),
            None,
        )
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@contextlib.contextmanager
def _local_copy(url: str) -> Iterator[str]:
    """The bytes of the checkpoint at ``url`` in a local temporary file, removed afterwards."""
    fs, path = store_filesystem(url, "load_checkpoint", "path")
    try:
        kind = fs.info(path).get("type")
    except FileNotFoundError:
        kind = None
    if kind != "file":
        what = "is a folder, not a checkpoint file" if kind == "directory" else "does not exist"
        raise FileNotFoundError(f"checkpoint {url!r} {what}")
    fd, local = tempfile.mkstemp(prefix="lightkit-", suffix=".ckpt")
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 24)
        yield local
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)


def _save_to_store(checkpoint: dict[str, Any], url: str) -> None:
    """Write-then-commit into a store without atomic rename: the bytes go to a hidden temporary
    object, which only a complete write moves (one copy of a whole object) to the target name."""
    fs, target = store_filesystem(url, "AtomicCheckpointIO.save_checkpoint", "path")
    folder, name = posixpath.split(target)
    tmp = f"{folder}/.{name}.lightkit-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fs.makedirs(folder, exist_ok=True)
        remove_stale_store_temps(fs, folder)
        with fs.open(tmp, "wb") as f:
            torch.save(checkpoint, f)
        fs.mv(tmp, target)  # the commit; until here the target is the previous complete file
    except (OSError, RuntimeError, ValueError) as err:
        code = getattr(_os_error_in(err), "errno", None)
        error = CheckpointSaveError(
            f"cannot save checkpoint {url!r}: {_first_detail(err)}. The previous checkpoint "
            "there (if any) is unchanged, and the partial temporary object was removed. Check "
            "that the store is reachable and writable"
        )
        error.errno = code if code is not None else errno.EIO
        error.filename = url
        raise error from err
    finally:
        with contextlib.suppress(Exception):
            if fs.exists(tmp):
                fs.rm_file(tmp)


def remove_stale_store_temps(fs: Any, folder: str) -> list[str]:
    """Remove the temporary objects that killed saves left in the store folder ``folder``.

    Only lightkit's own names (``.<name>.ckpt.lightkit-<pid>-<token>.tmp``), and only those not
    written for a minute and older than the folder's newest complete ``.ckpt`` (a save that is
    still running elsewhere is newer than that); objects whose age the store does not tell are
    kept. Saves call it; call it yourself to tidy a store after crashes.

    Returns:
        The paths removed (inside ``fs``).

    Example:
        >>> import os, time
        >>> url = "file://" + os.path.abspath("checkpoints")  # any fsspec URL: s3://, gs://...
        >>> fs, folder = lk.checkpointing.store_filesystem(url)
        >>> fs.makedirs(folder, exist_ok=True)
        >>> killed = f"{folder}/.last.ckpt.lightkit-123-0a1b2c3d.tmp"  # a save killed part-way
        >>> fs.pipe(killed, b"half a checkpoint")
        >>> os.utime(killed, (time.time() - 120,) * 2)  # two minutes ago
        >>> fs.pipe(f"{folder}/last.ckpt", b"the next complete save")
        >>> [os.path.basename(p) for p in lk.checkpointing.remove_stale_store_temps(fs, folder)]
        ['.last.ckpt.lightkit-123-0a1b2c3d.tmp']
        >>> sorted(os.listdir("checkpoints"))
        ['last.ckpt']
    """
    try:
        names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(folder, detail=False)]
    except OSError:
        return []
    temps = [n for n in names if _STORE_TEMP_NAME.match(n)]
    if not temps:
        return []
    done = [store_mtime(fs, f"{folder}/{n}") for n in names if _is_checkpoint_name(n)]
    newest = max((t for t in done if t is not None), default=None)
    removed = []
    for name in temps:
        written = store_mtime(fs, f"{folder}/{name}")
        if written is None or newest is None:
            continue
        if time.time() - written >= _TEMP_GRACE_S and written < newest:
            with contextlib.suppress(OSError):
                fs.rm_file(f"{folder}/{name}")
                removed.append(f"{folder}/{name}")
    return removed


def _is_checkpoint_name(name: str) -> bool:
    return name.endswith(".ckpt") and not name.startswith(".")


def _store_siblings(url: str) -> list[str]:
    """The other ``.ckpt`` files beside ``url`` in its store, as URLs spelled like ``url``."""
    folder_url, name = url.rstrip("/").rsplit("/", 1)
    fs, folder = store_filesystem(folder_url, "load_checkpoint", "path")
    try:
        names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(folder, detail=False)]
    except OSError:
        return []
    return [f"{folder_url}/{n}" for n in sorted(names) if _is_checkpoint_name(n) and n != name]


def _newest_first(paths: list[str | os.PathLike[str]]) -> list[str]:
    """``paths`` that are files (local or in a store), most recently written first."""
    dated = []
    for p in paths:
        if is_url(p):
            url = os.fspath(p)
            fs, inner = store_filesystem(url, "newest_good_checkpoint", "paths")
            if fs.isfile(inner):
                dated.append((store_mtime(fs, inner) or 0.0, url))
        elif Path(p).is_file():
            dated.append((Path(p).stat().st_mtime, os.fspath(p)))
    return [p for _, p in sorted(dated, key=lambda entry: entry[0], reverse=True)]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written checkpoint behind.

    * Saving writes to a temporary file ``.<name>.lightkit-<pid>.tmp`` in the same folder,
      flushes and fsyncs it, then renames it over the target with ``os.replace`` (atomic on
      POSIX and Windows); a process killed during a save leaves the previous checkpoint intact.
      A failed write (a full disk, for one) raises :class:`CheckpointSaveError` naming the file,
      the folder and its free space, and removes the temporary file.
    * Temporary files left by killed processes are removed at the next save in their folder
      (:func:`remove_stale_temp_files`): those whose process is gone, or that are older than the
      folder's newest complete checkpoint. A temporary file modified in the last minute is never
      touched.
    * Loading uses :func:`load_checkpoint` (``weights_only=True``, checksums verified); a damaged
      file raises a :class:`CheckpointError` naming it. When a damaged file is a ``last*.ckpt``
      (as picked by ``trainer.fit(ckpt_path="last")``), the newest good checkpoint in the same
      folder is loaded instead, with a warning naming both files.
    * Removing (Lightning deletes checkpoints that fall out of ``save_top_k``) deletes only a file
      or link whose name ends in ``.ckpt``, never a folder; anything else is left with a warning.
    * A URL (``memory://``, ``file://``, ``s3://``..., any fsspec store) is written the same way
      where the store has no atomic rename: the bytes go to a hidden temporary object
      ``.<name>.lightkit-<pid>-<token>.tmp``, which only a complete write moves to the target
      name (fsspec's ``mv``: a rename, or one copy of the whole object), so the name a resume
      reads holds the previous complete checkpoint until the new one is whole. Temporary objects
      of killed saves are removed at a later save once older than the newest complete
      checkpoint (and a minute old). Loading downloads to a local temporary file first and
      checks it as above.

    ``lk.make_trainer`` installs it; pass ``plugins=[lk.checkpointing.AtomicCheckpointIO()]`` to
    a plain ``Trainer`` to get the same behaviour.

    Example:
        >>> import os
        >>> io = lk.checkpointing.AtomicCheckpointIO()
        >>> trainer = L.Trainer(plugins=[io], logger=False)  # what lk.make_trainer does
        >>> state = io.load_checkpoint(checkpoint)  # weights_only, checksums checked
        >>> io.save_checkpoint(state, "copy/last.ckpt")  # temporary file, fsync, rename
        >>> os.listdir("copy")  # no temporary file left behind
        ['last.ckpt']
        >>> io.load_checkpoint("copy/last.ckpt")["global_step"]
        3
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"AtomicCheckpointIO.save_checkpoint got storage_options={storage_options!r}; "
                "it takes no storage options (a URL's store is configured through fsspec)"
            )
        if is_url(path):
            _save_to_store(checkpoint, os.fspath(path))
            return
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _save_error(target, err, checkpoint) from err
        remove_stale_temp_files(target.parent)
        tmp = target.with_name(f".{target.name}.lightkit-{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as err:
            raise _save_error(target, err, checkpoint) from err
        except RuntimeError as err:
            # torch.save's zip writer turns a failed write into "unexpected pos ..." when it
            # closes the archive, with the OSError (ENOSPC, for one) only in the context chain.
            cause = _os_error_in(err)
            if cause is None and not _WRITER_FAILURE.search(str(err)):
                raise
            raise _save_error(target, cause or err, checkpoint) from err
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
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
            return check_training_state(load_checkpoint(path, map_location=location), path)
        except DamagedCheckpointError:
            if not os.fspath(path).replace("\\", "/").rsplit("/", 1)[-1].startswith("last"):
                raise
            if is_url(path):
                others: list[Any] = _store_siblings(os.fspath(path))
            else:
                folder = Path(path).parent
                others = [p for p in folder.glob("*.ckpt") if p.resolve() != Path(path).resolve()]
            fallback = newest_good_checkpoint(others)
            if fallback is None:
                raise
            rank_zero_warn(
                f"lightkit: {os.fspath(path)!r} is damaged (truncated or corrupt); resuming from "
                f"the newest good checkpoint instead: {fallback!r}"
            )
            return check_training_state(load_checkpoint(fallback, map_location=location), fallback)

    def remove_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Delete one checkpoint file (or a link named ``*.ckpt``); never a folder, never recursively."""
        if is_url(path):
            self._remove_from_store(os.fspath(path))
            return
        target = Path(path)
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            return
        is_file = stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)
        if is_file and target.name.endswith(".ckpt"):
            target.unlink()  # a link is removed, never what it points to
            return
        if stat.S_ISDIR(info.st_mode):
            kind = "a folder"
        elif is_file:
            kind = "a file whose name does not end in .ckpt"
        else:
            kind = "not a regular file"
        rank_zero_warn(
            f"lightkit: not removing {os.fspath(path)!r}, which Lightning asked to delete as an old "
            f"checkpoint: it is {kind}, and AtomicCheckpointIO deletes only files (or links) whose "
            "name ends in .ckpt, never recursively. Remove it yourself if it should go"
        )

    def _remove_from_store(self, url: str) -> None:
        fs, path = store_filesystem(url, "AtomicCheckpointIO.remove_checkpoint", "path")
        try:
            kind = fs.info(path).get("type")
        except FileNotFoundError:
            return
        if kind == "file" and path.endswith(".ckpt"):
            fs.rm_file(path)
            return
        what = "a folder" if kind == "directory" else "an object whose name does not end in .ckpt"
        rank_zero_warn(
            f"lightkit: not removing {url!r}, which Lightning asked to delete as an old "
            f"checkpoint: it is {what}, and AtomicCheckpointIO deletes only files whose name ends "
            "in .ckpt, never recursively. Remove it yourself if it should go"
        )


def check_training_state(
    checkpoint: dict[str, Any], path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Check the sections a resume hands to Lightning, so a malformed one is named up front.

    A checkpoint is untrusted input: without this, a string where Lightning expects a count, or
    an optimizer state without its parameter groups, fails deep inside torch or Lightning (or is
    silently accepted). Checked: ``epoch`` and ``global_step``, the loops' progress counters,
    ``optimizer_states``, ``lr_schedulers``, ``callbacks`` and EarlyStopping's state.

    Returns:
        ``checkpoint`` itself, unchanged.

    Raises:
        CheckpointError: naming the file and the malformed entry.

    Example:
        >>> from lightkit.checkpointing import check_training_state, load_checkpoint
        >>> ckpt = check_training_state(load_checkpoint(checkpoint), checkpoint)  # sound
        >>> ckpt["global_step"] = "3"  # edited by hand
        >>> try:
        ...     check_training_state(ckpt, "edited.ckpt")
        ... except lk.checkpointing.CheckpointError as error:
        ...     print(error)
        checkpoint 'edited.ckpt' cannot be resumed: global_step is malformed: expected an
        integer >= 0, got '3'
    """
    where = os.fspath(path)

    def bad(key: str, expected: str, value: Any) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {where!r} cannot be resumed: {key} is malformed: expected {expected}, "
            f"got {short_repr(value)}"
        )

    version = checkpoint.get("pytorch-lightning_version", "2.0.0")
    major = re.match(r"(\d+)\.\d+", version) if isinstance(version, str) else None
    if (
        major is None or int(major.group(1)) < 2
    ):  # Lightning would run its legacy migrations on the file's contents
        raise bad("pytorch-lightning_version", "a Lightning 2.x version string", version)
    for key in ("epoch", "global_step"):
        value = checkpoint.get(key, 0)
        if not _is_count(value):
            raise bad(key, "an integer >= 0", value)
    loops = checkpoint.get("loops", {})
    if not isinstance(loops, dict):
        raise bad("loops", "a dict", loops)
    _check_progress(loops, "loops", bad)
    optimizers = checkpoint.get("optimizer_states", [])
    if not isinstance(optimizers, list):
        raise bad("optimizer_states", "a list of optimizer state dicts", optimizers)
    for i, state in enumerate(optimizers):
        key = f"optimizer_states[{i}]"
        if not isinstance(state, dict) or not isinstance(state.get("state", {}), dict):
            raise bad(key, "a dict with 'state' and 'param_groups'", state)
        groups = state.get("param_groups")
        if not isinstance(groups, list) or not groups:
            raise bad(f"{key}['param_groups']", "a non-empty list of dicts", groups)
        for j, group in enumerate(groups):
            if not isinstance(group, dict) or not (
                isinstance(group.get("params"), list) and all(_is_count(p) for p in group["params"])
            ):
                raise bad(
                    f"{key}['param_groups'][{j}]", "a dict with a list of 'params' ids", group
                )
            lr = group.get("lr", 0.0)
            if isinstance(lr, torch.Tensor):
                lr = lr.item() if lr.numel() == 1 else None
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
                raise bad(f"{key}['param_groups'][{j}]['lr']", "a finite number", group.get("lr"))
    schedulers = checkpoint.get("lr_schedulers", [])
    if not isinstance(schedulers, list) or not all(isinstance(s, dict) for s in schedulers):
        raise bad("lr_schedulers", "a list of scheduler state dicts", schedulers)
    callbacks = checkpoint.get("callbacks", {})
    if not isinstance(callbacks, dict) or not all(isinstance(v, dict) for v in callbacks.values()):
        raise bad("callbacks", "a dict of callback state dicts", callbacks)
    for name, state in callbacks.items():
        if str(name).startswith("EarlyStopping"):
            for field in ("wait_count", "stopped_epoch", "patience"):
                if field in state and not _is_count(state[field]):
                    raise bad(f"callbacks[{name!r}][{field!r}]", "an integer >= 0", state[field])
            score = state.get("best_score")
            if score is not None and not (isinstance(score, torch.Tensor) and score.numel() == 1):
                raise bad(f"callbacks[{name!r}]['best_score']", "a scalar tensor", score)
    return checkpoint


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_progress(value: Any, key: str, bad: Any, depth: int = 0) -> None:
    """Lightning's progress counters (``ready``/``started``/``processed``/``completed``)."""
    if depth > 12:
        raise bad(key, "Lightning's loop state (nested at most 12 deep)", "...")
    if not isinstance(value, dict):
        return
    if "completed" in value and "ready" in value:
        for name in ("ready", "started", "processed", "completed"):
            if name in value and not _is_count(value[name]):
                raise bad(f"{key}[{name!r}]", "an integer >= 0", value[name])
    for name, item in value.items():
        _check_progress(item, f"{key}[{name!r}]", bad, depth + 1)


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the ``.<name>.ckpt.lightkit-<pid>.tmp`` files that killed saves left in ``folder``.

    Called before each save into a run's checkpoint folder (never on a load: a checkpoint may be
    read from a folder that is not lightkit's). Files of any other name are never touched.

    A temporary file is stale when it has not been modified for a minute and either the process
    that wrote it is gone (or it predates this process, where the pid is this process's own) or it
    is older than the newest complete ``*.ckpt`` in the folder. A temporary file that a live
    process may still be writing is never removed. Failures to remove are ignored.

    Returns:
        The paths removed.

    Example:
        >>> lk.checkpointing.remove_stale_temp_files("runs/version_0/checkpoints")
        []
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    temps = [(name, int(m["pid"])) for name in names if (m := _TEMP_NAME.match(name))]
    if not temps:
        return []
    newest = _newest_checkpoint_mtime(folder, names)
    now = time.time()
    removed = []
    for name, pid in temps:
        tmp = folder / name
        try:
            info = os.lstat(tmp)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < _TEMP_GRACE_S:
            continue
        if pid == os.getpid():
            stale = info.st_mtime < _STARTED  # a previous process with the same pid (containers)
        else:
            stale = pid <= 0 or not alive(pid) or (newest is not None and info.st_mtime < newest)
        if stale:
            try:
                tmp.unlink()
            except OSError:
                continue
            removed.append(os.fspath(tmp))
    return removed


def _newest_checkpoint_mtime(folder: Path, names: list[str]) -> float | None:
    newest = None
    for name in names:
        if name.startswith(".") or not name.endswith(".ckpt"):
            continue
        try:
            info = os.stat(folder / name)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            newest = info.st_mtime if newest is None else max(newest, info.st_mtime)
    return newest


def _save_error(
    target: Path, err: BaseException, checkpoint: Mapping[str, Any]
) -> CheckpointSaveError:
    folder = target.parent
    try:
        usage = shutil.disk_usage(folder if folder.is_dir() else folder.parent)
        space = f"{_size(usage.free)} free of {_size(usage.total)}"
    except OSError:
        space = "free space unknown"
    code = getattr(err, "errno", None)
    needed = _size(_tensor_bytes(checkpoint))
    if code in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full" if code == errno.ENOSPC else "the disk quota is exceeded"
        remedy = (
            f"Free space there (the checkpoint needs about {needed}) or write checkpoints to a "
            "disk with room (default_root_dir=...)"
        )
    else:
        why = _first_detail(err)
        remedy = "Check that the folder is writable and has room"
    previous = (
        "The previous checkpoint there is unchanged" if target.exists() else ("No file was written")
    )
    error = CheckpointSaveError(
        f"cannot save checkpoint {os.fspath(target)!r}: {why} (folder {os.fspath(folder)!r}, "
        f"{space}). {previous}, and the partial temporary file was removed. {remedy}"
    )
    error.errno = code if code is not None else errno.EIO
    error.filename = os.fspath(target)
    return error


def _os_error_in(err: BaseException) -> OSError | None:
    """The first ``OSError`` in ``err``'s cause and context chain."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tensor_bytes(obj: Any, depth: int = 0) -> int:
    """Roughly the bytes ``torch.save`` writes for ``obj``: the sum of its tensors' sizes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if depth > 20:
        return 0
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, depth + 1) for v in obj)
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


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


__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "CheckpointSaveError",
    "DamagedCheckpointError",
    "UnsafeCheckpointError",
    "check_training_state",
    "is_url",
    "load_checkpoint",
    "newest_good_checkpoint",
    "remove_stale_store_temps",
    "remove_stale_temp_files",
    "store_filesystem",
    "store_mtime",
]
