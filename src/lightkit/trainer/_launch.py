"""One launch, one answer: rank 0 decides the run folder (or the checkpoint a resume continues) and
the other processes of the launch read its decision instead of guessing their own.

Where the answer travels depends on who started the processes:

* DDP workers that Lightning starts itself inherit it through an environment variable
  (``_run_dir.RUN_DIR_ENV``), which rank 0 sets before Lightning launches them;
* under ``torchrun`` (``TORCHELASTIC_RUN_ID`` set), through the elastic agent's TCP store at
  ``MASTER_ADDR:MASTER_PORT`` (``TORCHELASTIC_USE_AGENT_STORE=True``, the default for the
  ``static`` and ``c10d`` rendezvous), under a key naming the rendezvous run id, the restart
  count and how many answers this process asked for before (several trainers in one script);
* under ``srun`` without torchrun (``SLURM_NTASKS`` > 1), and under torchrun when the agent hosts
  no store, through a small file under ``<default_root_dir>/.lightkit/launches/`` named after the
  job, step and restart: ``default_root_dir`` must then be on a file system every node sees (it
  must be anyway, for a resume to find the checkpoints).

Only numbers travel (the ``n`` of ``version_<n>`` and a checkpoint's file name, both checked), so
a value read back can never point outside the run folder.
"""

from __future__ import annotations

import datetime
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_ENV = "LIGHTKIT_LAUNCH_TIMEOUT"  # seconds a rank waits for rank 0's answer
DEFAULT_TIMEOUT = 600.0  # torch.distributed's default for NCCL process groups
MARKERS = Path(".lightkit") / "launches"  # under default_root_dir, for the file-based answers
_POLL = 0.05
_FAILED = "!"  # an answer starting with this is rank 0's error message
_calls: dict[str, itertools.count] = {}  # per kind of answer: how many this process asked for


class LaunchError(RuntimeError):
    """A rank waited in vain for rank 0's choice of run folder."""


@dataclass(frozen=True)
class Launch:
    """The processes started together by one torchrun or srun command."""

    name: str  # for messages: "torchrun" or "srun"
    key: str  # unique to this launch (and restart)
    rank: int
    world_size: int
    store_address: tuple[str, int] | None  # the torchrun agent's TCP store, when it hosts one


def current_launch() -> Launch | None:
    """The torchrun or srun launch this process belongs to, when it has more than one process."""
    env = os.environ
    if env.get("TORCHELASTIC_RUN_ID") is not None and _int(env.get("WORLD_SIZE"), 1) > 1:
        restart = env.get("TORCHELASTIC_RESTART_COUNT", "0")
        address = None
        if env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and env.get("MASTER_ADDR"):
            address = (env["MASTER_ADDR"], _int(env.get("MASTER_PORT"), 0))
        # The agent's master port is picked per launch: with a run id that is often the default
        # "none", it keeps two launches apart where the answer goes through a file.
        key = f"torchrun-{env['TORCHELASTIC_RUN_ID']}-{env.get('MASTER_ADDR')}-"
        key += f"{env.get('MASTER_PORT')}-{restart}"
        return Launch("torchrun", key, _int(env.get("RANK"), 0), int(env["WORLD_SIZE"]), address)
    ntasks = _int(env.get("SLURM_NTASKS"), 1)
    if (
        env.get("SLURM_JOB_ID")
        and ntasks > 1
        and env.get("SLURM_PROCID") is not None
        and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")  # as Lightning decides
        and env.get("LOCAL_RANK") is None  # not a DDP worker Lightning started itself
    ):
        key = f"srun-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', 'batch')}-"
        key += env.get("SLURM_RESTART_COUNT", "0")
        return Launch("srun", key, _int(env.get("SLURM_PROCID"), 0), ntasks, None)
    return None


