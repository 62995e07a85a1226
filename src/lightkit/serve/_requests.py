"""What a ``/predict`` request may hold, turned into checked float32 samples or a 4xx reply.

A body is one of:

* JSON ``{"inputs": <one sample as nested lists of numbers>}``;
* JSON ``{"instances": [<sample>, ...]}``: several samples;
* JSON ``{"image": "<base64 image file>"}`` or ``{"images": ["<base64>", ...]}`` (a
  ``data:image/...;base64,`` URL prefix is allowed);
* an image file as the whole body (``Content-Type: image/...`` or
  ``application/octet-stream``);
* ``multipart/form-data`` with one image file per part (``curl -F image=@cat.jpg``), parsed by
  the guard with Starlette's form parser.

Images are decoded with the same checks as training images (decompression bombs, truncated
files) and run through the eval transform recorded in the checkpoint; a checkpoint that records
none cannot take images. JSON is parsed a piece at a time so that the GIL is released often.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.decoder
import json.scanner
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lightkit._spec import from_spec, trusting
from lightkit._validation import short_repr
from lightkit.data._recorded import check_image_size, image_size
from lightkit.data.datasets import BadImageError, decode_image

Problem = tuple[int, str]  # (HTTP status, message)

# The longest number Python's json writes for a float32 ("-1.1754943508222875e-38" and doubles
# such as "-2.2250738585072014e-308": 24 characters) and its ", " separator.
_JSON_BYTES_PER_NUMBER = 26
_BODY_MULTIPLE = 4  # room for indentation, newlines and other keys
_MIN_BODY_BYTES = 64 * 2**10
_UNKNOWN_SHAPE_BODY_BYTES = 10 * 2**20
_CHUNK_CHARS = 2**16  # JSON text parsed per C call (a few milliseconds): the longest GIL hold
_CHUNK_NUMBERS = 2**15  # numbers converted to float32 per numpy call
CHECKED = "lightkit_checked"  # the key of the compact body the guard hands on to LitServe
_MIN_IMAGE_BODY_BYTES = 16 * 2**20  # room for a phone photo when images are taken
DEFAULT_MAX_SAMPLES = 64
# Bounds on the work one request's images may cause: pixels per image (a 33-megapixel photo) and
# per request (checked on each header before decoding), and bytes of model input per request
# (what the request becomes on its way to the model).
MAX_IMAGE_PIXELS = 2**25
MAX_REQUEST_PIXELS = 2**26
MAX_REQUEST_INPUT_BYTES = 64 * 2**20


_MAX_DEFAULT_BODY_BYTES = 256 * 2**20


def default_max_body_bytes(input_shape: Sequence[int] | None, images: bool = False) -> int:
    """The default body limit: ``4×`` one sample of ``input_shape`` as JSON, at least 64 KiB.

    Without a known shape: 10 MiB; at most 256 MiB whatever the shape (pass ``max_body_bytes=``
    for more). A server that takes images (its checkpoint records an eval transform) allows at
    least 16 MiB, room for a photo or two.

    Example:
        >>> lk.serve.default_max_body_bytes((1, 28, 28))
        81600
    """
    if input_shape is None:
        limit = _UNKNOWN_SHAPE_BODY_BYTES
    else:
        one_sample = _JSON_BYTES_PER_NUMBER * math.prod(input_shape) + 16  # + '{"inputs": }'
        # Capped: a shape read from a checkpoint must not let one request take gigabytes.
        limit = min(_MAX_DEFAULT_BODY_BYTES, max(_MIN_BODY_BYTES, _BODY_MULTIPLE * one_sample))
    return max(limit, _MIN_IMAGE_BODY_BYTES) if images else limit


def check_request(
    body: bytes, input_shape: Sequence[int] | None, content_type: str = "application/json"
) -> tuple[int, str] | None:
    """``None`` for a good ``/predict`` body of numbers, else ``(status code, message)``.

    Example:
        >>> lk.serve.check_request(b'{"inputs": [1, 2]}', (2,)) is None
        True
        >>> lk.serve.check_request(b'{"inputs": [1, 2, 3]}', (2,))
        (422, '"inputs" has shape (3,), expected (2,)')
    """
    result = RequestInputs(input_shape).parse(body, content_type)
    return result if isinstance(result, tuple) and isinstance(result[0], int) else None


class Samples:
    """The checked samples of one request: ``x`` (``N×...`` float32) and whether the client sent
    several (``"instances"``, ``"images"``, a multipart upload: the reply is a list)."""

    def __init__(self, x: np.ndarray, many: bool) -> None:
        self.x = x
        self.many = many

    def to_body(self) -> bytes:
        """The compact JSON body the guard hands on to the inference worker."""
        data = base64.b64encode(self.x.astype("<f4").tobytes()).decode("ascii")
        return json.dumps(
            {CHECKED: {"shape": list(self.x.shape), "data": data, "many": self.many}}
        ).encode()


class RequestInputs:
    """Turns ``/predict`` bodies into :class:`Samples` (or a ``(status, message)`` problem).

    Args:
        input_shape: The shape of one sample, when known.
        transform: The eval transform for images (built), or None.
        transform_spec: The recorded eval transform's spec, built on the first image (under
            ``trust``) when ``transform`` is None.
        image_mode: The PIL mode images are decoded in.
        trust: Module prefixes the recorded transform may name, beyond lightkit's allow-list.
        max_samples: Most samples one request may hold.
    """

    def __init__(
        self,
        input_shape: Sequence[int] | None,
        transform: Callable[[Any], Any] | None = None,
        transform_spec: Mapping[str, Any] | None = None,
        image_mode: str = "RGB",
        trust: Sequence[str] | None = None,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> None:
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._transform = transform
        self.transform_spec = dict(transform_spec) if transform_spec is not None else None
        self.image_mode = image_mode
        self.trust = tuple(trust or ())
        self.max_samples = max_samples

    @property
    def takes_images(self) -> bool:
        return self._transform is not None or self.transform_spec is not None

    def transform(self) -> Callable[[Any], Any]:
        if self._transform is None:
            with trusting(self.trust):
                self._transform = from_spec(
                    self.transform_spec or {},
                    "lightkit serve: the recorded eval transform",
                    "transform",
                )
        return self._transform

    # --- bodies ----------------------------------------------------------------------------------

    def parse(self, body: bytes, content_type: str = "application/json") -> Samples | Problem:
        """A JSON body, or an image file as the whole body (``image/*``, ``application/octet-stream``)."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media.startswith("image/") or media == "application/octet-stream":
            return self.images([("the request body", body)], many=False)
        try:
            payload = loads(body)
        except RecursionError:
            return 422, "the request body is nested too deeply"
        except (ValueError, UnicodeDecodeError) as err:
            return (
                400,
                f'the request body is not valid JSON ({err}); send {{"inputs": <one sample as '
                "nested lists>}, an image file, or see the server's documentation",
            )
        return self.payload(payload)

    def payload(self, payload: Any) -> Samples | Problem:
        """A parsed JSON body: exactly one of ``inputs``, ``instances``, ``image``, ``images``."""
        keys = [k for k in _KEYS if isinstance(payload, dict) and k in payload]
        if len(keys) != 1:
            got = (
                f"an object with {' and '.join(repr(k) for k in keys)}"
                if keys
                else "an object without it"
                if isinstance(payload, dict)
                else f"a JSON {type(payload).__name__}"
            )
            return (
                422,
                f'expected a JSON object with an "inputs" key holding {self._expected()} as '
                + (
                    'nested lists of numbers (or one of "instances": a list of samples, "image": a '
                    f'base64 image file, "images": a list of them), got {got}'
                ),
            )
        key = keys[0]
        value = payload[key]
        if key == "inputs":
            array = self._sample(value, '"inputs"')
            return array if isinstance(array, tuple) else Samples(array[None], many=False)
        if key == "image":
            if not isinstance(value, str):
                return 422, f'"image" must be a base64 string of an image file, got {_kind(value)}'
            return self._base64_images([value], '"image"', many=False)
        if not isinstance(value, list) or not value:
            what = "samples" if key == "instances" else "base64 image files"
            return 422, f'"{key}" must be a non-empty list of {what}, got {_kind(value)}'
        if len(value) > self.max_samples:
            return 413, (
                f'"{key}" holds {len(value)} samples, more than the server\'s limit of '
                f"{self.max_samples} per request (max_samples)"
            )
        if key == "images":
            return self._base64_images(value, '"images"', many=True)
        arrays = []
        for i, item in enumerate(value):
            array = self._sample(item, f'"instances"[{i}]')
            if isinstance(array, tuple):
                return array
            if arrays and array.shape != arrays[0].shape:
                return 422, (
                    f'"instances"[{i}] has shape {array.shape}, but "instances"[0] has '
                    f"{arrays[0].shape}; every sample of a request must have the same shape"
                )
            arrays.append(array)
        return Samples(np.stack(arrays), many=True)

    def images(self, files: Sequence[tuple[str, bytes]], many: bool = True) -> Samples | Problem:
        """Image files (``(name, bytes)``) through the recorded eval transform."""
        if not self.takes_images:
            return 422, (
                "this model's checkpoint records no eval transform, so the server cannot turn an "
                'image into the model\'s input; send numbers as {"inputs": <one sample as nested '
                "lists>} (models trained through ImageFolderDataModule, or a DataModule whose "
                "eval_transform is a pipeline of deterministic torchvision steps, record one)"
            )
        if not files:
            return 422, "the request holds no image file"
        if len(files) > self.max_samples:
            return 413, (
                f"the request holds {len(files)} images, more than the server's limit of "
                f"{self.max_samples} per request (max_samples)"
            )
        arrays: list[np.ndarray] = []
        budget = {"pixels": MAX_REQUEST_PIXELS, "bytes": MAX_REQUEST_INPUT_BYTES}
        for name, data in files:
            array = self._image(data, name, budget)
            if isinstance(array, tuple):
                return array
            arrays.append(array)
        return Samples(np.stack(arrays), many=many)

    # --- one sample --------------------------------------------------------------------------------

    def _expected(self) -> str:
        shape = self.input_shape
        return f"a sample of shape {shape}" if shape is not None else "one sample"

    def _sample(self, value: Any, where: str) -> np.ndarray | Problem:
        expected = self._expected()
        if (
            isinstance(value, bool)
            or not isinstance(value, (list, int, float))
            or _has_non_numbers(value)
        ):
            return 422, f"{where} must be {expected} as nested lists of numbers, got {_kind(value)}"
        try:
            array = _to_array(value)
        except OverflowError:
            return 422, f"{where} holds numbers too large for float32"
        except (ValueError, TypeError):
            return (
                422,
                f"{where} must be {expected} as nested lists of numbers; got ragged lists (rows of "
                "different lengths)",
            )
        return self._checked(array, where)

    def _checked(self, array: np.ndarray, where: str) -> np.ndarray | Problem:
        if self.input_shape is not None and array.shape != self.input_shape:
            return 422, f"{where} has shape {array.shape}, expected {self.input_shape}"
        if not np.isfinite(array).all():
            return 422, f"{where} contains NaN or Infinity"
        return array

    def _base64_images(self, values: list[Any], key: str, many: bool) -> Samples | Problem:
        files = []
        for i, value in enumerate(values):
            where = f"{key}[{i}]" if many else key
            if not isinstance(value, str):
                return 422, f"{where} must be a base64 string of an image file, got {_kind(value)}"
            if value.startswith("data:") and ";base64," in value[:200]:
                value = value.split(";base64,", 1)[1]
            value = "".join(value.split())  # line breaks (base64's default output wraps lines)
            value += "=" * (-len(value) % 4)  # padding that encoders may leave out
            try:
                files.append((where, base64.b64decode(value, validate=True)))
            except (binascii.Error, ValueError):
                return 422, f"{where} is not valid base64"
        return self.images(files, many=many)

    def _image(self, data: bytes, name: str, budget: dict[str, int]) -> np.ndarray | Problem:
        where = name if name.startswith(("the ", '"')) else f"image {short_repr(name, 60)}"
        try:
            image = decode_image(data, self.image_mode, name, max_pixels=MAX_IMAGE_PIXELS)
        except BadImageError as err:
            return 422, str(err)
        channels, height, width = image_size(image)
        budget["pixels"] -= height * width
        if budget["pixels"] < 0:
            return 413, (
                f"the request's images hold more than {MAX_REQUEST_PIXELS:,} pixels in all, the "
                "server's limit per request; send fewer or smaller images per request"
            )
        if self.transform_spec is not None:  # untrusted: its sizes are checked before it runs
            try:
                check_image_size(self.transform_spec, channels, height, width, where)
            except ValueError as err:
                return 422, str(err)
        try:
            tensor = self.transform()(image)
        except Exception as err:
            return 422, f"{where}: the eval transform failed on it ({type(err).__name__}: {err})"
        if not isinstance(tensor, torch.Tensor):
            return 422, f"{where}: the eval transform gave {type(tensor).__name__}, not a tensor"
        budget["bytes"] -= tensor.numel() * 4
        if budget["bytes"] < 0:
            return 413, (
                f"the request's images make more than {MAX_REQUEST_INPUT_BYTES // 2**20} MiB of "
                "model input, the server's limit per request; send fewer images per request"
            )
        array = tensor.detach().float().contiguous().numpy()
        if self.input_shape is not None and array.shape != self.input_shape:
            return 422, (
                f"{where}: the eval transform turned it into shape {array.shape}, but the model "
                f"expects {self.input_shape}"
            )
        return self._checked(array, where)


_KEYS = ("inputs", "instances", "image", "images")


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


def loads(body: bytes) -> Any:
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


__all__ = [
    "CHECKED",
    "DEFAULT_MAX_SAMPLES",
    "RequestInputs",
    "Samples",
    "check_request",
    "default_max_body_bytes",
    "loads",
]
