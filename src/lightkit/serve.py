"""HTTP serving of a checkpoint on LitServe: checked requests, dynamic batching, clear 4xx errors.

``lightkit serve CHECKPOINT`` (or :func:`serve`) starts a server with

* ``GET /health``: 200 once the model is loaded;
* ``POST /predict`` with ``{"inputs": <one sample as nested lists>}``: 200 with
  ``{"outputs": <the task's natural output for that sample>}`` (class probabilities, values, ...),
  plus ``"label"`` (the predicted class: its name when the checkpoint records class names, else
  its index) for multiclass and binary classification, or ``"labels"`` (the labels present) for
  multilabel classification.

Concurrent requests are grouped into batches of up to ``max_batch_size`` (waiting at most
``batch_timeout`` seconds for a batch to fill) and run in one forward pass. A request's mistakes
are its own: every request is checked before it joins a batch, and a batch whose forward pass
fails is run again one request at a time, so only the request at fault gets an error:

* a body over ``max_body_bytes`` (default: a multiple of what one sample of the model's input
  takes as JSON): 413;
* a body that is not JSON: 400;
* no ``inputs`` key, non-numeric values, ragged lists, NaN/Inf or a sample of the wrong shape:
  422, with a message saying what was expected;
* a request (headers and body) not received within ``read_timeout`` seconds: 408, and the
  connection is closed; request headers over 64 KiB: 431.

Bodies are parsed in a worker thread, a row at a time, so ``/health`` and small requests are
answered while large bodies are being parsed. For a checkpoint that records no input shape (a
task whose ``shared_step`` is overridden), the first request the model accepts sets the shape;
pass ``input_shape=`` to set it yourself.

SIGTERM and SIGINT (Ctrl+C) stop the server and every process it started.

Needs the ``serve`` extra: ``pip install "lightkit[serve]"``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import json.decoder
import json.scanner
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch

from lightkit._metadata import CheckpointMetadata
from lightkit._validation import check_bool, check_choice, check_float, check_int
from lightkit.checkpointing import load_checkpoint
from lightkit.inference import Predictor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

# The longest number Python's json writes for a float32 ("-1.1754943508222875e-38" and doubles
# such as "-2.2250738585072014e-308": 24 characters) and its ", " separator.
_JSON_BYTES_PER_NUMBER = 26
_BODY_MULTIPLE = 4  # room for indentation, newlines and other keys
_MIN_BODY_BYTES = 64 * 2**10
_UNKNOWN_SHAPE_BODY_BYTES = 10 * 2**20
_MAX_HEADER_BYTES = 64 * 2**10
_PARSERS = 2  # bodies parsed at a time (threads); more would only queue for the GIL
_CHUNK_CHARS = 2**16  # JSON text parsed per C call (a few milliseconds): the longest GIL hold
_CHUNK_NUMBERS = 2**15  # numbers converted to float32 per numpy call
_CHECKED = "lightkit_checked"  # the key of the compact body the guard hands on to LitServe


_MAX_DEFAULT_BODY_BYTES = 256 * 2**20


def default_max_body_bytes(input_shape: Sequence[int] | None) -> int:
    """The default body limit: ``4×`` one sample of ``input_shape`` as JSON, at least 64 KiB.

    Without a known shape: 10 MiB; at most 256 MiB whatever the shape (pass ``max_body_bytes=``
    for more).

    Example:
        >>> default_max_body_bytes((1, 28, 28))
        81600
    """
    if input_shape is None:
        return _UNKNOWN_SHAPE_BODY_BYTES
    one_sample = _JSON_BYTES_PER_NUMBER * math.prod(input_shape) + 16  # + '{"inputs": }'
    # Capped: a shape read from a checkpoint must not let one request take gigabytes.
    return min(_MAX_DEFAULT_BODY_BYTES, max(_MIN_BODY_BYTES, _BODY_MULTIPLE * one_sample))


def check_request(body: bytes, input_shape: Sequence[int] | None) -> tuple[int, str] | None:
    """``None`` for a good ``/predict`` body, else ``(status code, message)``.

    Example:
        >>> check_request(b'{"inputs": [1, 2]}', (2,)) is None
        True
    """
    result = _parse(body, input_shape)
    return result if isinstance(result, tuple) else None


def _parse(body: bytes, input_shape: Sequence[int] | None) -> np.ndarray | tuple[int, str]:
    """The sample in a ``/predict`` body as a float32 array, or ``(status code, message)``."""
    try:
        payload = _loads(body)
    except RecursionError:
        return 422, "the request body is nested too deeply"
    except (ValueError, UnicodeDecodeError) as err:
        return (
            400,
            f'the request body is not valid JSON ({err}); send {{"inputs": <one sample as nested lists>}}',
        )
    return _check_payload(payload, input_shape)


def _check_payload(payload: Any, input_shape: Sequence[int] | None) -> np.ndarray | tuple[int, str]:
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
        array = _to_array(inputs)
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
    return array


def _to_array(inputs: Any) -> np.ndarray:
    """Nested lists as float32, converted a row (or a slice of a long row) at a time.

    One ``np.asarray`` call holds the GIL for its whole input; in pieces, the event loop runs
    between them.
    """
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], list):
        return np.stack([_to_array(row) for row in inputs])
    if isinstance(inputs, list) and len(inputs) > _CHUNK_NUMBERS:
        pieces = range(0, len(inputs), _CHUNK_NUMBERS)
        return np.concatenate(
            [np.asarray(inputs[i : i + _CHUNK_NUMBERS], dtype=np.float32) for i in pieces]
        )
    return np.asarray(inputs, dtype=np.float32)


_c_scan = json.scanner.make_scanner(json.JSONDecoder())
_WHITESPACE = json.decoder.WHITESPACE.match


def _scan(text: str, index: int) -> tuple[Any, int]:
    """One JSON value at ``index``: objects and lists of lists in Python, the rest in C pieces.

    ``json.loads`` parses a whole body in C without releasing the GIL, which stalls every other
    thread (the event loop among them) for the length of the parse; here no C call parses more
    than an innermost list of numbers, and a long one is parsed in pieces of ``_CHUNK_CHARS``.
    """
    char = text[index : index + 1]
    if char == "{":
        return json.decoder.JSONObject((text, index + 1), True, _scan, None, None, {})
    if char == "[":
        first = _WHITESPACE(text, index + 1).end()
        if text[first : first + 1] in ("[", "{"):
            return json.decoder.JSONArray((text, index + 1), _scan)
        end = text.find("]", index)
        if end - index > _CHUNK_CHARS and not any(c in text[index:end] for c in '[{"'):
            return _scan_long_list(text, index, end)
    return _c_scan(text, index)


def _scan_long_list(text: str, index: int, end: int) -> tuple[list[Any], int]:
    """The flat list ``text[index : end + 1]`` (no strings, lists or objects inside), in pieces."""
    values: list[Any] = []
    start = index + 1
    while True:
        cut = text.find(",", start + _CHUNK_CHARS, end) if start + _CHUNK_CHARS < end else -1
        cut = end if cut < 0 else cut
        piece = text[start:cut]
        if not piece.strip(" \t\n\r"):
            raise json.JSONDecodeError("Expecting value", text, start)
        try:
            values.extend(json.loads(f"[{piece}]"))
        except json.JSONDecodeError as err:
            raise json.JSONDecodeError(err.msg, text, start - 1 + err.pos) from None
        if cut == end:
            return values, end + 1
        start = cut + 1


def _loads(body: bytes) -> Any:
    """``json.loads`` for a UTF-8 body that yields the GIL between innermost lists."""
    text = body.decode("utf-8")
    start = _WHITESPACE(text, 0).end()
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    end = _WHITESPACE(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


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


def _checked_body(body: bytes, input_shape: Sequence[int] | None) -> bytes | tuple[int, str]:
    """Check a client's body; pass the sample on as float32 bytes (cheap to decode and queue)."""
    result = _parse(body, input_shape)
    if isinstance(result, tuple):
        return result
    data = base64.b64encode(result.astype("<f4").tobytes()).decode("ascii")
    return json.dumps({_CHECKED: {"shape": list(result.shape), "data": data}}).encode()


