"""Export to TorchScript, ONNX and torch.export, each reloaded and checked against eager outputs.

Every function puts the module in eval mode, exports it to a temporary file next to ``path``,
reloads that file with its own runtime (``torch.jit.load``, onnxruntime, ``torch.export.load``),
runs it and the eager module on fresh random inputs at batch size 1 and a larger one, and only
then moves the file to ``path``. Outputs that differ by more than ``atol`` raise
:class:`ExportError` with the largest difference, and nothing is written. An existing file at
``path`` is replaced only with ``overwrite=True``: without it the file is committed with
``os.link``, which fails when ``path`` exists, so a file that appears while the export runs (another
process writing the same name) is never replaced either. ``source=`` names the file the module
came from (a checkpoint), which an export never writes onto, ``overwrite=True`` or not.

Which route when:
    * ``to_exported_program`` (``torch.export``, ``.pt2``): PyTorch's current route; feeds
      ``torch.compile``/AOTInductor, ExecuTorch and TensorRT. Prefer it for new deployments in
      Python or through AOTInductor.
    * ``to_onnx``: for ONNX Runtime, TensorRT, OpenVINO, browsers and non-Python services.
    * ``to_torchscript``: for libtorch C++ programs (``torch::jit::load``; see ``examples/cpp``)
      and older serving stacks. TorchScript is in maintenance mode in recent PyTorch: it works
      and is supported, but gets no new features.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import inspect
import io
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightkit._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path,
    check_sequence,
)
from lightkit.tasks import TaskModule


class ExportError(RuntimeError):
    """An exported model whose outputs differ from the eager module's, or that failed to export.

    Example:
        >>> class Noisy(nn.Module):  # random outputs: no export can match them
        ...     def forward(self, x):
        ...         return x + torch.rand_like(x)
        >>> try:
        ...     lk.export.to_torchscript(Noisy(), torch.randn(1, 8), "noisy.pt")
        ... except lk.export.ExportError as error:
        ...     print(error)
        to_torchscript: exported outputs differ from eager outputs by up to ... (atol=0.0001) at
        batch size 1; nothing was written to 'noisy.pt'
    """


def to_torchscript(
    module: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike[str],
    method: str = "trace",
    atol: float = 1e-4,
    batch_sizes: Sequence[int] = (1, 8),
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Save ``module`` as TorchScript (``torch.jit.trace`` or ``torch.jit.script``), verified.

    Args:
        module: The model (a lightkit task module exports its ``forward``: the net's raw outputs).
        example_input: One batch of input, used for tracing and to make the check inputs.
        path: Where to write the ``.pt`` file.
        method: ``"trace"`` (records the operations run on ``example_input``; data-dependent
            control flow is frozen) or ``"script"`` (compiles the Python source).
        atol: Largest absolute difference allowed between eager and exported outputs.
        batch_sizes: Batch sizes of the random check inputs (a non-empty list of positive
            integers: every export is checked).
        overwrite: Replace an existing file at ``path``.
        source: The file ``module`` was loaded from (a checkpoint), if any: ``path`` may not
            be that file (or a link to it), even with ``overwrite=True``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ExportError: the export failed, or the reloaded model's outputs differ by more than
            ``atol`` (the message gives the largest difference).
        FileExistsError: ``path`` exists (or appeared during the export) and ``overwrite`` is
            False; that file is left untouched.

    Example:
        >>> lk.export.to_torchscript(module, torch.randn(1, 8), "model.pt")  # module: 8 features in
        PosixPath('model.pt')
        >>> torch.jit.load("model.pt")(torch.randn(4, 8)).shape
        torch.Size([4, 3])
    """
    owner = "to_torchscript"
    check_choice(owner, "method", method, ("trace", "script"))
    atol, batch_sizes = _check_common(owner, path, atol, batch_sizes, overwrite, source)
    module = _unwrap(owner, module)
    with _eval_on_cpu(module):
        return _to_torchscript(
            module, example_input, path, overwrite, atol, batch_sizes, method, source
        )


