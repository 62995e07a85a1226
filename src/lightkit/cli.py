"""The ``lightkit`` command.

``lightkit fit | validate | test | predict --config FILE.yaml`` run LightningCLI with lightkit's
trainer presets (``lk.make_trainer``); ``lightkit diagnose --config FILE.yaml`` runs
``lk.diagnose`` on the configured model and data; ``lightkit interpret --config FILE.yaml
--ckpt_path CKPT`` reports where a trained checkpoint is wrong (``lk.interpret``); ``lightkit
export`` and ``lightkit serve``
ship a checkpoint; ``lightkit doctor`` reports the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightkit

_EXTRAS = {
    "examples": ("sklearn",),
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
        f"lightkit   {lightkit.__version__}",
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
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        state = (
            "installed"
            if not missing
            else f'missing {", ".join(missing)}: pip install "lightkit[{extra}]"'
        )
        lines.append(f"extra      {extra}: {state}")
    return "\n".join(lines)


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
        _lightning_cli([command, *rest])
        return 0
    from lightkit.diagnosis import diagnose

    cli = _lightning_cli(rest, run=False)
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

    cli = _lightning_cli(rest, run=False)
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


def cli_trainer(**kwargs: Any) -> Any:
    """``lk.make_trainer`` for LightningCLI: its arguments plus every other ``Trainer`` argument.

    LightningCLI reads this function's signature (set below) to build the ``trainer:`` section
    of configs and the ``--trainer.*`` flags; values left at the Trainer's defaults are not
    passed on, so ``make_trainer``'s own defaults apply.
    """
    import lightning as L

    defaults = _trainer_only_defaults(L.Trainer)
    kwargs = {k: v for k, v in kwargs.items() if k not in defaults or v != defaults[k]}
    from lightkit.trainer import make_trainer

    return make_trainer(**kwargs)


def _trainer_only_defaults(trainer_class: type) -> dict[str, Any]:
    """Defaults of the Trainer arguments that make_trainer does not name itself."""
    import inspect

    from lightkit.trainer import make_trainer

    own = set(inspect.signature(make_trainer).parameters)
    return {
        name: param.default
        for name, param in inspect.signature(trainer_class.__init__).parameters.items()
        if name != "self" and name not in own and param.default is not param.empty
    }


def _cli_trainer_signature() -> Any:
    """make_trainer's parameters, then the Trainer's others, with resolved type hints."""
    import inspect
    import typing

    import lightning as L

    from lightkit.trainer import make_trainer

    params = []
    for fn in (make_trainer, L.Trainer.__init__):
        hints = typing.get_type_hints(fn)
        for param in inspect.signature(fn).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if any(p.name == param.name for p in params):
                continue  # make_trainer's own version wins
            params.append(
                param.replace(
                    kind=inspect.Parameter.KEYWORD_ONLY,
                    annotation=hints.get(param.name, param.annotation),
                )
            )
    return inspect.Signature(params, return_annotation=L.Trainer)


def _checked_cli_class() -> type:
    """LightningCLI whose ``--ckpt_path`` hyperparameters pass lightkit's trust policy.

    LightningCLI merges a checkpoint's hyperparameters into the config (``_parse_ckpt_path``),
    and jsonargparse then imports and instantiates whatever they name: a ``class_path``, and
    also a plain string or a file path given where a class is expected. lightkit replaces that
    one private method (the only place it reaches into LightningCLI): it reads the checkpoint
    once (weights-only), checks the recorded task against the configured model, and merges only
    values that cannot name code: numbers, booleans, None and lists of them, strings where the
    signature says ``str``, and net / optimizer / scheduler specs that pass the allow-list
    (``--trust`` widens it) with arguments of those kinds. Other keys are left to the config,
    with a warning naming them.
    ``tests/integration/test_trust.py::test_lightning_cli_private_hook_exists`` fails by name if it moves.
    """
    from lightning.pytorch.cli import LightningCLI

    class _LightkitCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--resume",
                type=bool,
                default=False,
                help="fit: continue the newest run under trainer.default_root_dir that has a "
                "checkpoint that loads, as lk.fit(resume=True) does",
            )
            parser.add_argument(
                "--trust",
                type=list[str] | None,
                default=None,
                help="Module prefixes or class paths that a --ckpt_path checkpoint may name "
                "(for your own nets: --trust mypkg.nets); see 'What lightkit trusts'",
            )

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            # `lightkit fit --resume`: the trainer reopens the newest run that has a checkpoint
            # that loads (as lk.fit(resume=True) does); before_fit hands fit that checkpoint.
            section = self.config_init.get(str(self.subcommand), self.config_init)
            evaluated = _run_of(section.get("ckpt_path"))
            if self.subcommand in ("validate", "test", "predict") and evaluated is not None:
                # Beside the run the checkpoint came from (<run>/test/version_<n>/), not a new
                # run folder at the root that `resume` and `version="last"` would then see.
                kwargs["default_root_dir"] = str(evaluated / str(self.subcommand))
            self.resume_from = None
            if section.get("resume") and self.subcommand != "fit":
                raise SystemExit(
                    f"lightkit {self.subcommand}: --resume continues training, so it is for "
                    f"lightkit fit; give {self.subcommand} the checkpoint with --ckpt_path"
                )
            if self.subcommand == "fit" and section.get("resume"):
                from lightkit.checkpointing import CheckpointError
                from lightkit.trainer._run_dir import CLI_FLAG, resume_into

                options = {**dict(section.get("trainer") or {}), **kwargs}
                try:
                    self.resume_from, note = resume_into(options, CLI_FLAG)
                except (CheckpointError, TypeError, ValueError) as err:
                    raise SystemExit(str(err)) from None
                kwargs["version"] = options.get("version")
                if note:
                    print(f"{note}; starting a new run", file=sys.stderr)
            trainer = super().instantiate_trainer(**kwargs)
            self.prediction_writer = None
            if self.subcommand == "predict":
                from lightkit.callbacks import PredictionWriter

                self.prediction_writer = PredictionWriter()
                trainer.callbacks.append(self.prediction_writer)
            return trainer

        def after_predict(self) -> None:
            writer = self.prediction_writer
            if writer is not None and writer.written is not None:
                print(f"lightkit predict: wrote {writer.count:,} predictions to {writer.written}")

        def before_fit(self) -> None:
            if self.resume_from is not None:
                self.config_init[str(self.subcommand)]["ckpt_path"] = self.resume_from

        def _parse_ckpt_path(self) -> None:
            subcommand = self.config.get("subcommand")
            if not subcommand:
                return
            section = self.config[subcommand]
            ckpt_path = section.get("ckpt_path")
            if ckpt_path and section.get("resume"):
                raise SystemExit(f"lightkit {subcommand}: give --resume or --ckpt_path, not both")
            if not ckpt_path or not Path(ckpt_path).is_file():
                return
            from lightkit.checkpointing import CheckpointError

            try:
                hparams = _checked_cli_hparams(ckpt_path, section)
            except CheckpointError as err:
                raise SystemExit(f"lightkit {subcommand}: --ckpt_path: {err}") from None
            model = section.get("model")
            class_path = getattr(model, "class_path", None)
            if hparams and class_path:  # the config's own model class, with the checked values
                update = {"model": {"class_path": class_path, "init_args": hparams}}
                self.config = self.parser.parse_object({subcommand: update}, self.config)

    return _LightkitCLI


def _run_of(ckpt_path: Any) -> Path | None:
    """The run folder of a checkpoint at ``<run>/checkpoints/<file>.ckpt`` (a lightkit run)."""
    if not isinstance(ckpt_path, str) or not Path(ckpt_path).is_file():
        return None
    folder = Path(ckpt_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else None


def _checked_cli_hparams(ckpt_path: str, section: Any) -> dict[str, Any]:
    """The checkpoint's hyperparameters that are safe to merge into the config (see above)."""
    import inspect
    import warnings

    from lightkit._metadata import CheckpointMetadata
    from lightkit._spec import (
        check_net_spec,
        check_trust,
        import_object,
        resolve,
        stored_bytes,
        trusting,
    )
    from lightkit.checkpointing import CheckpointError, load_checkpoint

    trust = check_trust(section.get("trust"), "lightkit --trust")
    checkpoint = load_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters") or {}
    model = section.get("model")
    configured = getattr(model, "class_path", None) if model is not None else None
    try:
        recorded = CheckpointMetadata.from_checkpoint(checkpoint, ckpt_path).task
    except CheckpointError as err:
        raise SystemExit(f"lightkit: --ckpt_path {err}") from None
    if configured and recorded and not _same_task(configured, recorded):
        raise SystemExit(
            f"lightkit: --ckpt_path {ckpt_path!r} was written by {recorded}, but the config's "
            f"model is {configured}; use the config the checkpoint was trained with"
        )
    if not isinstance(hparams, dict):
        raise SystemExit(
            f"lightkit: --ckpt_path {ckpt_path!r}: its hyperparameters are a "
            f"{type(hparams).__name__}, expected a dict"
        )
    task_class = import_object(configured, "model") if configured else None
    signature = inspect.signature(task_class.__init__) if isinstance(task_class, type) else None
    weights = checkpoint.get("state_dict") or {}
    limit = stored_bytes(v for v in weights.values() if hasattr(v, "untyped_storage"))
    merged: dict[str, Any] = {}
    dropped: list[str] = []
    with trusting(trust, max_bytes=limit):
        for key, value in hparams.items():
            if not isinstance(key, str) or key.startswith("_"):
                continue  # LightningCLI's `_instantiator` / `_class_path`: never from a file
            if key in ("net", "optimizer", "scheduler") and isinstance(value, dict):
                try:
                    where = f"--ckpt_path {ckpt_path!r}: {key}"
                    target = (
                        check_net_spec(value, where) if key == "net" else resolve(value, where, key)
                    )
                except (ImportError, TypeError, ValueError) as err:
                    raise SystemExit(f"lightkit: {err}") from None
                args = value.get("init_args") or {}
                if all(_plain_arg(target, k, v) for k, v in args.items()):
                    merged[key] = dict(value)
                    continue
            elif value is None or _plain_arg(task_class, key, value, signature):
                merged[key] = value
                continue
            dropped.append(key)
    if dropped:
        warnings.warn(
            f"lightkit: --ckpt_path {ckpt_path!r}: hyperparameters {sorted(dropped)} are not "
            "merged into the config (they could name code to run); the config's values are used",
            stacklevel=2,
        )
    return merged