class RequestGuard:
    """ASGI middleware: limit the body size and check ``/predict`` bodies (in a thread) before batching."""

    def __init__(
        self, app: Any, path: str, input_shape: Sequence[int] | None, max_body_bytes: int
    ) -> None:
        self.app = app
        self.path = path
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.max_body_bytes = max_body_bytes
        self._parsers: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") != self.path
            or scope.get("method") != "POST"
        ):
            await self.app(scope, receive, send)
            return
        too_large = (
            f"the request body is larger than the limit of {self.max_body_bytes} bytes "
            "(the server's max_body_bytes)"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await _reply(send, 413, too_large)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, 413, too_large)
                return
            more = message.get("more_body", False)
        if self._parsers is None:
            self._parsers = asyncio.Semaphore(_PARSERS)
        async with self._parsers:
            checked = await asyncio.to_thread(_checked_body, b"".join(chunks), self.input_shape)
        if isinstance(checked, tuple):
            await _reply(send, *checked)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": checked, "more_body": False}
            return await receive()

        # The body is JSON whatever the client declared (curl -d says form data): say so.
        headers = [
            (k, v)
            for k, v in scope.get("headers", [])
            if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(checked)).encode()),
        ]
        await self.app({**scope, "headers": headers}, replay, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _raw_reply(status: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for replies outside any ASGI cycle."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_timeout_protocol(read_timeout: float, max_header_bytes: int = _MAX_HEADER_BYTES) -> type:
    """uvicorn's HTTP protocol class with a deadline for receiving each request, for ``http=``.

    uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but sets no limit on how
    long a client may take to send a request: a client that sends its headers a byte at a time,
    or never finishes its body, holds the connection forever. With this protocol a request must
    arrive whole (headers and body) within ``read_timeout`` seconds of the connection opening or of
    its first byte; otherwise the client gets 408 and the connection is closed. Headers over
    ``max_header_bytes`` get 431.

    Example:
        >>> server.run(port=8000, http=read_timeout_protocol(20.0))  # a litserve.LitServer
    """
    try:
        import httptools  # noqa: F401  # what uvicorn's "auto" picks when it is installed
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    timed_out = _raw_reply(
        "408 Request Timeout",
        f"the request (headers and body) did not arrive within the server's read timeout "
        f"of {read_timeout:g} seconds",
    )
    too_large = _raw_reply(
        "431 Request Header Fields Too Large",
        f"the request headers are larger than the limit of {max_header_bytes} bytes",
    )

    class ReadTimeoutProtocol(Base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _previous_cycle: Any = None  # the last request fully received before this one
        _header_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None:  # the first byte of the next request
                self._arm()
            super().data_received(data)
            cycle = self.cycle
            if cycle is None or cycle is self._previous_cycle:  # headers still incomplete
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._close(too_large)
            elif not cycle.more_body:  # received whole: the app has it
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._previous_cycle = self.cycle
            self._header_bytes = 0
            self._deadline = self.loop.call_later(read_timeout, self._timed_out)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _timed_out(self) -> None:
            self._deadline = None
            cycle = self.cycle
            started = cycle is not None and cycle is not self._previous_cycle
            self._close(None if started and cycle.response_started else timed_out)

        def _close(self, reply: bytes | None) -> None:
            self._disarm()
            if self.transport.is_closing():
                return
            if reply is not None:
                self.transport.write(reply)
            self.transport.close()

    return ReadTimeoutProtocol


try:
    import litserve as ls
except ImportError:  # the serve extra is not installed
    ls = None


class _Rejected:
    """A request's own error, passed through a batch in its place (an exception would fail all)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


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
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.checkpoint = checkpoint
            self.verbose = verbose
            self.input_shape = tuple(input_shape) if input_shape is not None else None
            self.trust = list(trust) if trust is not None else None
            # LitServe calls batch/unbatch only with max_batch_size > 1; else one sample arrives.
            self.batched = kwargs.get("max_batch_size", 1) > 1

        def setup(self, device: str) -> None:
            extra = {"trust": self.trust} if self.trust is not None else {}
            self.predictor = Predictor.from_checkpoint(self.checkpoint, device=device, **extra)
            if self.input_shape is None and self.predictor.input_shape is not None:
                self.input_shape = tuple(self.predictor.input_shape)

        # No annotations on decode_request and encode_response: LitServe then passes the
        # parsed JSON body and returns our Response as it is (no pydantic model on the way).
        def decode_request(self, request):  # type: ignore[no-untyped-def]
            checked = request.get(_CHECKED) if isinstance(request, dict) else None
            if checked is None:  # not through RequestGuard (a LitServer built by hand): check here
                result = _check_payload(request, self.input_shape)
                return _Rejected(*result) if isinstance(result, tuple) else torch.from_numpy(result)
            raw = bytearray(base64.b64decode(checked["data"]))
            return torch.frombuffer(raw, dtype=torch.float32).reshape(checked["shape"])

        def batch(self, inputs: list[Any]) -> list[Any]:
            return list(inputs)  # stacked in predict, once the bad requests are set aside

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
            """One output (a tensor) or error (a ``_Rejected``) per item, in order."""
            results = list(items)
            pending = [i for i, item in enumerate(items) if isinstance(item, torch.Tensor)]
            if self.input_shape is None and pending:
                pending = self._learn_shape(items, pending, results)
            for i in pending:
                if tuple(items[i].shape) != self.input_shape:
                    results[i] = _Rejected(
                        422,
                        f'"inputs" has shape {tuple(items[i].shape)}, expected {self.input_shape}',
                    )
            self._run(items, [i for i in pending if results[i] is items[i]], results)
            return results

        def _learn_shape(
            self, items: list[Any], pending: list[int], results: list[Any]
        ) -> list[int]:
            """Run requests one by one until the model accepts one; its shape is the input shape."""
            for n, i in enumerate(pending):
                shape = tuple(items[i].shape)
                try:
                    results[i] = self._forward(items[i][None])[0]
                except Exception as err:
                    results[i] = _Rejected(
                        422, f'the model cannot take "inputs" of shape {shape}: {_short(err)}'
                    )
                    continue
                self.input_shape = shape
                print(
                    f"lightkit serve: input shape {shape} set by the first request the model "
                    "accepted; requests of other shapes now get 422",
                    file=sys.stderr,
                    flush=True,
                )
                return pending[n + 1 :]
            return []

        def _run(self, items: list[Any], indices: list[int], results: list[Any]) -> None:
            """Forward ``indices`` as one batch; if that fails, each alone (only bad ones fail)."""
            if not indices:
                return
            try:
                out = self._forward(torch.stack([items[i] for i in indices]))
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
            for k, i in enumerate(indices):
                results[i] = out[k]

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
) -> Any:
    """Build (but do not start) the ``litserve.LitServer`` for ``checkpoint``; see :func:`serve`.

    Run it with ``http=read_timeout_protocol(seconds)`` to time out slow clients, as
    :func:`serve` does.
    """
    if ls is None:
        raise ImportError('lightkit serve needs LitServe: pip install "lightkit[serve]"')
    check_int("serve", "max_batch_size", max_batch_size, minimum=1)
    check_float("serve", "batch_timeout", batch_timeout, minimum=0)
    if max_body_bytes is not None:
        check_int("serve", "max_body_bytes", max_body_bytes, minimum=1)
    check_choice("serve", "accelerator", accelerator, ("auto", "cpu", "cuda"))
    check_bool("serve", "verbose", verbose)
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
    recorded = Predictor.from_checkpoint(path, device="cpu", **extra).input_shape
    if shape is None and recorded is not None:
        shape = tuple(recorded)
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
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
    )
    limit = max_body_bytes if max_body_bytes is not None else default_max_body_bytes(shape)
    guard = (RequestGuard, {"path": "/predict", "input_shape": shape, "max_body_bytes": limit})
    return ls.LitServer(api, accelerator=accelerator, middlewares=[guard], devices=1)


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
) -> None:
    """Serve a lightkit checkpoint over HTTP until interrupted (see the module docstring).

    Args:
        checkpoint: A ``.ckpt`` written by a lightkit trainer (loaded with ``weights_only=True``).
        host: Interface to listen on (``127.0.0.1``: this machine only; ``0.0.0.0`` or ``::``: all).
        port: TCP port (1024-65535).
        max_batch_size: Most requests run together in one forward pass.
        batch_timeout: Longest wait, in seconds, for a batch to fill.
        max_body_bytes: Larger request bodies get 413; default: four times what one sample of
            the model's input takes as JSON, at least 64 KiB (10 MiB when the shape is unknown).
        accelerator: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        verbose: Print the size of every batch the model runs.
        input_shape: The shape of one sample; default: the shape recorded in the checkpoint, else
            the shape of the first request the model accepts.
        read_timeout: Seconds a client has to send a whole request (headers and body) once it
            starts; slower clients get 408 and are disconnected. Idle keep-alive connections
            are closed after uvicorn's ``timeout_keep_alive`` (5 seconds).
        trust: Module prefixes whose classes the checkpoint may name, beyond lightkit's
            allow-list (see ``Predictor.from_checkpoint``).

    Example:
        >>> from lightkit.serve import serve
        >>> serve("runs/version_0/checkpoints/best.ckpt", port=8000)
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
