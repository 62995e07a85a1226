"""The ``lightkit`` command.

``lightkit fit | validate | test | predict --config FILE.yaml`` run LightningCLI with lightkit's
trainer presets (``lk.make_trainer``); ``lightkit diagnose --config FILE.yaml`` runs
``lk.diagnose`` on the configured model and data; ``lightkit interpret --config FILE.yaml
--ckpt_path CKPT`` reports where a trained checkpoint is wrong (``lk.interpret``); ``lightkit
sweep --config FILE.yaml --search SPACE.yaml`` searches hyperparameters with Optuna
(``lk.sweep``); ``lightkit runs [ROOT]`` lists the training runs under a folder; ``lightkit
export`` and ``lightkit serve`` ship a checkpoint; ``lightkit doctor`` reports the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from lightkit._cli_config import lightning_cli
from lightkit._version import VERSION

_EXTRAS = {
    "examples": ("sklearn",),
    "sweep": ("optuna", "optuna_integration"),
    "mlflow": ("mlflow",),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "serve": ("litserve", "python_multipart"),
    "timm": ("timm",),
}


def doctor() -> str:
    """A report of what this machine offers lightkit: Python, torch, CUDA, precision, extras."""
    import importlib.metadata

    import torch

    from lightkit._hardware import native_bf16, resolve_hardware, resolve_precision

    cuda = torch.cuda.is_available()
    lines = [
        f"lightkit   {VERSION}",
        f"python     {platform.python_version()} ({sys.executable})",
        f"torch      {torch.__version__}",
        f"lightning  {importlib.metadata.version('lightning')}",
        f"cuda       {'available, ' + str(torch.cuda.device_count()) + ' device(s)' if cuda else 'not available'}",
    ]
    if cuda:
        for i in range(torch.cuda.device_count()):
            lines.append(f"  cuda:{i}   {torch.cuda.get_device_name(i)}")
        lines.append(f"bf16       {'supported' if native_bf16() else 'not supported'} (GPU)")
    else:
        lines.append("bf16       no CUDA GPU (bf16-mixed on the CPU works, but is rarely faster)")
    lines.append(
        f"precision  {resolve_precision('auto', resolve_hardware('auto'))} (what precision='auto' picks here)"
    )
    for extra, modules in _EXTRAS.items():
        missing = [m for m in modules if not _installed(m)]
        state = (
            "installed"
            if not missing
            else f'missing {", ".join(missing)}: pip install "lightkit[{extra}]"'
        )
        lines.append(f"extra      {extra}: {state}")
    return "\n".join(lines)


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (nor failing on a module that
    replaced its own entry in ``sys.modules``, as lazy-loading packages do)."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _config_command(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    wants_help = any(
        a in ("-h", "--help", "--print_config") or a.startswith("--print_config") for a in rest
    )
    has_config = any(a == "--config" or a.startswith("--config=") or a in ("-c",) for a in rest)
    if not has_config and not wants_help:
        print(
            f"usage: lightkit {command} --config FILE.yaml [--section.key=value ...]\n"
            f"  lightkit {command} needs a config naming the model and data, for example\n"
            f"  lightkit {command} --config examples/configs/digits.yaml"
            + ("\n  (lightkit fit --help lists every option)" if command != "diagnose" else ""),
            file=sys.stderr,
        )
        return 2
    if command == "fit":  # a bare --resume flag, as the README writes it
        rest = ["--resume=true" if a == "--resume" else a for a in rest]
    if command == "interpret":
        return _interpret_command(rest)
    if command != "diagnose":
        lightning_cli([command, *rest])
        return 0
    from lightkit.diagnosis import diagnose

    cli = lightning_cli(rest, run=False)
    run_dir = Path(cli.trainer.default_root_dir)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # the trainer's new, still empty run folder: diagnose makes its own
    report = diagnose(cli.model, cli.datamodule, default_root_dir=run_dir.parent)
    print(report)
    return 0 if report.ok else 1


def _interpret_command(argv: list[str]) -> int:
    """``lightkit interpret --config FILE --ckpt_path CKPT [--split val] [--top_k 16]``: the
    config's task class and data, the checkpoint's weights; the report is printed and its
    pictures saved in the checkpoint's run folder (``<run>/interpret/<split>``)."""
    own = argparse.ArgumentParser(prog="lightkit interpret", add_help=False)
    own.add_argument("--ckpt_path", "--ckpt-path", dest="ckpt_path")
    own.add_argument("--split", default="val")
    own.add_argument("--top_k", "--top-k", dest="top_k", type=int, default=16)
    own.add_argument("--trust", nargs="+", metavar="MODULE")
    args, rest = own.parse_known_args(argv)
    if any(a in ("-h", "--help") for a in rest):
        print(
            "usage: lightkit interpret --config FILE.yaml --ckpt_path CKPT [--split val|test] "
            "[--top_k N] [--trust MODULE ...]\n  the config names the task and the data; the "
            "checkpoint gives the weights. Prints the report and saves its pictures under "
            "<run>/interpret/<split>."
        )
        return 0
    if not args.ckpt_path:
        print(
            "lightkit interpret: error: give the trained checkpoint with --ckpt_path",
            file=sys.stderr,
        )
        return 2
    if not Path(args.ckpt_path).is_file():
        print(
            f"lightkit interpret: error: --ckpt_path {args.ckpt_path!r} does not exist",
            file=sys.stderr,
        )
        return 2
    from lightkit.checkpointing import CheckpointError
    from lightkit.interpretation import interpret

    cli = lightning_cli(rest, run=False)
    with contextlib.suppress(OSError):
        Path(cli.trainer.default_root_dir).rmdir()  # the trainer's new, still empty run folder
    try:
        # The config's net (you named it) takes the checkpoint's weights; the checkpoint's
        # other values pass the trust policy as in load_from_checkpoint.
        module = type(cli.model).load_from_checkpoint(
            args.ckpt_path, net=cli.model.net, trust=args.trust
        )
        report = interpret(module, cli.datamodule, split=args.split, top_k=args.top_k)
    except (CheckpointError, ValueError, TypeError, FileExistsError) as err:
        print(f"lightkit interpret: error: {_in_cli_words(str(err))}", file=sys.stderr)
        return 1
    print(report)
    return 0


