"""HTTP serving of a checkpoint on LitServe: checked requests, dynamic batching, clear 4xx errors.

``lightkit serve CHECKPOINT`` (or :func:`serve`) starts a server with

* ``GET /health``: 200 once the model is loaded;
* ``POST /predict``, which takes

  - ``{"inputs": <one sample as nested lists>}`` and answers ``{"outputs": <the task's natural
    output for that sample>}`` (class probabilities, values, ...), plus ``"label"`` (the
    predicted class: its name when the checkpoint records class names, else its index) for
    multiclass and binary classification, or ``"labels"`` (the labels present) for multilabel
    classification;
  - ``{"instances": [<sample>, ...]}`` and answers ``{"predictions": [<one such object per
    sample>, ...]}``, in order;
  - images, when the checkpoint records an eval transform (``ImageFolderDataModule``, or a
    ``DataModule`` whose ``eval_transform`` is a pipeline of deterministic torchvision steps):
    ``{"image": "<base64 image file>"}`` (one object back), ``{"images": ["<base64>", ...]}``
    or a ``multipart/form-data`` upload with one file per image (``{"predictions": [...]}``
    back), or one image file as the whole body (``Content-Type: image/png``, one object back).
    The server decodes each image in the mode training used, checks it as training images are
    checked (truncated files, decompression bombs) and runs the recorded eval transform on it.

Concurrent requests are grouped into batches of up to ``max_batch_size`` (waiting at most
``batch_timeout`` seconds for a batch to fill) and their samples run together, at most
``max_batch_size`` per forward pass. A request's mistakes are its own: every request is checked
before it joins a batch, and a batch whose forward pass fails is run again one request at a
time, so only the request at fault gets an error:

* a body over ``max_body_bytes`` (default: a multiple of what one sample of the model's input
  takes as JSON; at least 16 MiB for a server that takes images), or more than ``max_samples``
  samples in one request: 413;
* a body that is not JSON (nor an image or a multipart upload), or a malformed multipart body:
  400;
* no known key, non-numeric values, ragged lists, NaN/Inf, a sample of the wrong shape, samples
  of different shapes, invalid base64, a file that is not a readable image, an image the eval
  transform cannot turn into the model's input shape, or an image sent to a model whose
  checkpoint records no eval transform: 422, with a message saying what was expected;
* a request (headers and body) not received within ``read_timeout`` seconds: 408, and the
  connection is closed; request headers over 64 KiB: 431.

Bodies are parsed (and images decoded and transformed) in worker threads, a piece at a time for
JSON, so ``/health`` and small requests are answered while large bodies are being parsed. For a
checkpoint that records no input shape (a task whose ``shared_step`` is overridden), the first
request the model accepts sets the shape; pass ``input_shape=`` to set it yourself.

SIGTERM and SIGINT (Ctrl+C) stop the server and every process it started.

Needs the ``serve`` extra: ``pip install "lightkit[serve]"``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lightkit._metadata import CheckpointMetadata
from lightkit._validation import check_bool, check_choice, check_float, check_int
from lightkit.checkpointing import load_checkpoint
from lightkit.data._recorded import check_image_size, output_sizes
from lightkit.inference import Predictor
from lightkit.serve._http import RequestGuard, read_timeout_protocol
from lightkit.serve._requests import (
    CHECKED,
    DEFAULT_MAX_SAMPLES,
    RequestInputs,
    Samples,
    check_request,
    default_max_body_bytes,
)

log = logging.getLogger(__name__)

try:
    import litserve as ls
except ImportError:  # the serve extra is not installed
    ls = None


class _Rejected:
    """A request's own error, passed through a batch in its place (an exception would fail all)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


class _Request:
    """A request's checked samples (``N×...``) and whether its reply is a list."""

    def __init__(self, x: torch.Tensor, many: bool) -> None:
        self.x = x
        self.many = many


