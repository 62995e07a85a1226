"""Run folders: one ``version_<n>`` per run, claimed atomically; finding the checkpoint a resume continues."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from lightkit._run_layout import DEFAULT_ROOT
from lightkit.checkpointing import CheckpointError, load_checkpoint
from lightkit.trainer._checks import check_root_dir, check_version
from lightkit.trainer._launch import Launch, LaunchError, agree, current_launch
from lightkit.trainer._remote import StorePath, run_root

RunPath = Path | StorePath  # a run folder on this machine's disk, or in an fsspec store


RUN_DIR_ENV = "LIGHTKIT_RUN_DIR"  # rank 0's run folder, inherited by the processes DDP launches


@dataclass(frozen=True)
class Flag:
    """How the resume switch is written where the user turned it on (for messages)."""

    owner: str
    on: str
    off: str


PYTHON_FLAG = Flag("fit", "resume=True", "pass resume=False")
CLI_FLAG = Flag("lightkit fit", "--resume", "run without --resume")

_VERSION = re.compile(r"version_(\d+)")
_NUMBER = re.compile(r"\d{1,18}")
_RESUME_ANSWER = re.compile(r"(\d{1,18})/([^/\\]+\.ckpt)")  # "<n>/<checkpoint file name>"


def versions(root: Path | StorePath) -> list[int]:
    """The numbers of the ``version_<n>`` entries under ``root``, ascending."""
    if isinstance(root, StorePath):
        names = root.names()
    else:
        try:
            names = os.listdir(root)
        except (FileNotFoundError, NotADirectoryError):
            return []
    return sorted(int(m.group(1)) for name in names if (m := _VERSION.fullmatch(name)))


def make_root(root: Path | StorePath) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            f"make_trainer: default_root_dir={os.fspath(root)!r} is a file; it must be a folder "
            "(one version_<n> folder per run goes inside)"
        ) from None


def claim_run_dir(root: RunPath) -> RunPath:
    """Create a new ``root/version_<n>`` folder that no other run holds, and return it.

    ``os.mkdir`` fails when the folder already exists, so of runs that start at the same moment
    (threads, processes, or machines sharing the file system) each gets a folder of its own: a
    run that loses the race for a number takes the next one. The listing only picks where to
    start counting. (In a store, see :meth:`StorePath.mkdir`.)
    """
    make_root(root)
    number = max(versions(root), default=-1) + 1
    while True:
        path = root / f"version_{number}"
        try:
            path.mkdir()  # os.mkdir for a Path
        except FileExistsError:
            number += 1
            continue
        return path


def checkpoint_files(run_dir: RunPath) -> list[RunPath]:
    """The run's ``.ckpt`` files, in the order a resume tries them: ``last.ckpt``, then newest."""
    files = []
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        try:  # a file removed meanwhile is no candidate
            if path.is_file():
                files.append((path.name != "last.ckpt", -path.stat().st_mtime, path.name, path))
        except OSError:
            continue
    return [entry[-1] for entry in sorted(files)]


def newest_run_with_checkpoint(root: RunPath) -> RunPath | None:
    for number in reversed(versions(root)):
        if checkpoint_files(root / f"version_{number}"):
            return root / f"version_{number}"
    return None


def choose_run_dir(root: RunPath, version: int | str | None) -> tuple[RunPath, bool]:
    """The run folder for ``version`` and whether this call created it (claimed a new one).

    Only rank 0 creates folders; every process of a launch uses the one rank 0 chose (see
    :mod:`lightkit.trainer._launch`): the DDP workers Lightning starts by re-running the script
    inherit it through an environment variable, the processes of a torchrun or srun launch read
    it from the launcher's store or a file under ``root``. Choosing again would pick the next.
    """
    if isinstance(version, int):  # the same folder on every rank, whoever started them
        return _numbered_run_dir(root, version)
    launch = current_launch()
    if launch is not None:
        claimed: list[bool] = []

        def decide() -> str:
            path, new = _rank_zero_choice(root, version)
            claimed.append(new)
            return path.name.removeprefix("version_")

        number = _agreed_number(agree(launch, "run_dir", root, decide), launch)
        return root / f"version_{number}", bool(claimed and claimed[0])
    inherited = os.environ.get(RUN_DIR_ENV)
    if rank_zero_only.rank != 0:
        if version is None and inherited:
            if isinstance(root, StorePath):  # rank 0's URL: the same folder under this root
                return root / inherited.rstrip("/").rsplit("/", 1)[-1], False
            return Path(inherited), False
        newest = newest_run_with_checkpoint(root) if version == "last" else None
        return newest or root / f"version_{max(versions(root), default=-1) + 1}", False
    return _rank_zero_choice(root, version)


def _numbered_run_dir(root: RunPath, version: int) -> tuple[RunPath, bool]:
    path = root / f"version_{version}"
    if rank_zero_only.rank != 0:
        return path, False
    make_root(root)
    try:
        path.mkdir()  # os.mkdir for a Path
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(
                f"make_trainer: {os.fspath(path)!r} exists and is not a folder"
            ) from None
        return path, False
    return path, True


def _rank_zero_choice(root: RunPath, version: str | None) -> tuple[RunPath, bool]:
    """Rank 0's run folder for ``version`` None or ``"last"``, published to the DDP workers."""
    found = newest_run_with_checkpoint(root) if version == "last" else None
    path, claimed = (found, False) if found is not None else (claim_run_dir(root), True)
    os.environ[RUN_DIR_ENV] = str(path)  # inherited by the processes DDP launches
    return path, claimed