def _to_torchscript(module, example_input, path, overwrite, atol, batch_sizes, method, source):  # type: ignore[no-untyped-def]
    target, example = _prepare("to_torchscript", module, example_input, path, overwrite, source)

    def export(tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        with torch.no_grad(), _quiet():
            if method == "trace":
                scripted = torch.jit.trace(module, example, check_trace=False)
            else:
                scripted = torch.jit.script(module)
        with _quiet():  # torch 2.9+: FutureWarnings that TorchScript is deprecated (see README)
            torch.jit.save(scripted, str(tmp))
            loaded = torch.jit.load(str(tmp), map_location="cpu")
        return lambda x: loaded(x)

    return _export_verified(
        "to_torchscript",
        module,
        example,
        target,
        ".pt",
        export,
        atol,
        batch_sizes,
        overwrite,
        source,
    )


def to_onnx(
    module: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike[str],
    dynamic_batch: bool = True,
    opset: int | None = None,
    atol: float = 1e-4,
    batch_sizes: Sequence[int] = (1, 8),
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Save ``module`` as ONNX (input ``"input"``, output ``"output"``), verified with onnxruntime.

    Needs the ``export`` extra (``pip install "lightkit[export]"``: onnx, onnxruntime, onnxscript).

    Args:
        module: The model.
        example_input: One batch of input.
        path: Where to write the ``.onnx`` file.
        dynamic_batch: Let the batch dimension vary (else only ``example_input``'s batch size
            runs, and the check uses that size only).
        opset: ONNX opset version (None: the exporter's default). The written file's opset is
            checked: an exporter that writes another one (PyTorch's falls back to its default
            for opsets it cannot target) is an :class:`ExportError`, and nothing is written.
        atol: Largest absolute difference allowed between eager and onnxruntime outputs.
        batch_sizes: Batch sizes of the random check inputs (with ``dynamic_batch``; a
            non-empty list of positive integers).
        overwrite: Replace an existing file at ``path``.
        source: The file ``module`` was loaded from, which ``path`` may not be.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> lk.export.to_onnx(module, torch.randn(1, 8), "model.onnx")  # module: 8 features in
        PosixPath('model.onnx')
        >>> import onnxruntime
        >>> session = onnxruntime.InferenceSession("model.onnx")
        >>> session.run(None, {"input": np.zeros((4, 8), dtype=np.float32)})[0].shape
        (4, 3)
    """
    missing = [
        m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ImportError(
            f"to_onnx needs {', '.join(missing)}, which is not installed: "
            'pip install "lightkit[export]"'
        )
    owner = "to_onnx"
    check_bool(owner, "dynamic_batch", dynamic_batch)
    if opset is not None:
        import onnx

        check_int(owner, "opset", opset, minimum=7, maximum=onnx.defs.onnx_opset_version())
    atol, batch_sizes = _check_common(owner, path, atol, batch_sizes, overwrite, source)
    module = _unwrap(owner, module)
    with _eval_on_cpu(module):
        return _to_onnx(
            module, example_input, path, overwrite, atol, batch_sizes, dynamic_batch, opset, source
        )


def _to_onnx(
    module, example_input, path, overwrite, atol, batch_sizes, dynamic_batch, opset, source
):  # type: ignore[no-untyped-def]
    target, example = _prepare("to_onnx", module, example_input, path, overwrite, source)
    if not dynamic_batch:
        batch_sizes = (example.shape[0],)

    import onnx
    import onnxruntime as ort

    def export(tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"]}
        if dynamic_batch:
            kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
        if opset is not None:
            kwargs["opset_version"] = opset
        if "external_data" in inspect.signature(torch.onnx.export).parameters:
            kwargs["external_data"] = False  # one self-contained file (models up to 2 GB)
        with torch.no_grad(), _quiet(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(module, (example,), str(tmp), **kwargs)
        if opset is not None:
            written = _onnx_opset(onnx.load(str(tmp), load_external_data=False))
            if written != opset:
                raise ExportError(
                    f"to_onnx: opset={opset} was asked for, but torch {torch.__version__}'s "
                    f"exporter wrote opset {written}; nothing was written to "
                    f"{os.fspath(target)!r}. Use an opset this exporter supports (opset=None "
                    "picks its default)"
                )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return _export_verified(
        "to_onnx", module, example, target, ".onnx", export, atol, batch_sizes, overwrite, source
    )


def _onnx_opset(model: Any) -> int | None:
    """The default-domain (``ai.onnx``) opset an ONNX model declares."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def to_exported_program(
    module: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike[str],
    dynamic_batch: bool = True,
    atol: float = 1e-4,
    batch_sizes: Sequence[int] = (1, 8),
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Save ``module`` with ``torch.export`` as a ``.pt2`` file, verified after ``torch.export.load``.

    Load it with ``torch.export.load(path).module()``.

    Args:
        module: The model.
        example_input: One batch of input.
        path: Where to write the ``.pt2`` file.
        dynamic_batch: Let the batch dimension vary.
        atol: Largest absolute difference allowed between eager and exported outputs.
        batch_sizes: Batch sizes of the random check inputs (with ``dynamic_batch``; a
            non-empty list of positive integers).
        overwrite: Replace an existing file at ``path``.
        source: The file ``module`` was loaded from, which ``path`` may not be.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> lk.export.to_exported_program(module, torch.randn(1, 8), "model.pt2")
        PosixPath('model.pt2')
        >>> torch.export.load("model.pt2").module()(torch.randn(4, 8)).shape
        torch.Size([4, 3])
    """
    owner = "to_exported_program"
    check_bool(owner, "dynamic_batch", dynamic_batch)
    atol, batch_sizes = _check_common(owner, path, atol, batch_sizes, overwrite, source)
    module = _unwrap(owner, module)
    with _eval_on_cpu(module):
        return _to_exported_program(
            module, example_input, path, overwrite, atol, batch_sizes, dynamic_batch, source
        )


def _to_exported_program(
    module, example_input, path, overwrite, atol, batch_sizes, dynamic_batch, source
):  # type: ignore[no-untyped-def]
    target, example = _prepare(
        "to_exported_program", module, example_input, path, overwrite, source
    )
    if not dynamic_batch:
        batch_sizes = (example.shape[0],)
    elif example.shape[0] == 1:
        # torch.export specializes a dimension of size 1; trace with two samples instead.
        example = torch.cat([example, example])

    def export(tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        dynamic = None
        if dynamic_batch:
            dim = getattr(torch.export.Dim, "DYNAMIC", None) or torch.export.Dim("batch")
            dynamic = ({0: dim},)
        with torch.no_grad(), _quiet():
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
        torch.export.save(program, str(tmp))
        loaded = torch.export.load(str(tmp)).module()
        return lambda x: loaded(x)

    return _export_verified(
        "to_exported_program",
        module,
        example,
        target,
        ".pt2",
        export,
        atol,
        batch_sizes,
        overwrite,
        source,
    )


# --- shared ------------------------------------------------------------------------------------


def _unwrap(owner: str, module: Any) -> nn.Module:
    """The net inside a lightkit task module (its forward is the net's), else the module."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"{owner}: module must be a torch.nn.Module, got {type(module).__name__}")
    return module.net if isinstance(module, TaskModule) else module


@contextlib.contextmanager
def _eval_on_cpu(module: nn.Module) -> Iterator[None]:
    """Export from eval mode on the CPU; give the module back as it was."""
    training = module.training
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    module.eval().to("cpu")
    try:
        yield
    finally:
        module.train(training).to(device)


def _check_common(
    owner: str, path: Any, atol: Any, batch_sizes: Any, overwrite: Any, source: Any
) -> tuple[float, tuple[int, ...]]:
    """The arguments every route takes: a file path, a finite ``atol`` >= 0, batch sizes."""
    for name, value in (("path", path), ("source", source)):
        if value is None and name == "source":
            continue
        check_path(owner, name, value)
    atol = check_float(owner, "atol", atol, minimum=0)
    sizes = check_sequence(
        owner, "batch_sizes", batch_sizes, item=partial(check_int, minimum=1), min_length=1
    )
    check_bool(owner, "overwrite", overwrite)
    return atol, sizes


def _prepare(
    owner: str, module: nn.Module, example_input: Any, path: Any, overwrite: bool, source: Any
) -> tuple[Path, torch.Tensor]:
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 1:
        raise TypeError(
            f"{owner}: example_input must be a batch tensor (N, ...), got "
            + (
                f"a tensor of shape {tuple(example_input.shape)}"
                if isinstance(example_input, torch.Tensor)
                else type(example_input).__name__
            )
        )
    target = Path(path)
    _refuse_source(owner, target, source)
    if target.is_dir():
        raise IsADirectoryError(f"{owner}: {os.fspath(target)!r} is a folder, not a file path")
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(
            f"{owner}: {os.fspath(target)!r} already exists; pass overwrite=True to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    example = example_input.detach().to("cpu")
    try:
        with torch.no_grad():
            module(example)
    except Exception as err:
        raise ValueError(
            f"{owner}: the module does not run on example_input of shape "
            f"{tuple(example.shape)} ({type(err).__name__}: {err})"
        ) from err
    return target, example


def _refuse_source(owner: str, target: Path, source: Any) -> None:
    """An export never writes onto the file its module came from (through any link to it)."""
    if source is None:
        return
    same = Path(target).resolve() == Path(source).resolve()
    with contextlib.suppress(OSError):  # one of them does not exist: only the names compare
        same = same or os.path.samefile(target, source)
    if same:
        raise ValueError(
            f"{owner}: path={os.fspath(target)!r} is the file being exported "
            f"(source={os.fspath(source)!r}); choose another output file"
        )


def _export_verified(
    owner: str,
    module: nn.Module,
    example: torch.Tensor,
    target: Path,
    suffix: str,
    export: Callable[[Path], Callable[[torch.Tensor], torch.Tensor]],
    atol: float,
    batch_sizes: Sequence[int],
    overwrite: bool,
    source: Any,
) -> Path:
    if not batch_sizes:  # the public functions refuse it; an export is never unchecked
        raise ValueError(f"{owner}: batch_sizes must not be empty")
    tmp = _new_temporary(target, suffix)
    try:
        try:
            run = export(tmp)
        except ExportError:
            raise
        except Exception as err:
            raise ExportError(f"{owner}: export failed: {type(err).__name__}: {err}") from err
        for batch_size in batch_sizes:
            x = _random_like(example, batch_size)
            with torch.no_grad():
                expected = module(x)
                actual = run(x)
            if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
                raise ExportError(
                    f"{owner}: at batch size {batch_size} the exported model returned "
                    f"{_describe(actual)}, the eager module {_describe(expected)}"
                )
            diff = (actual.float() - expected.float()).abs().max().item()
            if not diff <= atol:
                raise ExportError(
                    f"{owner}: exported outputs differ from eager outputs by up to {diff:.3g} "
                    f"(atol={atol:g}) at batch size {batch_size}; nothing was written to "
                    f"{os.fspath(target)!r}"
                )
        _refuse_source(owner, target, source)  # again: a link may have appeared meanwhile
        _commit(owner, tmp, target, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _new_temporary(target: Path, suffix: str) -> Path:
    """A new empty hidden file next to ``target``, created with the usual (umask) permissions."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _commit(owner: str, tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the verified ``tmp`` to ``target``; without ``overwrite``, never replace a file.

    ``os.link`` fails when ``target`` exists, however recently it appeared, so the check and the
    write are one step. Where the file system has no hard links, the file is copied into a
    ``target`` opened with ``O_EXCL`` (which fails the same way) instead.
    """
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        try:
            os.link(tmp, target)
        except OSError as err:
            if isinstance(err, FileExistsError) or err.errno not in _NO_HARD_LINKS:
                raise
            _copy_exclusive(tmp, target)  # no hard links on this file system
    except FileExistsError:
        raise FileExistsError(
            f"{owner}: {os.fspath(target)!r} appeared while exporting (another process?); it "
            "was left as it is and the export was not written. Pass overwrite=True to replace "
            "it, or choose another path"
        ) from None


_NO_HARD_LINKS = {
    code
    for code in (
        getattr(errno, name, None)
        for name in ("EPERM", "EACCES", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "EMLINK", "ENOSYS")
    )
    if code is not None
}


def _copy_exclusive(tmp: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out, open(tmp, "rb") as data:
            shutil.copyfileobj(data, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        target.unlink(missing_ok=True)  # our own, half-written file
        raise


def _random_like(example: torch.Tensor, batch_size: int) -> torch.Tensor:
    shape = (batch_size, *example.shape[1:])
    if example.is_floating_point():
        return torch.randn(shape, dtype=example.dtype)
    low, high = int(example.min()), int(example.max()) + 1
    return torch.randint(low, high, shape, dtype=example.dtype)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return type(value).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


__all__ = ["ExportError", "to_exported_program", "to_onnx", "to_torchscript"]
