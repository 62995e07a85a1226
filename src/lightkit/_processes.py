"""Whether a process recorded in a file (a sweep trial's, a run's) is still alive on this machine."""

from __future__ import annotations

import os


def start_time(pid: int) -> str:
    """The process's start time (Linux: field 22 of ``/proc/<pid>/stat``), ``"zombie"`` for a
    killed process its parent has not reaped, ``""`` where it cannot be read."""
    try:  # the fields after the parenthesised command name
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return "zombie" if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` exists (True when that cannot be told: Windows, where
    ``os.kill`` would end it, or another user's process). A zombie is gone, and so is a process
    whose start time differs from ``started`` (the pid was reused)."""
    if os.name == "nt" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    now = start_time(pid)
    return now != "zombie" and (not started or not now or now == started)