def _agreed_number(answer: str, launch: Launch) -> int:
    """The ``n`` of ``version_<n>`` in rank 0's answer (read from a store or a file: checked)."""
    if not _NUMBER.fullmatch(answer):
        raise LaunchError(
            f"make_trainer: rank {launch.rank} of this {launch.name} launch read {answer[:80]!r} "
            "as rank 0's run folder number; expected digits"
        )
    return int(answer)


def resume_point(
    root: RunPath, version: int | str | None, flag: Flag = PYTHON_FLAG
) -> tuple[RunPath | None, str]:
    """The checkpoint ``resume=True`` continues from, or None and what was found instead.

    ``flag`` names the switch in messages as the caller's user wrote it (``resume=True`` in
    Python, ``--resume`` on the command line) and how to turn it off.

    Runs are tried newest first (``version`` given: that one only). A run without checkpoint
    files is skipped; in the first run that has some, ``last.ckpt`` is tried, then the others,
    newest first; the first that loads is the answer. If none loads, that run's progress cannot
    be continued and must not be silently dropped: a ``CheckpointError`` names every file.
    """
    numbers = [version] if isinstance(version, int) else list(reversed(versions(root)))
    skipped: list[str] = []
    for number in numbers:
        run_dir = root / f"version_{number}"
        files = checkpoint_files(run_dir)
        if not files:
            if run_dir.is_dir():
                skipped.append(run_dir.name)
            continue
        damaged: list[str] = []
        for path in files:
            try:
                checkpoint = load_checkpoint(path)
            except CheckpointError as err:
                damaged.append(str(err))
                continue
            where = f"saved at epoch {checkpoint.get('epoch', '?')}, global step "
            where += f"{checkpoint.get('global_step', '?')}"
            if damaged:
                rank_zero_warn(
                    f"lightkit: {os.fspath(files[0])!r} is damaged or unsafe to load; "
                    f"resuming from the newest good checkpoint instead: {os.fspath(path)!r} "
                    f"({where}). Details: {'; '.join(damaged)}"
                )
            if skipped:
                rank_zero_warn(
                    f"lightkit: {flag.on} continues {os.fspath(run_dir)} from {path.name} "
                    f"({where}); the newer run folder(s) {', '.join(skipped)} hold no checkpoint "
                    "and were skipped"
                )
            if rank_zero_only.rank == 0:  # lightkit's own line: shown however quiet Lightning is
                print(f"lightkit: resuming {os.fspath(run_dir)} from {path} ({where})", flush=True)
            return path, ""
        raise CheckpointError(
            f"{flag.owner}: {flag.on} cannot continue {os.fspath(run_dir)}: it has checkpoints, but "
            f"none of them loads ({'; '.join(damaged)}). Nothing was started. Move the damaged "
            f"files away to resume an older run, or {flag.off} to start a new run folder"
        )
    if isinstance(version, int):
        return None, (
            f"lightkit: {flag.on} with version={version}: {os.fspath(root / f'version_{version}')}"
            " has no checkpoint to continue"
        )
    found = f"run folders without a checkpoint: {', '.join(skipped)}" if skipped else "no run"
    return (
        None,
        f"lightkit: {flag.on} found nothing to resume under {os.fspath(root)!r} ({found})",
    )


def resume_into(
    make_trainer_kwargs: dict[str, Any], flag: Flag = PYTHON_FLAG
) -> tuple[str | None, str]:
    """Point ``make_trainer_kwargs`` at the run a resume continues; the checkpoint and a note.

    Sets ``version`` to the run of the checkpoint :func:`resume_point` finds under
    ``default_root_dir`` and returns its path; when there is none, returns None and what was found
    instead (``version="last"`` then becomes a new run folder).
    """
    root = make_trainer_kwargs.get("default_root_dir", DEFAULT_ROOT)
    check_root_dir(flag.owner, root)
    version = make_trainer_kwargs.get("version")
    check_version(flag.owner, version)
    launch = current_launch()
    if launch is None:
        found, note = resume_point(run_root(root, flag.owner), version, flag)
    else:  # every rank continues the checkpoint rank 0 found
        found, note = _agreed_resume_point(launch, run_root(root, flag.owner), version, flag)
    if found is not None:
        make_trainer_kwargs["version"] = int(found.parent.parent.name.removeprefix("version_"))
        return str(found), ""
    if version == "last":
        make_trainer_kwargs["version"] = None  # nothing to continue: a new run folder
    return None, note


def _agreed_resume_point(
    launch: Launch, root: RunPath, version: int | str | None, flag: Flag
) -> tuple[RunPath | None, str]:
    notes: list[str] = []

    def decide() -> str:
        found, note = resume_point(root, version, flag)
        notes.append(note)
        return (
            ""
            if found is None
            else f"{found.parent.parent.name.removeprefix('version_')}/{found.name}"
        )

    answer = agree(launch, "resume", root, decide)
    if not answer:
        return None, notes[0] if notes else ""
    match = _RESUME_ANSWER.fullmatch(answer)
    if match is None:
        raise LaunchError(
            f"{flag.owner}: rank {launch.rank} of this {launch.name} launch read {answer[:80]!r} "
            "as the checkpoint rank 0 resumes; expected '<run number>/<file name>.ckpt'"
        )
    return root / f"version_{int(match.group(1))}" / "checkpoints" / match.group(2), ""