if ls is not None:
    from starlette.responses import Response

    class PredictorAPI(ls.LitAPI):
        """Runs in each LitServe worker: loads the checkpoint once, predicts batches.

        ``decode_request``, ``predict`` and ``encode_response`` never raise for one request's
        fault (LitServe would fail the whole batch): a bad request travels through the batch as
        its error and becomes its own 4xx response.
        """

        def __init__(
            self,
            checkpoint: str,
            verbose: bool = False,
            input_shape: Sequence[int] | None = None,
            trust: Sequence[str] | None = None,
            max_samples: int = DEFAULT_MAX_SAMPLES,
            tta: bool = False,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.tta = tta
            self.checkpoint = checkpoint
            self.verbose = verbose
            self.input_shape = tuple(input_shape) if input_shape is not None else None
            self.trust = list(trust) if trust is not None else None
            self.max_samples = max_samples
            self.max_batch_size = kwargs.get("max_batch_size", 1)
            # LitServe calls batch/unbatch only with max_batch_size > 1; else one request arrives.
            self.batched = self.max_batch_size > 1

        def setup(self, device: str) -> None:
            extra = {"trust": self.trust} if self.trust is not None else {}
            self.predictor = Predictor.from_checkpoint(
                self.checkpoint, device=device, tta=self.tta, **extra
            )
            if self.input_shape is None and self.predictor.input_shape is not None:
                self.input_shape = tuple(self.predictor.input_shape)
            # For bodies that did not come through RequestGuard (a LitServer built by hand).
            self.inputs = RequestInputs(
                self.input_shape,
                transform=self.predictor.transform,
                transform_spec=self.predictor.transform_spec,
                image_mode=self.predictor.image_mode,
                max_samples=self.max_samples,
            )

        # No annotations on decode_request and encode_response: LitServe then passes the
        # parsed JSON body and returns our Response as it is (no pydantic model on the way).
        def decode_request(self, request):  # type: ignore[no-untyped-def]
            checked = request.get(CHECKED) if isinstance(request, dict) else None
            if checked is None:  # not through RequestGuard (a LitServer built by hand): check here
                result = self.inputs.payload(request)
                if not isinstance(result, Samples):
                    return _Rejected(*result)
                return _Request(torch.from_numpy(result.x), result.many)
            raw = bytearray(base64.b64decode(checked["data"]))
            x = torch.frombuffer(raw, dtype=torch.float32).reshape(checked["shape"])
            return _Request(x, bool(checked.get("many")))

        def batch(self, inputs: list[Any]) -> list[Any]:
            return list(inputs)  # run together in predict, once the bad requests are set aside

        def predict(self, x: Any) -> Any:
            results = self._predict_all(x if self.batched else [x])
            return results if self.batched else results[0]

        def unbatch(self, output: list[Any]) -> list[Any]:
            return output

        def encode_response(self, output):  # type: ignore[no-untyped-def]
            if isinstance(output, _Rejected):
                status, content = output.status, {"detail": output.detail}
            else:
                status, content = 200, output
            try:
                body = json.dumps(content, allow_nan=False).encode()
            except ValueError:
                status = 500
                body = (
                    b'{"detail": "the model\'s output for this request contains NaN or Infinity"}'
                )
            return Response(body, status_code=status, media_type="application/json")

        @torch.inference_mode()
        def _predict_all(self, items: list[Any]) -> list[Any]:
            """One response body (a dict) or error (a ``_Rejected``) per request, in order."""
            results: list[Any] = list(items)
            pending = [i for i, item in enumerate(items) if isinstance(item, _Request)]
            if self.input_shape is None and pending:
                pending = self._learn_shape(items, pending, results)
            for i in pending:
                shape = tuple(items[i].x.shape[1:])
                if shape != self.input_shape:
                    where = "the samples have" if items[i].many else '"inputs" has'
                    results[i] = _Rejected(
                        422, f"{where} shape {shape}, expected {self.input_shape}"
                    )
            self._run(items, [i for i in pending if results[i] is items[i]], results)
            return results

        def _learn_shape(
            self, items: list[Any], pending: list[int], results: list[Any]
        ) -> list[int]:
            """Run requests one by one until the model accepts one; its shape is the input shape."""
            for n, i in enumerate(pending):
                shape = tuple(items[i].x.shape[1:])
                try:
                    results[i] = self._reply(items[i], self._forward(items[i].x))
                except Exception as err:
                    results[i] = _Rejected(
                        422, f'the model cannot take "inputs" of shape {shape}: {_short(err)}'
                    )
                    continue
                self.input_shape = shape
                self.inputs.input_shape = shape
                print(
                    f"lightkit serve: input shape {shape} set by the first request the model "
                    "accepted; requests of other shapes now get 422",
                    file=sys.stderr,
                    flush=True,
                )
                return pending[n + 1 :]
            return []

        def _run(self, items: list[Any], indices: list[int], results: list[Any]) -> None:
            """Forward the samples of ``indices`` together (at most ``max_batch_size`` per pass);
            if that fails, each request alone (only the bad ones fail)."""
            if not indices:
                return
            try:
                x = torch.cat([items[i].x for i in indices])
                bodies = [
                    body for chunk in x.split(self.max_batch_size) for body in self._forward(chunk)
                ]
            except Exception as err:
                if len(indices) > 1:
                    for i in indices:
                        self._run(items, [i], results)
                    return
                log.exception("lightkit serve: the model failed on a request")
                results[indices[0]] = _Rejected(
                    500, f"the model failed on this request: {_short(err)}"
                )
                return
            start = 0
            for i in indices:
                count = items[i].x.shape[0]
                results[i] = self._reply(items[i], bodies[start : start + count])
                start += count

        @staticmethod
        def _reply(request: _Request, bodies: list[dict[str, Any]]) -> dict[str, Any]:
            return {"predictions": bodies} if request.many else bodies[0]

        def _forward(self, batch: torch.Tensor) -> list[dict[str, Any]]:
            """One response body per sample: its outputs, and its label where the task has
            classes per sample (``"label"``) or per label (``"labels"``)."""
            if self.verbose:
                print(f"lightkit serve: predicting a batch of {batch.shape[0]}", flush=True)
            outputs, predicted = self.predictor.predict_batch(batch, labels=True)
            bodies = [{"outputs": row.tolist()} for row in outputs]
            kind = self.predictor.task_outputs.kind
            if predicted is not None and kind in ("multiclass", "binary", "multilabel"):
                key = "labels" if kind == "multilabel" else "label"
                for body, label in zip(bodies, self.predictor.labels(predicted), strict=True):
                    body[key] = label
            return bodies


def _short(err: Exception, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_server(
    checkpoint: str | os.PathLike[str],
    max_batch_size: int = 32,
    batch_timeout: float = 0.01,
    max_body_bytes: int | None = None,
    accelerator: str = "auto",
    verbose: bool = False,
    input_shape: Sequence[int] | None = None,
    trust: Sequence[str] | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    tta: bool = False,
) -> Any:
    """Build (but do not start) the ``litserve.LitServer`` for ``checkpoint``; see :func:`serve`.

    Run it with ``http=read_timeout_protocol(seconds)`` to time out slow clients, as
    :func:`serve` does.

    Example:
        >>> server = lk.serve.make_server(checkpoint, max_batch_size=8, accelerator="cpu")
        >>> type(server).__name__
        'LitServer'
        >>> protocol = lk.serve.read_timeout_protocol(20.0)
        >>> server.run(port=8000, http=protocol)  # network: opens a port  # doctest: +SKIP
    """
    if ls is None:
        raise ImportError('lightkit serve needs LitServe: pip install "lightkit[serve]"')
    check_int("serve", "max_batch_size", max_batch_size, minimum=1)
    check_float("serve", "batch_timeout", batch_timeout, minimum=0)
    if max_body_bytes is not None:
        check_int("serve", "max_body_bytes", max_body_bytes, minimum=1)
    check_choice("serve", "accelerator", accelerator, ("auto", "cpu", "cuda"))
    check_bool("serve", "verbose", verbose)
    check_int("serve", "max_samples", max_samples, minimum=1, maximum=100_000)
    check_bool("serve", "tta", tta)
    shape = _check_shape(input_shape)
    if trust is not None and (
        isinstance(trust, str)
        or not isinstance(trust, Sequence)
        or not all(isinstance(t, str) and t for t in trust)
    ):
        raise TypeError(
            f"serve: trust must be a list of module prefixes (such as ['mypkg.nets']) or None, "
            f"got {trust!r}"
        )
    path = os.fspath(checkpoint)
    # Fails early and clearly on a bad file.
    meta = CheckpointMetadata.from_checkpoint(load_checkpoint(path), path)
    if not meta.task:
        raise ValueError(
            f"serve: {path!r} was not written by a lightkit task module; lightkit serve cannot rebuild it"
        )
    # Rebuilt here once, on the CPU, so that a checkpoint naming code outside the trust policy
    # (or any other reason it cannot load) is reported here, not as a worker that failed to start.
    extra = {"trust": list(trust)} if trust is not None else {}
    predictor = Predictor.from_checkpoint(path, device="cpu", **extra)
    takes_images = predictor.transform is not None  # built now: a bad one fails here
    recorded = predictor.input_shape
    spec = predictor.transform_spec
    del predictor
    if shape is None and recorded is not None:
        shape = tuple(recorded)
    if spec is not None:
        _check_recorded_transform(spec, meta.image_mode, shape, path)
    if shape is None:
        print(
            f"lightkit serve: {path!r} records no input shape (its task overrides shared_step?); "
            "the first request the model accepts will set it, and requests of other shapes then "
            "get 422; pass input_shape= to set it yourself",
            file=sys.stderr,
            flush=True,
        )
    api = PredictorAPI(
        checkpoint=os.path.abspath(path),
        verbose=verbose,
        input_shape=shape,
        trust=trust,
        max_samples=max_samples,
        tta=tta,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
    )
    limit = max_body_bytes
    if limit is None:
        limit = default_max_body_bytes(shape, images=takes_images)
    guard_args = {
        "path": "/predict",
        "input_shape": shape,
        "max_body_bytes": limit,
        "transform_spec": dict(meta.transform_spec) if takes_images else None,
        "image_mode": meta.image_mode,
        "trust": list(trust) if trust is not None else None,
        "max_samples": max_samples,
    }
    guard = (RequestGuard, guard_args)
    return ls.LitServer(api, accelerator=accelerator, middlewares=[guard], devices=1)


def _check_recorded_transform(
    spec: dict[str, Any], image_mode: str, shape: tuple[int, ...] | None, path: str
) -> None:
    """A recorded eval transform must fit the recorded input shape and stay within the size
    bounds on ordinary images (a crafted checkpoint's fails here, before the server starts)."""
    channels = {"RGB": 3, "L": 1, "RGBA": 4}.get(image_mode, 3)
    finals = set()
    for height, width in ((48, 64), (64, 48), (480, 640)):
        check_image_size(spec, channels, height, width, f"serve: {path!r}")
        finals.add(output_sizes(spec, channels, height, width)[-1])
    final = finals.pop() if len(finals) == 1 else None
    if final is not None and shape is not None and len(shape) == 3 and final != tuple(shape):
        raise ValueError(
            f"serve: {path!r}: its recorded eval transform turns every image into {final}, but "
            f"its recorded input shape is {tuple(shape)}; the file is inconsistent (damaged or "
            "crafted), refusing to serve it"
        )


def _check_shape(input_shape: Any) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    if (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, Sequence)
        or not input_shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape)
    ):
        raise ValueError(
            "serve: input_shape must be the shape of one sample as a sequence of positive "
            f"integers (such as (1, 28, 28)) or None, got {input_shape!r}"
        )
    return tuple(input_shape)