def _plain_arg(target: Any, name: str, value: Any, signature: Any = None) -> bool:
    """Whether ``value`` can be handed to jsonargparse for ``target``'s argument without it
    importing anything: numbers, booleans, None and lists of them, and strings only where the
    signature declares a plain ``str``."""
    import inspect

    if isinstance(value, (bool, int, float)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return len(value) <= 10_000 and all(
            isinstance(v, (bool, int, float)) or v is None for v in value
        )
    if isinstance(value, str) and len(value) <= 200:
        try:
            sig = signature or inspect.signature(target)
        except (TypeError, ValueError):
            return False
        param = sig.parameters.get(name)
        annotation = param.annotation if param is not None else None
        return annotation in (str, "str", "str | None", "None | str")
    return False


def _same_task(configured: str, recorded: str) -> bool:
    if configured == recorded:
        return True
    from lightkit._spec import import_object, qualified_name

    try:  # the config may use a short path (lightkit.ClassificationModule)
        return qualified_name(import_object(configured, "model")) == recorded
    except ImportError:
        return False


def _lightning_cli(args: list[str], run: bool = True) -> Any:
    try:
        LightningCLI = _checked_cli_class()
    except ImportError as err:  # pragma: no cover - jsonargparse is a dependency
        raise ImportError(
            "the lightkit CLI needs jsonargparse: pip install 'jsonargparse[signatures]'"
        ) from err
    import lightning as L

    from lightkit.tasks import TaskModule

    signature = _cli_trainer_signature()
    cli_trainer.__signature__ = signature  # type: ignore[attr-defined]
    cli_trainer.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    # LightningCLI reads sys.argv (passing args= as well makes it warn): hand it ours.
    saved, sys.argv = sys.argv, ["lightkit", *args]
    try:
        return LightningCLI(
            TaskModule,
            L.LightningDataModule,
            trainer_class=cli_trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "lightkit"} if not run else {},
            run=run,
            auto_configure_optimizers=False,
        )
    finally:
        sys.argv = saved


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
    parser = argparse.ArgumentParser(
        prog="lightkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lightkit {lightkit.__version__}")
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
