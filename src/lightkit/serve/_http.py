"""The HTTP side of ``lightkit serve``: body limits, request checks off the event loop, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from lightkit.serve._requests import DEFAULT_MAX_SAMPLES, RequestInputs, Samples

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_HEADER_BYTES = 64 * 2**10
_PARSERS = 2  # bodies parsed at a time (threads); more would only queue for the GIL


class RequestGuard:
    """ASGI middleware: limit the body size and check ``/predict`` bodies (in a thread) before batching.

    :func:`~lightkit.serve.make_server` adds it to the ``litserve.LitServer`` it builds; pass it
    as a ``(class, keyword arguments)`` middleware to a server built by hand.

    Example:
        >>> import asyncio
        >>> async def app(scope, receive, send): ...  # the server's app: never reached here
        >>> guarded = lk.serve.RequestGuard(app, "/predict", input_shape=(8,), max_body_bytes=1000)
        >>> async def receive():
        ...     return {"type": "http.request", "body": b"[" * 5000, "more_body": False}
        >>> sent = []
        >>> async def send(message):
        ...     sent.append(message)
        >>> scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
        >>> asyncio.run(guarded(scope, receive, send))
        >>> sent[0]["status"]  # body too large
        413
    """

    def __init__(
        self,
        app: Any,
        path: str,
        input_shape: Sequence[int] | None,
        max_body_bytes: int,
        transform_spec: dict[str, Any] | None = None,
        image_mode: str = "RGB",
        trust: Sequence[str] | None = None,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> None:
        self.app = app
        self.path = path
        self.inputs = RequestInputs(
            input_shape,
            transform_spec=transform_spec,
            image_mode=image_mode,
            trust=trust,
            max_samples=max_samples,
        )
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
        body = b"".join(chunks)
        content_type = ""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1")
        if self._parsers is None:
            self._parsers = asyncio.Semaphore(_PARSERS)
        if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
            files = await self._uploaded_files(scope, body)
            if isinstance(files, tuple):
                await _reply(send, *files)
                return
            async with self._parsers:
                result = await asyncio.to_thread(_as_body, self.inputs.images, files)
        else:
            async with self._parsers:
                result = await asyncio.to_thread(_as_body, self.inputs.parse, body, content_type)
        if isinstance(result, tuple):
            await _reply(send, *result)
            return
        checked = result
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

    async def _uploaded_files(
        self, scope: Scope, body: bytes
    ) -> list[tuple[str, bytes]] | tuple[int, str]:
        """The files of a ``multipart/form-data`` body, in order, parsed by Starlette."""
        from starlette.formparsers import MultiPartException
        from starlette.requests import Request

        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        limit = self.inputs.max_samples
        try:
            # Without "app" in the scope, Starlette raises its MultiPartException (else an
            # HTTPException meant for its own routing) for a bad body.
            plain = {k: v for k, v in scope.items() if k != "app"}
            form = await Request(plain, receive).form(max_files=limit, max_fields=limit)
        except MultiPartException as err:
            if err.message.startswith("Too many"):
                return 413, f"{err.message} (the server's max_samples per request)"
            return 400, f"the multipart/form-data body is malformed: {err.message}"
        except AssertionError as err:  # python-multipart is not installed
            return 500, f"the server cannot parse multipart bodies: {err}"
        files: list[tuple[str, bytes]] = []
        try:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    return 422, (
                        f"multipart field {key!r} is not a file; send each image as a file "
                        "(curl -F image=@cat.jpg)"
                    )
                files.append((value.filename or key, await value.read()))
        finally:
            await form.close()
        return files


def _as_body(parse: Callable[..., Any], *args: Any) -> bytes | tuple[int, str]:
    """``parse(*args)``'s samples as the compact body for the model worker (in the same worker
    thread: encoding a large request must not hold the event loop), or its problem."""
    result = parse(*args)
    return result.to_body() if isinstance(result, Samples) else result


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


def read_timeout_protocol(read_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
    """uvicorn's HTTP protocol class with a deadline for receiving each request, for ``http=``.

    uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but sets no limit on how
    long a client may take to send a request: a client that sends its headers a byte at a time,
    or never finishes its body, holds the connection forever. With this protocol a request must
    arrive whole (headers and body) within ``read_timeout`` seconds of the connection opening or of
    its first byte; otherwise the client gets 408 and the connection is closed. Headers over
    ``max_header_bytes`` get 431.

    Example:
        >>> server = lk.serve.make_server(checkpoint, accelerator="cpu")  # a litserve.LitServer
        >>> protocol = lk.serve.read_timeout_protocol(20.0)
        >>> server.run(port=8000, http=protocol)  # network: opens a port  # doctest: +SKIP
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


__all__ = ["MAX_HEADER_BYTES", "RequestGuard", "read_timeout_protocol"]