def serve(
    checkpoint: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 32,
    batch_timeout: float = 0.01,
    max_body_bytes: int | None = None,
    accelerator: str = "auto",
    verbose: bool = False,
    input_shape: Sequence[int] | None = None,
    read_timeout: float = 20.0,
    trust: Sequence[str] | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    tta: bool = False,
) -> None:
    """Serve a lightkit checkpoint over HTTP until interrupted (see the module docstring).

    Args:
        checkpoint: A ``.ckpt`` written by a lightkit trainer (loaded with ``weights_only=True``).
        host: Interface to listen on (``127.0.0.1``: this machine only; ``0.0.0.0`` or ``::``: all).
        port: TCP port (1024-65535).
        max_batch_size: Most requests grouped into one batch, and most samples per forward pass.
        batch_timeout: Longest wait, in seconds, for a batch to fill.
        max_body_bytes: Larger request bodies get 413; default: four times what one sample of
            the model's input takes as JSON, at least 64 KiB (10 MiB when the shape is unknown;
            at least 16 MiB when the checkpoint records an eval transform, so images are taken).
        accelerator: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        verbose: Print the size of every batch the model runs.
        input_shape: The shape of one sample; default: the shape recorded in the checkpoint, else
            the shape of the first request the model accepts.
        read_timeout: Seconds a client has to send a whole request (headers and body) once it
            starts; slower clients get 408 and are disconnected. Idle keep-alive connections
            are closed after uvicorn's ``timeout_keep_alive`` (5 seconds).
        trust: Module prefixes whose classes the checkpoint may name, beyond lightkit's
            allow-list (see ``Predictor.from_checkpoint``).
        max_samples: Most samples (``"instances"``, ``"images"``, uploaded files) one request
            may hold; more get 413.
        tta: Test-time augmentation: average each image's prediction with its left-right flip
            (see :class:`~lightkit.Predictor`); twice the compute per request.

    Example:
        >>> from lightkit.serve import serve
        >>> serve(checkpoint, port=8000)  # network: serves on a port until Ctrl-C  # doctest: +SKIP

        Then, from another shell: ``curl -X POST localhost:8000/predict -d '{"inputs": [[0, 1,
        2, 3, 4, 5, 6, 7]]}'``.
    """
    check_choice("serve", "host", host, ("127.0.0.1", "0.0.0.0", "::"))
    check_int("serve", "port", port, minimum=1024, maximum=65535)
    check_float("serve", "read_timeout", read_timeout, minimum=0, min_inclusive=False)
    server = make_server(
        checkpoint,
        max_batch_size,
        batch_timeout,
        max_body_bytes,
        accelerator,
        verbose,
        input_shape=input_shape,
        trust=trust,
        max_samples=max_samples,
        tta=tta,
    )
    with _stop_on_sigterm():
        try:
            server.run(
                host=host,
                port=port,
                generate_client_file=False,
                log_level="warning",
                http=read_timeout_protocol(read_timeout),
            )
        finally:
            _stop_children()


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, Docker, Kubernetes, systemd) stops the server as Ctrl+C does.

    LitServe stops its HTTP and inference worker processes when the main process gets a
    KeyboardInterrupt; Python's default SIGTERM ends the main process at once and leaves them
    running (still answering on the port). Here SIGTERM raises KeyboardInterrupt instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_children(timeout: float = 5.0) -> None:
    """Terminate (then kill) any process this one started that is still alive."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join(timeout)


__all__ = [
    "RequestGuard",
    "check_request",
    "default_max_body_bytes",
    "make_server",
    "read_timeout_protocol",
    "serve",
]
