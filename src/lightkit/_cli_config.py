"""LightningCLI with lightkit's trainer presets and checkpoint trust policy: what ``lightkit fit``
and the other config commands, and ``lk.sweep``'s trials, parse and build configs with."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


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


def lightning_cli(
    args: list[str], run: bool = True, instantiate: bool = True, exit_on_error: bool = True
) -> Any:
    """LightningCLI on ``args`` (``["fit", "--config", FILE, ...]``, or without the subcommand
    when ``run=False``), with lightkit's trainer presets and trust policy.

    ``instantiate=False`` only parses and checks the config (``cli.config``); nothing is built.
    ``exit_on_error=False`` raises ``jsonargparse.ArgumentError`` instead of printing usage and
    exiting, for callers that report bad values themselves (``lk.sweep``).
    """
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
    if not instantiate:

        class _ParseOnly(LightningCLI):  # type: ignore[misc, valid-type]
            def instantiate_classes(self) -> None:
                pass

        LightningCLI = _ParseOnly
    parser_kwargs: dict[str, Any] = {} if run else {"prog": "lightkit"}
    if not exit_on_error:
        parser_kwargs["exit_on_error"] = False
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
            parser_kwargs=parser_kwargs,
            run=run,
            auto_configure_optimizers=False,
        )
    finally:
        sys.argv = saved
