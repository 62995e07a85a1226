"""lightkit serve with images: multipart uploads, base64 JSON, raw image bodies, several samples."""

from __future__ import annotations

import base64
import io
import json
import sys
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

import lightkit as lk
from helpers import no_log_trainer
from lightkit.serve._requests import RequestInputs, Samples
from test_serve import _free_port, _post, _start, _stop

pytest.importorskip("litserve", reason="needs the serve extra")
pytest.importorskip("python_multipart", reason="needs the serve extra")

MAX_SAMPLES = 3


def _png(value: int, size=(18, 14)) -> bytes:
    rng = np.random.default_rng(value)
    array = (rng.integers(0, 40, (size[1], size[0], 3)) + value).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of ``(field, filename or None, content)`` parts."""
    boundary = "lightkit-test-boundary"
    body = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"' + (
            f'; filename="{filename}"' if filename else ""
        )
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    for label, name in enumerate(["cat", "dog"]):
        (root / name).mkdir()
        for i in range(6):
            (root / name / f"{i}.png").write_bytes(_png(30 + 150 * label + i))
    dm = lk.data.ImageFolderDataModule(
        root, image_size=12, val_split=0.34, batch_size=4, num_workers=0
    )
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.ConvNet(3, 2, widths=(4,)), 2)
    trainer = no_log_trainer(tmp_path_factory.mktemp("runs"), max_epochs=1)
    trainer.fit(module, datamodule=dm)
    return trainer.checkpoint_callback.best_model_path


@pytest.fixture(scope="module")
def image_server(image_checkpoint, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve_images") / "server.log"
    command = [
        sys.executable, "-m", "lightkit.cli", "serve", image_checkpoint, "--port", str(port),
        "--max-batch-size", "4", "--max-samples", str(MAX_SAMPLES), "--accelerator", "cpu",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process = _start(command, log, url)
    try:
        yield url + "/predict", lk.Predictor.from_checkpoint(image_checkpoint, device="cpu")
    finally:
        _stop(process)


def _expected(predictor, images: list[bytes], tmp_path) -> tuple[torch.Tensor, list[str]]:
    files = []
    for i, data in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(data)
        files.append(tmp_path / f"{i}.png")
    return predictor.predict(files), predictor.predict_labels(files)


@pytest.mark.slow  # a real server: about 20 s to start
def test_multipart_uploads_are_predicted_as_the_predictor_does(image_server, tmp_path):
    url, predictor = image_server
    images = [_png(35), _png(190)]
    body, content_type = _multipart(
        [("image", "cat.png", images[0]), ("image", "dog.png", images[1])]
    )
    status, answer = _post(url, body, content_type)
    assert status == 200, answer
    probs, labels = _expected(predictor, images, tmp_path)
    assert [p["label"] for p in answer["predictions"]] == labels
    assert set(labels) <= {"cat", "dog"}
    got = torch.tensor([p["outputs"] for p in answer["predictions"]])
    torch.testing.assert_close(got, probs, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_base64_json_and_raw_image_bodies(image_server, tmp_path):
    url, predictor = image_server
    images = [_png(40), _png(200), _png(120)]
    probs, labels = _expected(predictor, images, tmp_path)
    b64 = [base64.b64encode(d).decode() for d in images]

    status, one = _post(url, json.dumps({"image": b64[0]}).encode())
    assert status == 200 and one["label"] == labels[0]
    torch.testing.assert_close(torch.tensor(one["outputs"]), probs[0], atol=1e-5, rtol=1e-4)

    urls = [b64[0], "data:image/png;base64," + b64[1], b64[2]]  # a browser's data URL too
    status, many = _post(url, json.dumps({"images": urls}).encode())
    assert status == 200 and [p["label"] for p in many["predictions"]] == labels

    status, raw = _post(url, images[1], "image/png")
    assert status == 200 and raw["label"] == labels[1]


@pytest.mark.slow
def test_several_numeric_samples_in_one_request(image_server):
    url, predictor = image_server
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    status, answer = _post(url, json.dumps({"instances": x.tolist()}).encode())
    assert status == 200, answer
    got = torch.tensor([p["outputs"] for p in answer["predictions"]])
    torch.testing.assert_close(got, predictor.predict(x), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "status", "message"),
    [
        (lambda: _multipart([("image", "notes.png", b"not an image")]), 422, "'notes.png'"),
        (
            lambda: _multipart([("image", f"{i}.png", _png(i)) for i in range(MAX_SAMPLES + 1)]),
            413,
            f"Maximum number of files is {MAX_SAMPLES}",
        ),
        (lambda: _multipart([("caption", None, b"a cat")]), 422, "field 'caption' is not a file"),
        (lambda: (b"--x\r\ngarbage", "multipart/form-data; boundary=y"), 400, "multipart"),
        (lambda: (b"GIF89a-truncated", "image/gif"), 422, "the request body"),
        (lambda: (b'{"image": "%%%"}', "application/json"), 422, '"image" is not valid base64'),
        (lambda: (b'{"image": 3}', "application/json"), 422, '"image" must be a base64 string'),
        (
            lambda: (
                json.dumps({"images": ["aGk="] * (MAX_SAMPLES + 1)}).encode(),
                "application/json",
            ),
            413,
            "more than the server's limit of 3",
        ),
        (lambda: (b'{"images": []}', "application/json"), 422, "non-empty list"),
        (
            lambda: (b'{"inputs": [1], "image": "aGk="}', "application/json"),
            422,
            "with 'inputs' and 'image'",
        ),
        (
            lambda: (
                json.dumps({"instances": [[[[0.0] * 12] * 12] * 3, [[0.0] * 12] * 12]}).encode(),
                "application/json",
            ),
            422,
            'instances"[1] has shape (12, 12)',
        ),
    ],
)
def test_bad_image_requests_get_4xx_naming_what_is_wrong(image_server, make, status, message):
    url, _ = image_server
    body, content_type = make()
    got, answer = _post(url, body, content_type)
    assert (got, message in answer.get("detail", "")) == (status, True), answer


@pytest.mark.slow
def test_a_good_request_still_works_after_bad_ones(image_server):
    url, _ = image_server
    _post(url, b"junk", "image/png")
    body, content_type = _multipart([("image", "ok.png", _png(60))])
    status, answer = _post(url, body, content_type)
    assert status == 200 and len(answer["predictions"]) == 1
    with urllib.request.urlopen(url.replace("/predict", "/health"), timeout=10) as response:
        assert response.status == 200


# --- RequestInputs alone (no server) ------------------------------------------------------------


def test_images_to_a_model_without_a_recorded_transform_are_refused():
    result = RequestInputs((3, 12, 12)).images([("cat.png", _png(1))])
    assert result[0] == 422 and "records no eval transform" in result[1]


def test_an_image_the_transform_cannot_fit_to_the_input_shape_is_422():
    inputs = RequestInputs((3, 16, 16), transform=lk.data.transforms.eval_preset(12))
    status, message = inputs.images([("cat.png", _png(1))])
    assert status == 422
    assert "image 'cat.png': the eval transform turned it into shape (3, 12, 12)" in message


def test_a_decompression_bomb_is_refused_before_it_is_decoded(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    inputs = RequestInputs((3, 12, 12), transform=lk.data.transforms.eval_preset(12))
    status, message = inputs.images([("big.png", _png(1))])
    assert status == 422 and "big.png" in message and "decompression bomb" in message


def test_request_inputs_turn_every_body_kind_into_the_same_samples():
    transform = lk.data.transforms.eval_preset(12)
    inputs = RequestInputs((3, 12, 12), transform=transform, max_samples=4)
    data = _png(7)
    expected = transform(Image.open(io.BytesIO(data)).convert("RGB")).numpy()
    b64 = base64.b64encode(data).decode()
    for body, content_type, many in [
        (json.dumps({"image": b64}).encode(), "application/json", False),
        (json.dumps({"images": [b64, b64]}).encode(), "application/json", True),
        (data, "image/png", False),
        (data, "application/octet-stream", False),
    ]:
        samples = inputs.parse(body, content_type)
        assert isinstance(samples, Samples) and samples.many is many
        for row in samples.x:
            np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-6)


def test_the_unguarded_api_path_takes_images_too(image_checkpoint):
    from lightkit.serve import PredictorAPI

    api = PredictorAPI(checkpoint=image_checkpoint, max_batch_size=4)
    api.setup("cpu")
    b64 = base64.b64encode(_png(9)).decode()
    decoded = [api.decode_request({"images": [b64, b64]}), api.decode_request({"image": "%"})]
    outputs = api.unbatch(api.predict(api.batch(decoded)))
    answers = [json.loads(api.encode_response(o).body) for o in outputs]
    assert len(answers[0]["predictions"]) == 2
    assert answers[0]["predictions"][0] == answers[0]["predictions"][1]
    assert "not valid base64" in answers[1]["detail"]


@pytest.mark.slow
def test_the_documented_curl_commands_for_images(image_server, tmp_path):
    """The image curl lines of docs/export-serve.md, run as written against a real server."""
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("curl") is None or shutil.which("base64") is None:
        pytest.skip("needs curl and base64")
    page = (Path(__file__).parents[1] / "docs" / "export-serve.md").read_text()
    block = re.search(r"```bash\n(curl -X POST localhost:8000/predict -F .*?)```", page, re.S)
    assert block, "the image curl block of docs/export-serve.md moved"
    lines = [line for line in block.group(1).splitlines() if line.startswith("curl")]
    assert len(lines) == 3
    url, predictor = image_server
    port = url.split(":")[2].split("/")[0]
    Image.open(io.BytesIO(_png(45))).save(tmp_path / "cat.jpg", quality=95)
    (tmp_path / "dog.png").write_bytes(_png(185))
    answers = []
    for line in lines:
        command = line.split("   #")[0].replace("localhost:8000", f"127.0.0.1:{port}")
        done = subprocess.run(
            ["bash", "-c", command + " --fail-with-body -s"], cwd=tmp_path, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        answers.append(json.loads(done.stdout))
    labels = predictor.predict_labels([tmp_path / "cat.jpg", tmp_path / "dog.png"])
    assert [p["label"] for p in answers[0]["predictions"]] == labels
    assert answers[1]["label"] == labels[0] and answers[2]["label"] == labels[0]


# --- bounds on the work one request or one crafted checkpoint can cause (a hostile review) ------


def _strip_png(width: int, height: int = 1) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return out.getvalue()


def _resize_pipeline(size, *extra):
    steps = [
        {
            "op": "Resize",
            "size": size,
            "interpolation": "bilinear",
            "max_size": None,
            "antialias": True,
        },
        *extra,
        {"op": "ToImage"},
        {"op": "ToDtype", "dtype": "float32", "scale": True},
    ]
    return {"class_path": "lightkit.data._recorded.eval_pipeline", "init_args": {"steps": steps}}


def test_a_thin_strip_is_refused_before_the_transform_blows_it_up():
    # 138 bytes of PNG; resizing its shorter side to 224 would make 3×224×4,480,000 numbers.
    spec = _resize_pipeline(224, {"op": "CenterCrop", "size": [224, 224]})
    inputs = RequestInputs((3, 224, 224), transform_spec=spec)
    status, message = inputs.images([("strip.png", _strip_png(20000))])
    assert status == 422 and "would make a 3×224×4480000 image" in message


def test_a_crafted_transform_is_refused_before_the_server_starts_and_before_predicting(
    image_checkpoint, tmp_path
):
    from helpers import tamper_checkpoint
    from lightkit.serve import make_server

    def edit(checkpoint):
        checkpoint["lightkit"]["inference"]["transform"] = _resize_pipeline([8192, 8192])

    bad = tamper_checkpoint(image_checkpoint, tmp_path / "bad.ckpt", edit)
    with pytest.raises(ValueError, match=r"would make a 3×8192×8192 image"):
        make_server(bad)
    (tmp_path / "a.png").write_bytes(_png(3))
    with pytest.raises(ValueError, match=r"would make a 3×8192×8192 image"):
        lk.Predictor.from_checkpoint(bad).predict([tmp_path / "a.png"])

    def inconsistent(checkpoint):  # within bounds, but never the recorded input shape
        checkpoint["lightkit"]["inference"]["transform"] = _resize_pipeline(
            [20, 20], {"op": "CenterCrop", "size": [16, 16]}
        )

    odd = tamper_checkpoint(image_checkpoint, tmp_path / "odd.ckpt", inconsistent)
    with pytest.raises(
        ValueError,
        match=r"turns every image into \(3, 16, 16\), but its recorded input shape is \(3, 12, 12\)",
    ):
        make_server(odd)


def test_only_common_image_formats_are_decoded():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    inputs = RequestInputs((3, 12, 12), transform=lk.data.transforms.eval_preset(12))
    status, message = inputs.images([("page.eps", eps)])
    assert status == 422 and "not an image in a format lightkit reads (PNG, JPEG" in message


def test_whatever_a_format_plugin_raises_is_a_bad_image(monkeypatch):
    from PIL import ImageFile

    def broken(self):
        raise NotImplementedError("unknown pixel format")

    data = _png(2)
    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    inputs = RequestInputs((3, 12, 12), transform=lk.data.transforms.eval_preset(12))
    status, message = inputs.images([("odd.png", data)])
    assert status == 422 and "NotImplementedError: unknown pixel format" in message


def test_rgba_images_decode_with_four_channels():
    from lightkit.data.datasets import decode_image

    image = decode_image(_png(5), "RGBA", "x.png")
    assert image.mode == "RGBA"
    out = io.BytesIO()
    Image.fromarray(np.full((4, 5), 30000, np.uint16)).save(out, "PNG")  # 16-bit
    deep = decode_image(out.getvalue(), "RGBA", "deep.png")
    assert tuple(deep.shape) == (4, 4, 5) and float(deep[3].min()) == 1.0


def test_request_bounds_on_pixels_and_model_input(monkeypatch):
    from lightkit.serve import _requests

    inputs = RequestInputs((3, 12, 12), transform=lk.data.transforms.eval_preset(12))
    monkeypatch.setattr(_requests, "MAX_IMAGE_PIXELS", 100)
    status, message = inputs.images([("big.png", _png(1))])  # 18×14 = 252 pixels
    assert status == 422 and "252 pixels (18×14), more than the limit of 100" in message
    monkeypatch.setattr(_requests, "MAX_IMAGE_PIXELS", 2**25)
    monkeypatch.setattr(_requests, "MAX_REQUEST_PIXELS", 400)
    status, message = inputs.images([("a.png", _png(1)), ("b.png", _png(2))])
    assert status == 413 and "pixels in all" in message
    monkeypatch.setattr(_requests, "MAX_REQUEST_PIXELS", 2**26)
    monkeypatch.setattr(_requests, "MAX_REQUEST_INPUT_BYTES", 3 * 12 * 12 * 4 + 1)
    status, message = inputs.images([("a.png", _png(1)), ("b.png", _png(2))])
    assert status == 413 and "MiB of model input" in message


def test_base64_with_line_breaks_or_without_padding_is_accepted():
    inputs = RequestInputs((3, 12, 12), transform=lk.data.transforms.eval_preset(12))
    wrapped = base64.encodebytes(_png(4)).decode()  # 76-character lines
    assert "\n" in wrapped
    unpadded = base64.b64encode(_png(6)).decode().rstrip("=")
    for value in (wrapped, unpadded):
        assert isinstance(inputs.payload({"image": value}), Samples)


@pytest.mark.parametrize(
    ("step", "match"),
    [
        ({"op": "ToDtype", "dtype": ["float32"], "scale": True}, "bad dtype"),
        (
            {
                "op": "Resize",
                "size": [8],
                "interpolation": {"a": 1},
                "max_size": None,
                "antialias": True,
            },
            "bad interpolation",
        ),
        ({"op": "Grayscale", "num_output_channels": 3.0}, "bad num_output_channels"),
        ({"op": "Pad", "padding": 1, "fill": 0, "padding_mode": ["edge"]}, "bad padding_mode"),
    ],
)
def test_unhashable_or_float_step_arguments_are_named(step, match):
    from lightkit.data._recorded import check_steps

    with pytest.raises(ValueError, match=match):
        check_steps({"steps": [step]}, "test")