def agree(launch: Launch, kind: str, root: Any, decide: Callable[[], str]) -> str:
    """Rank 0's ``decide()``, on every rank of ``launch``: rank 0 runs it and publishes the answer,
    the others wait for it (``LIGHTKIT_LAUNCH_TIMEOUT`` seconds, default 600).

    Every rank must ask the same questions in the same order (as every rank of an SPMD script
    does): the n-th question of a ``kind`` gets rank 0's n-th answer. An answer already published
    under this launch's key (the same launch, rejoined after a rendezvous round without a
    restart) is reused rather than decided again.
    """
    name = f"{kind}-{next(_calls.setdefault(kind, itertools.count()))}"
    timeout = _timeout()

    def decide_or_say_why() -> str:  # rank 0's failure reaches the others at once
        try:
            return decide()
        except Exception as err:
            publish_failure = f"{_FAILED}{type(err).__name__}: {err}"
            failures.append((err, publish_failure))
            return publish_failure

    failures: list[tuple[Exception, str]] = []
    if launch.store_address is not None:
        answer = _agree_by_store(launch, name, decide_or_say_why, timeout)
    else:
        answer = _agree_by_file(launch, name, root, decide_or_say_why, timeout)
    if failures:
        raise failures[0][0]
    if answer.startswith(_FAILED):
        raise LaunchError(
            f"make_trainer: rank 0 of this {launch.name} launch failed to choose the run folder, "
            f"so rank {launch.rank} stops too: {answer.removeprefix(_FAILED)}"
        )
    return answer


def _agree_by_store(launch: Launch, name: str, decide: Callable[[], str], timeout: float) -> str:
    from torch.distributed import DistStoreError, TCPStore

    host, port = launch.store_address  # type: ignore[misc]
    key = f"lightkit/{launch.key}/{name}"
    try:
        store = TCPStore(host, port, is_master=False, timeout=datetime.timedelta(seconds=timeout))
        if launch.rank == 0:
            if store.check([key]):
                return store.get(key).decode()
            answer = decide()
            store.set(key, answer)
            return answer
        return store.get(key).decode()  # waits for rank 0, up to the timeout
    except DistStoreError as err:  # includes the timeout
        raise LaunchError(
            f"make_trainer: rank {launch.rank} of this torchrun launch got no run folder from "
            f"rank 0 through the agent's store at {host}:{port} within {timeout:g} s ({err}). "
            f"Rank 0 may have failed before choosing one (see its output), or be slower to "
            f"start: raise {TIMEOUT_ENV} (seconds), or pass version=<n> to name the folder"
        ) from err


def _agree_by_file(
    launch: Launch, name: str, root: Any, decide: Callable[[], str], timeout: float
) -> str:
    """``root``: a ``Path``, or a ``StorePath`` (a run root in an fsspec store)."""
    marker = root / MARKERS / launch.key / name
    if launch.rank == 0:
        try:
            return marker.read_text()
        except OSError:
            pass
        answer = decide()
        marker.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(marker, Path):  # a store: one write of the whole object
            marker.write_text(answer)
            return answer
        partial = marker.with_name(f".{name}.{os.getpid()}.tmp")
        partial.write_text(answer)
        os.replace(partial, marker)  # readers never see a half-written answer
        return answer
    deadline = time.monotonic() + timeout
    while True:
        try:
            return marker.read_text()
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL)
    raise LaunchError(
        f"make_trainer: rank {launch.rank} of this {launch.name} launch waited {timeout:g} s "
        f"for rank 0 to name its run folder in {os.fspath(marker)!r}, in vain. Under "
        f"{launch.name} without the torchrun agent's store, default_root_dir must be a folder "
        f"every node sees (a shared file system), as it must be for resuming. Otherwise rank 0 "
        f"failed before choosing (see its output) or is slower to start: raise {TIMEOUT_ENV} "
        "(seconds), or pass version=<n> to name the folder"
    )


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(
            f"lightkit: the environment variable {TIMEOUT_ENV}={raw!r} must be a number of "
            "seconds > 0"
        )
    return value


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default
