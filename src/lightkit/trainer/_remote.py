"""Run folders in fsspec stores (``default_root_dir="memory://runs"``, ``"s3://bucket/runs"``...):
checkpoints go straight to the store; everything else a run writes (TensorBoard events, CSV
metrics, ``run.json``, summaries, profiles) goes to a local staging folder that is copied to the
store at every checkpoint, at the end of each fit, validate, test or predict, and on an error, and
is removed once the trainer is gone (see :meth:`StagingSync.remove_with`)."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import re
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from lightkit.checkpointing import is_url, store_filesystem, store_mtime
from lightkit.trainer._launch import current_launch

STAGING_ENV = "LIGHTKIT_STAGING_DIR"  # where staging folders go (default: the system's temp)
CHECKPOINTS = "checkpoints"
_NOT_DOWNLOADED = ("events.out.tfevents.*",)  # a resumed run writes a new event file
# fsspec file systems that cannot be written to (fsspec has no flag for it): no run folder there
READ_ONLY_PROTOCOLS = frozenset(
    {"http", "https", "github", "gist", "git", "tar", "libarchive", "reference", "data", "dask"}
)
_ONE_SLASH = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)(.*)", re.DOTALL)  # 'memory:/runs'


class StorePath:
    """A folder or file in an fsspec store, with the few ``pathlib.Path`` methods that run folders
    use (``/``, ``name``, ``parent``, ``exists``, ``is_dir``, ``is_file``, ``glob``, ``stat``,
    ``mkdir``, ``rmdir``, ``read_text``, ``write_text``); ``os.fspath`` gives its URL, spelled as
    the user wrote the root."""

    def __init__(self, url: str, fs: Any, path: str) -> None:
        self.url, self.fs, self.path = url.rstrip("/"), fs, path.rstrip("/")

    def __truediv__(self, name: str | os.PathLike[str]) -> StorePath:
        name = os.fspath(name)
        return StorePath(f"{self.url}/{name}", self.fs, f"{self.path}/{name}")

    def __fspath__(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StorePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> StorePath:
        return StorePath(self.url.rsplit("/", 1)[0], self.fs, posixpath.dirname(self.path))

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def names(self) -> list[str]:
        """The names of the entries in this folder ([] when it does not exist)."""
        try:
            entries = self.fs.ls(self.path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {posixpath.basename(str(e).rstrip("/")) for e in entries}
        return sorted(n for n in names if n)

    def glob(self, pattern: str) -> list[StorePath]:
        return [self / name for name in self.names() if fnmatch.fnmatchcase(name, pattern)]

    def stat(self) -> SimpleNamespace:
        mtime = store_mtime(self.fs, self.path)
        if mtime is None and not self.exists():
            raise FileNotFoundError(self.url)
        return SimpleNamespace(st_mtime=mtime or 0.0)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """``parents=False``: a new folder or ``FileExistsError``, as ``os.mkdir`` (exclusive in
        stores with folders, ``memory://`` and ``file://``; object stores have no folders, so two
        runs starting at the same instant could both take one there)."""
        if self.is_file():
            raise FileExistsError(self.url)
        if parents:
            self.fs.makedirs(self.path, exist_ok=True)
            return
        if self.exists():
            if exist_ok:
                return
            raise FileExistsError(self.url)
        try:
            self.fs.mkdir(self.path, create_parents=False)
        except FileExistsError:
            if not exist_ok:
                raise

    def rmdir(self) -> None:
        self.fs.rmdir(self.path)

    def read_text(self) -> str:
        try:
            return self.fs.cat_file(self.path).decode()
        except FileNotFoundError:
            raise
        except Exception as err:  # a store's own error for a missing object
            raise OSError(f"cannot read {self.url}: {err}") from err

    def write_text(self, text: str) -> None:
        """One write of the whole object (all or nothing in object stores)."""
        self.fs.makedirs(posixpath.dirname(self.path), exist_ok=True)
        self.fs.pipe_file(self.path, text.encode())


def run_root(
    default_root_dir: str | os.PathLike[str], owner: str = "make_trainer"
) -> Path | StorePath:
    """``default_root_dir`` as a ``Path``, or a :class:`StorePath` when it is a URL (checked).

    A ``file://`` URL is this machine's disk: its ``Path`` (Lightning treats such URLs as local
    paths too), so a run there behaves exactly as one in a plain folder.
    """
    if not is_url(default_root_dir):
        return Path(default_root_dir)
    url = os.fspath(default_root_dir).rstrip("/")
    fs, path = store_filesystem(url, owner, "default_root_dir")
    if "file" in _protocols(fs) and "::" not in url:
        return Path(path)
    return StorePath(url, fs, path)


def check_run_root(owner: str, value: str | os.PathLike[str]) -> None:
    """Refuses, before anything is created, a ``default_root_dir`` that cannot hold runs.

    ``'memory:/runs'`` (a known protocol and one slash, also what ``Path('memory://runs')``
    becomes) would be a local folder named ``memory:``; a read-only store (``http://``...) fails
    at the first write; ``memory://`` under a torchrun or srun launch is each process's own, so
    the other ranks could never see rank 0's run folder.
    """
    import fsspec

    text = os.fspath(value)
    if not is_url(text):
        match = _ONE_SLASH.fullmatch(text)
        if match is not None and match[1].lower() in fsspec.available_protocols():
            protocol, rest = match[1], match[2].lstrip("/")
            meant = (
                f"file:///{rest}"
                if protocol.lower() in ("file", "local")
                else f"{protocol}://{rest}"
            )
            raise ValueError(
                f"{owner}: default_root_dir={text!r} would be a local folder named "
                f"'{protocol}:'; did you mean {meant!r}? (a pathlib.Path turns '://' into ':/': "
                "pass a store's URL as a str)"
            )
        return
    named = [p for p in text.split("://", 1)[0].lower().split("::") if p in READ_ONLY_PROTOCOLS]
    fs = None if named else store_filesystem(text, owner, "default_root_dir")[0]
    read_only = named or [p for p in _protocols(fs) if p in READ_ONLY_PROTOCOLS]
    if read_only:
        raise ValueError(
            f"{owner}: default_root_dir={text!r} is in a read-only store ({read_only[0]}://) "
            "and a run folder is written to; use a local folder or a store that takes writes "
            "(s3://, gs://, az://, a shared file system...)"
        )
    launch = current_launch()
    if launch is not None and "memory" in _protocols(fs):
        raise ValueError(
            f"{owner}: default_root_dir={text!r} is in memory://, which each process keeps to "
            f"itself, so the other processes of this {launch.name} launch "
            f"({launch.world_size} in all) could never see rank 0's run folder; use a folder or "
            "store that every process reaches (a shared file system, s3://...)"
        )


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def staging_folder(run_dir: StorePath, new_run: bool) -> Path:
    """A new local folder that stands in for ``run_dir`` while the run writes; an existing run's
    files (not its checkpoints or TensorBoard events) are copied in first, so that its CSV
    metrics, ``hparams.yaml`` and ``run.json`` continue where they stopped."""
    parent = os.environ.get(STAGING_ENV) or None
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    # <temp>/lightkit-run-<random>/version_<n>: the loggers name the run after the folder
    local = Path(tempfile.mkdtemp(prefix="lightkit-run-", dir=parent)) / run_dir.name
    try:
        local.mkdir()
        if not new_run:
            for relative in _store_files(run_dir):
                target = local.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                run_dir.fs.get_file(f"{run_dir.path}/{relative}", os.fspath(target))
    except BaseException:
        remove_staging(local)
        raise
    return local


def remove_staging(local: Path) -> None:
    """Removes a folder :func:`staging_folder` made (with its ``lightkit-run-*`` parent)."""
    shutil.rmtree(local.parent, ignore_errors=True)


def _store_files(run_dir: StorePath) -> list[str]:
    """The run folder's files to stage, relative to it (no checkpoints, no ``..``)."""
    try:
        found = run_dir.fs.find(run_dir.path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    prefix = run_dir.path + "/"
    for path in found:
        path = str(path)
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix) :]
        parts = relative.split("/")
        if parts[0] == CHECKPOINTS or any(p in ("", ".", "..") for p in parts):
            continue
        if any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in _NOT_DOWNLOADED):
            continue
        files.append(relative)
    return files


