"""The ``lightkit`` command: ``doctor`` (environment report), ``export`` and ``serve``."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

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

    from lightkit.trainer import _hardware, _resolve_precision, native_bf16

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
        f"precision  {_resolve_precision('auto', _hardware('auto'))} (what precision='auto' picks here)"
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


_FORMATS = {"torchscript": ".pt", "onnx": ".onnx", "exported-program": ".pt2"}


def export(
    checkpoint: str,
    format: str,
    output: str | None = None,
    batch_size: int = 1,
    overwrite: bool = False,
) -> str:
    """Export a lightkit checkpoint (see :mod:`lightkit.export`); returns the written path."""
    import torch

    from lightkit import export as lk_export
    from lightkit.inference import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    if predictor.input_shape is None:
        raise SystemExit(
            f"lightkit export: {checkpoint!r} does not record its input shape (it was not trained "
            "by a lightkit task module); export from Python with an example input instead"
        )
    example = torch.randn(batch_size, *predictor.input_shape)
    target = output or str(Path(checkpoint).with_suffix(_FORMATS[format]))
    route = {
        "torchscript": lk_export.to_torchscript,
        "onnx": lk_export.to_onnx,
        "exported-program": lk_export.to_exported_program,
    }[format]
    return str(route(predictor.module, example, target, overwrite=overwrite))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightkit`` console script."""
    parser = argparse.ArgumentParser(prog="lightkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lightkit {lightkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("doctor", help="report Python, torch, CUDA, precision and installed extras")

    exp = commands.add_parser(
        "export", help="export a checkpoint to TorchScript, ONNX or torch.export, verified"
    )
    exp.add_argument("checkpoint", help="a .ckpt written by a lightkit trainer")
    exp.add_argument("--format", choices=sorted(_FORMATS), default="exported-program")
    exp.add_argument("--output", help="file to write (default: the checkpoint's name, new suffix)")
    exp.add_argument("--batch-size", type=int, default=1, help="batch size of the example input")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    srv = commands.add_parser("serve", help="serve a checkpoint over HTTP with dynamic batching")
    srv.add_argument("checkpoint", help="a .ckpt written by a lightkit trainer")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--max-batch-size", type=int, default=32)
    srv.add_argument("--batch-timeout", type=float, default=0.01, help="seconds")
    srv.add_argument("--max-body-mb", type=float, default=10.0, help="larger requests get 413")
    srv.add_argument("--accelerator", choices=["auto", "cpu", "cuda"], default="auto")
    srv.add_argument("--verbose", action="store_true", help="print the size of every batch")

    args = parser.parse_args(argv)
    if args.command == "doctor":
        print(doctor())
        return 0
    if args.command in ("export", "serve") and not Path(args.checkpoint).is_file():
        parser.error(f"{args.command}: checkpoint {args.checkpoint!r} does not exist")
    try:
        if args.command == "export":
            path = export(
                args.checkpoint, args.format, args.output, args.batch_size, args.overwrite
            )
            print(f"lightkit export: wrote {path} (outputs match the checkpoint's model)")
            return 0
        if args.command == "serve":
            from lightkit.serve import serve

            serve(
                args.checkpoint,
                host=args.host,
                port=args.port,
                max_batch_size=args.max_batch_size,
                batch_timeout=args.batch_timeout,
                max_body_bytes=int(args.max_body_mb * 2**20),
                accelerator=args.accelerator,
                verbose=args.verbose,
            )
            return 0
    except (ValueError, TypeError, ImportError, FileExistsError, RuntimeError) as err:
        print(f"lightkit {args.command}: error: {err}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
