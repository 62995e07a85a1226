"""HTTP serving of a checkpoint on LitServe: checked requests, dynamic batching, clear 4xx errors.

``lightkit serve CHECKPOINT`` (or :func:`serve`) starts a server with

* ``GET /health``: 200 once the model is loaded;
* ``POST /predict`` with ``{"inputs": <one sample as nested lists>}``: 200 with
  ``{"outputs": <the task's natural output for that sample>}`` (class probabilities, values, ...).

Concurrent requests are grouped into batches of up to ``max_batch_size`` (waiting at most
``batch_timeout`` seconds for a batch to fill) and run in one forward pass. Every request is
checked before it joins a batch, so a bad request gets its own error and never fails the good
requests it would have been batched with:

* a body over ``max_body_bytes``: 413;
* a body that is not JSON: 400;
* no ``inputs`` key, non-numeric values, ragged lists, NaN/Inf or a sample of the wrong shape:
  422, with a message saying what was expected.

Needs the ``serve`` extra: ``pip install "lightkit[serve]"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch

from lightkit.checkpointing import load_checkpoint

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def check_request(body: bytes, input_shape: Sequence[int] | None) -> tuple[int, str] | None:
    """``None`` for a good ``/predict`` body, else ``(status code, message)``.

    Example:
        >>> check_request(b'{"inputs": [1, 2]}', (2,)) is None
        True
    """
    try:
        payload = json.loads(body)
    except RecursionError:
        return 422, "the request body is nested too deeply"
    except (ValueError, UnicodeDecodeError) as err:
        return (
            400,
            f'the request body is not valid JSON ({err}); send {{"inputs": <one sample as nested lists>}}',
        )
    expected = (
        f"a sample of shape {tuple(input_shape)}" if input_shape is not None else "one sample"
    )
    if not isinstance(payload, dict) or "inputs" not in payload:
        got = (
            "an object without it"
            if isinstance(payload, dict)
            else f"a JSON {type(payload).__name__}"
        )
        return (
            422,
            f'expected a JSON object with an "inputs" key holding {expected} as nested lists of numbers, got {got}',
        )
    inputs = payload["inputs"]
    if (
        isinstance(inputs, bool)
        or not isinstance(inputs, (list, int, float))
        or _has_non_numbers(inputs)
    ):
        return 422, f'"inputs" must be {expected} as nested lists of numbers, got {_kind(inputs)}'
    try:
        array = np.asarray(inputs, dtype=np.float32)
    except OverflowError:
        return 422, '"inputs" holds numbers too large for float32'
    except (ValueError, TypeError):
        return (
            422,
            f'"inputs" must be {expected} as nested lists of numbers; got ragged lists (rows of different lengths)',
        )
    if input_shape is not None and array.shape != tuple(input_shape):
        return 422, f'"inputs" has shape {array.shape}, expected {tuple(input_shape)}'
    if not np.isfinite(array).all():
        return 422, '"inputs" contains NaN or Infinity'
    return None


def _has_non_numbers(value: Any) -> bool:
    """Whether nested lists hold anything but numbers (iterative: no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            return True
    return False


def _kind(value: Any) -> str:
    if isinstance(value, list):
        inner = next(
            (v for v in _flatten(value) if isinstance(v, bool) or not isinstance(v, (int, float))),
            None,
        )
        return f"a list containing {_kind(inner)}" if inner is not None else "a list"
    if value is None:
        return "null"
    return {str: "a string", bool: "a boolean", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _flatten(value: Any) -> Any:
    stack = list(reversed(value))
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            yield item


class RequestGuard:
    """ASGI middleware: limit the body size and check ``/predict`` bodies before batching."""

    def __init__(
        self, app: Any, path: str, input_shape: Sequence[int] | None, max_body_bytes: int
    ) -> None:
        self.app = app
        self.path = path
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") != self.path
            or scope.get("method") != "POST"
        ):
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is larger than the limit of {self.max_body_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await _reply(send, 413, too_large)
                return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _reply(send, 413, too_large)
                return
            more = message.get("more_body", False)
        problem = check_request(body, self.input_shape)
        if problem is not None:
            await _reply(send, *problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        # The body is JSON whatever the client declared (curl -d says form data): say so.
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


try:
    import litserve as ls
except ImportError:  # the serve extra is not installed
    ls = None


if ls is not None:

    class PredictorAPI(ls.LitAPI):
        """Runs in each LitServe worker: loads the checkpoint once, predicts batches."""

        def __init__(self, checkpoint: str, verbose: bool = False, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.checkpoint = checkpoint
            self.verbose = verbose
            # LitServe calls batch/unbatch only with max_batch_size > 1; else one sample arrives.
            self.batched = kwargs.get("max_batch_size", 1) > 1

        def setup(self, device: str) -> None:
            from lightkit.inference import Predictor

            self.predictor = Predictor.from_checkpoint(self.checkpoint, device=device)

        def decode_request(self, request):  # type: ignore[no-untyped-def]  # no annotation: LitServe then passes the JSON body
            return torch.as_tensor(
                request["inputs"], dtype=torch.float32
            )  # checked by RequestGuard

        def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(inputs)

        @torch.inference_mode()
        def predict(self, x: torch.Tensor) -> torch.Tensor:
            batch = x if self.batched else x[None]
            if self.verbose:
                print(f"lightkit serve: predicting a batch of {batch.shape[0]}", flush=True)
            out = self.predictor._forward(batch)
            return out if self.batched else out[0]

        def unbatch(self, output: torch.Tensor) -> list[torch.Tensor]:
            return list(output)

        def encode_response(self, output: torch.Tensor) -> dict[str, Any]:
            return {"outputs": output.tolist()}


def make_server(
    checkpoint: str | os.PathLike[str],
    max_batch_size: int = 32,
    batch_timeout: float = 0.01,
    max_body_bytes: int = 10 * 2**20,
    accelerator: str = "auto",
    verbose: bool = False,
) -> Any:
    """Build (but do not start) the ``litserve.LitServer`` for ``checkpoint``; see :func:`serve`."""
    if ls is None:
        raise ImportError('lightkit serve needs LitServe: pip install "lightkit[serve]"')
    for name, value, low in (
        ("max_batch_size", max_batch_size, 1),
        ("max_body_bytes", max_body_bytes, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"serve: {name} must be an integer >= {low}, got {value!r}")
    if not isinstance(batch_timeout, (int, float)) or batch_timeout < 0:
        raise ValueError(
            f"serve: batch_timeout must be a number of seconds >= 0, got {batch_timeout!r}"
        )
    if accelerator not in ("auto", "cpu", "cuda"):
        raise ValueError(f"serve: accelerator must be 'auto', 'cpu' or 'cuda', got {accelerator!r}")
    path = os.fspath(checkpoint)
    meta = load_checkpoint(path).get("lightkit") or {}  # fails early and clearly on a bad file
    if not meta.get("task"):
        raise ValueError(
            f"serve: {path!r} was not written by a lightkit task module; lightkit serve cannot rebuild it"
        )
    input_shape = meta.get("input_shape")
    api = PredictorAPI(
        checkpoint=os.path.abspath(path),
        verbose=verbose,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
    )
    guard = (
        RequestGuard,
        {"path": "/predict", "input_shape": input_shape, "max_body_bytes": max_body_bytes},
    )
    return ls.LitServer(api, accelerator=accelerator, middlewares=[guard], devices=1)


def serve(
    checkpoint: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 32,
    batch_timeout: float = 0.01,
    max_body_bytes: int = 10 * 2**20,
    accelerator: str = "auto",
    verbose: bool = False,
) -> None:
    """Serve a lightkit checkpoint over HTTP until interrupted (see the module docstring).

    Args:
        checkpoint: A ``.ckpt`` written by a lightkit trainer (loaded with ``weights_only=True``).
        host: Interface to listen on (``127.0.0.1``: this machine only; ``0.0.0.0``: all).
        port: TCP port.
        max_batch_size: Most requests run together in one forward pass.
        batch_timeout: Longest wait, in seconds, for a batch to fill.
        max_body_bytes: Larger request bodies get 413.
        accelerator: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        verbose: Print the size of every batch the model runs.

    Example:
        >>> from lightkit.serve import serve
        >>> serve("runs/version_0/checkpoints/best.ckpt", port=8000)
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"serve: port must be an integer in 1..65535, got {port!r}")
    server = make_server(
        checkpoint, max_batch_size, batch_timeout, max_body_bytes, accelerator, verbose
    )
    server.run(host=host, port=port, generate_client_file=False, log_level="warning")


__all__ = ["RequestGuard", "check_request", "make_server", "serve"]