class StagingSync(Callback):
    """Copies the local staging folder of a run whose folder is in a store to that folder.

    At every checkpoint (after the loggers flush), at the end of fit, validate, test and predict
    and when training fails; on global rank 0 only. Only files that changed since the last copy
    travel; nothing in the store is deleted. The checkpoints themselves are written to the store
    by :class:`~lightkit.checkpointing.AtomicCheckpointIO`, not copied. The staging folder is
    removed once the trainer is gone (:meth:`remove_with`).
    """

    def __init__(self, local: Path, run_dir: StorePath) -> None:
        self.local, self.run_dir = local, run_dir
        self._sent: dict[str, tuple[int, int]] = {}
        self._global_zero: bool | None = None  # known once the trainer has run

    def remove_with(self, trainer: L.Trainer) -> None:
        """Removes the staging folder when ``trainer`` is garbage collected or the process exits,
        after a last copy (on global rank 0; a folder whose copy failed is kept, with a warning
        naming it).

        Not at the end of each stage: the trainer may ``test`` after ``fit``, and its loggers,
        profiler and run record keep writing to (and appending to) the files in this folder.
        """
        weakref.finalize(trainer, self.finish)  # holds this callback, never the trainer

    def finish(self) -> None:
        """The last copy of the staging folder to the store, then its removal."""
        if self._global_zero:  # other ranks never copy: theirs holds nothing of the run's
            try:
                failed = self._copy()
            except Exception as err:
                failed = [f"{type(err).__name__}: {err}"]
            if failed:
                warnings.warn(
                    f"lightkit: kept the staging folder {os.fspath(self.local)!r}: "
                    f"{len(failed)} file(s) of the run could not be copied to "
                    f"{self.run_dir.url} ({'; '.join(failed[:3])}); copy them there by hand, "
                    "then remove it",
                    stacklevel=1,
                )
                return
        remove_staging(self.local)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._global_zero = trainer.is_global_zero

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.sync(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        with contextlib.suppress(Exception):  # the run's own error is the one to report
            self.sync(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.sync(trainer)

    def sync(self, trainer: L.Trainer) -> None:
        self._global_zero = trainer.is_global_zero
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:  # TensorBoard's writer buffers; CSV writes on save
            with contextlib.suppress(Exception):
                logger.save()
        failed = self._copy()
        if failed:
            rank_zero_warn(
                f"lightkit: could not copy {len(failed)} file(s) of the run to {self.run_dir.url}"
                f" (tried again at the next checkpoint and at the end): {'; '.join(failed[:3])}"
            )

    def _copy(self) -> list[str]:
        """Copies the files that changed since the last copy; those that failed, with why."""
        failed = []
        for path in sorted(self.local.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            relative = path.relative_to(self.local).as_posix()
            if relative.split("/")[0] == CHECKPOINTS:
                continue
            info = path.stat()
            signature = (info.st_size, info.st_mtime_ns)
            if self._sent.get(relative) == signature:
                continue
            try:
                target = f"{self.run_dir.path}/{relative}"
                self.run_dir.fs.makedirs(posixpath.dirname(target), exist_ok=True)
                self.run_dir.fs.put_file(os.fspath(path), target)
            except Exception as err:  # a store that is briefly unreachable: tried again later
                failed.append(f"{relative} ({type(err).__name__}: {err})")
                continue
            self._sent[relative] = signature
        return failed
