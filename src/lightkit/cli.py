"""The ``lightkit`` command: environment report (``lightkit doctor``) and version."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from collections.abc import Sequence

import lightkit

_EXTRAS = {
    "examples": ("sklearn",),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "serve": ("litserve",),
}


def doctor() -> str:
    """A report of what this machine offers lightkit: Python, torch, CUDA, precision, extras."""
    import lightning
    import torch

    from lightkit.trainer import _resolve_precision, native_bf16

    cuda = torch.cuda.is_available()
    lines = [
        f"lightkit   {lightkit.__version__}",
        f"python     {platform.python_version()} ({sys.executable})",
        f"torch      {torch.__version__}",
        f"lightning  {lightning.__version__}",
        f"cuda       {'available, ' + str(torch.cuda.device_count()) + ' device(s)' if cuda else 'not available'}",
    ]
    if cuda:
        for i in range(torch.cuda.device_count()):
            lines.append(f"  cuda:{i}   {torch.cuda.get_device_name(i)}")
        lines.append(f"bf16       {'supported' if native_bf16() else 'not supported'}")
    lines.append(
        f"precision  {_resolve_precision('auto', 'auto')} (what precision='auto' picks here)"
    )
    for extra, modules in _EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        state = (
            "installed"
            if not missing
            else f'missing {", ".join(missing)}: pip install "lightkit[{extra}]"'
        )
        lines.append(f"extra      {extra}: {state}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightkit`` console script."""
    parser = argparse.ArgumentParser(prog="lightkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lightkit {lightkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("doctor", help="report Python, torch, CUDA, precision and installed extras")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        print(doctor())
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