def _sweep_command(argv: list[str]) -> int:
    """``lightkit sweep --config BASE.yaml --search SPACE.yaml --n-trials N [--study-dir DIR]
    [--seed S] [--pruner median|halving|none] [--section.key=value ...]`` (``lk.sweep``)."""
    own = argparse.ArgumentParser(
        prog="lightkit sweep",
        description="Search hyperparameters of a config with Optuna; every trial is a "
        "'lightkit fit' run in <study-dir>/trials/version_<n>. Running the same command again "
        "continues the study; other --section.key=value flags are fixed for every trial.",
    )
    own.add_argument(
        "--config", required=True, action="append", help="the base 'lightkit fit' config (YAML)"
    )
    own.add_argument("--search", required=True, help="the search space (YAML of dotted keys)")
    own.add_argument(
        "--n-trials",
        "--n_trials",
        dest="n_trials",
        type=int,
        default=20,
        help="trials the study should hold, counting those of earlier runs of this command "
        "(default 20)",
    )
    own.add_argument(
        "--study-dir",
        "--study_dir",
        dest="study_dir",
        help="the study's folder (default: <the config's default_root_dir>/sweep)",
    )
    own.add_argument("--seed", type=int, help="seed of the sampler, for reproducible trials")
    own.add_argument("--pruner", default="median", help="median (default), halving or none")
    own.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="do not make the first trial the config's own values of the searched keys",
    )
    args, rest = own.parse_known_args(argv)
    if len(args.config) > 1:
        own.error("give one --config (merge the files into one base config)")
    from lightkit.sweeps import sweep

    try:
        study = sweep(
            args.config[0],
            args.search,
            n_trials=args.n_trials,
            study_dir=args.study_dir,
            seed=args.seed,
            pruner=args.pruner,
            overrides=rest,
            baseline=args.baseline,
        )
    except (ValueError, TypeError, ImportError, OSError) as err:
        print(f"lightkit sweep: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit) as stop:  # Ctrl-C, SIGTERM (Lightning's SystemExit)
        terminated = type(stop).__name__ == "SIGTERMException"
        print(
            f"lightkit sweep: stopped ({'SIGTERM' if terminated else 'interrupted'}); the trial "
            "that was running is run again when you run the same command again",
            file=sys.stderr,
        )
        return 143 if terminated else 130
    return 0 if any(t.state.name == "COMPLETE" for t in study.trials) else 1


_FORMATS = {"torchscript": ".pt", "onnx": ".onnx", "exported-program": ".pt2"}


def export_command(
    checkpoint: str,
    format: str,
    output: str | None = None,
    batch_size: int = 1,
    overwrite: bool = False,
    trust: list[str] | None = None,
) -> str:
    """Export a lightkit checkpoint (see :mod:`lightkit.export`); returns the written path.

    The checkpoint is untrusted input (see ``Predictor.from_checkpoint``); ``trust`` names the
    modules it may name. The output never replaces the checkpoint itself.
    """
    import torch

    from lightkit import export as lk_export
    from lightkit._validation import check_choice, check_int
    from lightkit.inference import Predictor

    check_choice("lightkit export", "--format", format, _FORMATS)
    check_int("lightkit export", "--batch-size", batch_size, 1, 4096)
    target = output or str(Path(checkpoint).with_suffix(_FORMATS[format]))
    if Path(target).resolve() == Path(checkpoint).resolve():
        raise ValueError(
            f"--output {target!r} is the checkpoint being exported; choose another file"
        )
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", trust=trust)
    if predictor.input_shape is None:
        raise SystemExit(
            f"lightkit export: {checkpoint!r} does not record its input shape (it was not trained "
            "by a lightkit task module); export from Python with an example input instead"
        )
    example = torch.randn(batch_size, *predictor.input_shape)
    route = {
        "torchscript": lk_export.to_torchscript,
        "onnx": lk_export.to_onnx,
        "exported-program": lk_export.to_exported_program,
    }[format]
    return str(route(predictor.module, example, target, overwrite=overwrite, source=checkpoint))


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _body_bytes(megabytes: float) -> int:
    from lightkit._validation import check_float

    return int(
        check_float("lightkit serve", "--max-body-mb", megabytes, 0.0, min_inclusive=False) * 2**20
    )


_TRUST_HELP = (
    "module prefixes or class paths the checkpoint may name (your own nets: mypkg.nets); "
    "see 'What lightkit trusts' in the README"
)


# Advice the Python API gives, and what it means on the command line.
_CLI_WORDS = (
    ("pass overwrite=True", "pass --overwrite"),
    ("Pass overwrite=True", "Pass --overwrite"),
    (
        "pass task=<the LightningModule class>, or build the module and use Predictor(module)",
        "the lightkit command rebuilds only checkpoints written by a lightkit task module (in "
        "Python: lk.Predictor.from_checkpoint(path, task=<the LightningModule class>))",
    ),
    (
        "pass net=<an instance of the trained architecture>",
        "decorate the net's class with @lk.models.record_init_args and trust its module "
        "(--trust mypkg.nets), or load it in Python with lk.Predictor.from_checkpoint(path, "
        "net=<an instance of the trained architecture>)",
    ),
)


# serve()'s arguments that are flags of `lightkit serve` under the same name.
_SERVE_FLAGS = (
    "max_batch_size",
    "batch_timeout",
    "max_samples",
    "read_timeout",
    "input_shape",
    "port",
    "host",
)


def _in_cli_words(message: str) -> str:
    """An error message from the Python API, with its advice in the command's own flags."""
    for python, cli in _CLI_WORDS:
        message = message.replace(python, cli)
    for name in _SERVE_FLAGS:
        message = message.replace(f"serve: {name} ", f"serve: --{name.replace('_', '-')} ")
    return message


def _importable_cwd() -> None:
    """Let configs name modules in the current folder (``class_path: mystuff.MyNet``), as with
    ``python -m``. The folder goes last on ``sys.path``, so it never shadows an installed package."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightkit`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _importable_cwd()
    if argv and argv[0] in (*LIGHTNING_COMMANDS, "diagnose", "interpret"):
        return _config_command(argv)
    if argv and argv[0] == "sweep":
        return _sweep_command(argv[1:])
    if argv and argv[0] == "runs":
        from lightkit.runs_report import runs_command

        return runs_command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="lightkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lightkit {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in LIGHTNING_COMMANDS:
        commands.add_parser(
            name, help=f"LightningCLI {name} with lightkit's trainer presets (--config FILE.yaml)"
        )
    commands.add_parser("diagnose", help="check data, model and learning rate (--config FILE.yaml)")
    commands.add_parser(
        "interpret",
        help="report where a trained checkpoint is wrong, with pictures (--config FILE.yaml "
        "--ckpt_path CKPT)",
    )
    commands.add_parser(
        "sweep",
        help="search hyperparameters with Optuna (--config BASE.yaml --search SPACE.yaml "
        "--n-trials N)",
    )
    commands.add_parser(
        "runs",
        help="list the runs under a folder: status, best value, epochs, key hyperparameters "
        "(lightkit runs [ROOT] [--format table|csv|json] [--sort run|best|started|status|epochs])",
    )
    commands.add_parser("doctor", help="report Python, torch, CUDA, precision and installed extras")

    exp = commands.add_parser(
        "export", help="export a checkpoint to TorchScript, ONNX or torch.export, verified"
    )
    exp.add_argument("checkpoint", help="a .ckpt written by a lightkit trainer")
    exp.add_argument("--format", choices=sorted(_FORMATS), default="exported-program")
    exp.add_argument("--output", help="file to write (default: the checkpoint's name, new suffix)")
    exp.add_argument("--batch-size", type=int, default=1, help="batch size of the example input")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    exp.add_argument("--trust", nargs="+", metavar="MODULE", help=_TRUST_HELP)

    srv = commands.add_parser("serve", help="serve a checkpoint over HTTP with dynamic batching")
    srv.add_argument("checkpoint", help="a .ckpt written by a lightkit trainer")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--max-batch-size", type=int, default=32)
    srv.add_argument("--batch-timeout", type=float, default=0.01, help="seconds")
    srv.add_argument(
        "--max-body-mb",
        type=float,
        default=None,
        help="larger requests get 413 (default: 4x one sample of the model's input as JSON, "
        "at least 64 KiB; at least 16 MiB when the checkpoint records an eval transform)",
    )
    srv.add_argument(
        "--max-samples",
        type=int,
        default=64,
        help="most samples (instances, images, uploaded files) one request may hold",
    )
    srv.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        metavar="N",
        help="the shape of one sample (default: recorded in the checkpoint, else learned from "
        "the first request the model accepts)",
    )
    srv.add_argument(
        "--read-timeout",
        type=float,
        default=20.0,
        help="seconds a client has to send a whole request; slower ones get 408",
    )
    srv.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's prediction with its flip",
    )
    srv.add_argument("--accelerator", choices=["auto", "cpu", "cuda"], default="auto")
    srv.add_argument("--verbose", action="store_true", help="print the size of every batch")
    srv.add_argument("--trust", nargs="+", metavar="MODULE", help=_TRUST_HELP)

    args = parser.parse_args(argv)
    if args.command == "doctor":
        print(doctor())
        return 0
    if args.command in ("export", "serve") and not Path(args.checkpoint).is_file():
        parser.error(f"{args.command}: checkpoint {args.checkpoint!r} does not exist")
    try:
        if args.command == "export":
            path = export_command(
                args.checkpoint,
                args.format,
                args.output,
                args.batch_size,
                args.overwrite,
                trust=args.trust,
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
                max_body_bytes=(
                    None if args.max_body_mb is None else _body_bytes(args.max_body_mb)
                ),
                input_shape=args.input_shape,
                read_timeout=args.read_timeout,
                max_samples=args.max_samples,
                tta=args.tta,
                accelerator=args.accelerator,
                verbose=args.verbose,
                **({"trust": args.trust} if args.trust else {}),
            )
            return 0
    except (ValueError, TypeError, ImportError, FileExistsError, RuntimeError) as err:
        print(f"lightkit {args.command}: error: {_in_cli_words(str(err))}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
