"""The preset Trainer: :func:`make_trainer` returns a plain ``lightning.Trainer``.

``lk.fit`` (make_trainer + fit with resume and out-of-memory retry) is a workflow on top of this
package and lives in :mod:`lightkit.fitting`.
"""

from __future__ import annotations

import warnings
from typing import Any

from lightkit._hardware import PRECISIONS, STRATEGIES, native_bf16
from lightkit.trainer._profiling import PROFILERS
from lightkit.trainer.presets import make_trainer

__all__ = ["PRECISIONS", "PROFILERS", "STRATEGIES", "make_trainer", "native_bf16"]


def __getattr__(name: str) -> Any:
    # Deprecated alias (0.x): `lightkit.trainer.fit` moved to `lightkit.fitting.fit` (`lk.fit`).
    # The import points up the layers, so it happens only when the old name is used.
    if name == "fit":
        warnings.warn(
            "lightkit.trainer.fit moved to lightkit.fitting.fit; use lk.fit",
            DeprecationWarning,
            stacklevel=2,
        )
        from lightkit.fitting import fit  # layering: deprecated alias

        return fit
    raise AttributeError(f"module 'lightkit.trainer' has no attribute {name!r}")
