"""Profilers for make_trainer: reports in ``<run folder>/profile/``, and a "none" that costs nothing per hook."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lightning.pytorch.profilers import (
    AdvancedProfiler,
    PassThroughProfiler,
    Profiler,
    PyTorchProfiler,
    SimpleProfiler,
)
from lightning.pytorch.utilities import rank_zero_only

PROFILERS = ("simple", "advanced", "pytorch")


_NO_OP = contextlib.nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's "no profiler", minus the cost of a generator per hook call.

    Lightning wraps every hook call (each callback's included: about a hundred per training step
    with lightkit's callbacks) in ``profiler.profile(name)``; the base class makes that a
    ``@contextmanager`` generator that calls ``start`` and ``stop``, which do nothing here. This
    one hands back one shared no-op context instead (speed: ``benchmarks/step_overhead.py``).
    """

    def profile(self, action_name: str) -> contextlib.nullcontext[None]:  # type: ignore[override]
        return _NO_OP


def make_profiler(profiler: str | Profiler | None, run_dir: Path) -> Profiler:
    """A Lightning profiler writing into ``<run_dir>/profile/``, announcing its files when done."""
    if profiler is None:
        return NoProfiler()
    if isinstance(profiler, Profiler):
        return profiler
    folder = run_dir / "profile"
    if profiler == "simple":
        made: Profiler = SimpleProfiler(dirpath=folder, filename="report")
    elif profiler == "advanced":
        made = AdvancedProfiler(dirpath=folder, filename="report")
    elif profiler == "pytorch":
        made = PyTorchProfiler(dirpath=folder, filename="report", export_to_chrome=True)
    else:
        raise ValueError(
            f"make_trainer: unknown profiler {profiler!r}; expected None, "
            + ", ".join(repr(p) for p in PROFILERS)
            + " or a lightning Profiler"
        )
    describe = made.describe

    def describe_and_announce() -> None:
        # The Trainer calls describe() last, after every callback, once the reports are written.
        describe()
        files = sorted(folder.glob("*")) if folder.is_dir() else []
        if files and rank_zero_only.rank == 0:
            for f in files:
                if f.suffix == ".txt":
                    print(f"lightkit: profiler report {f}")
            for f in (f for f in files if f.suffix == ".json"):
                print(f"lightkit: Chrome trace {f} (open in chrome://tracing or ui.perfetto.dev)")

    made.describe = describe_and_announce  # type: ignore[method-assign]
    return made
