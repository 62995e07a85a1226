"""lightkit serve: a real server on a free loopback port, good, bad, slow and concurrent requests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import lightkit as lk
from lightkit.serve import check_request, default_max_body_bytes, make_server, serve
from lightkit.serve._requests import loads as _loads

pytest.importorskip("litserve", reason="needs the serve extra")

READ_TIMEOUT = 2.0  # of the server without a recorded input shape
LEARNING_MAX_BODY = 4_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _post_streaming(port: int, body: bytes) -> tuple[int, dict]:
    """POST on a keep-alive connection: the server may answer (413) before it has the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _start(command: list[str], log: Path, url: str) -> subprocess.Popen:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # LitServe starts worker processes: stop the whole group
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"the server did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serve")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=lk.data.TensorDataModule(x, y, batch_size=32))
    return trainer.checkpoint_callback.best_model_path


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """``lightkit serve`` on a checkpoint that records its input shape (8,)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve_cli") / "server.log"
    command = [
        sys.executable, "-m", "lightkit.cli", "serve", checkpoint, "--port", str(port),
        "--max-batch-size", "16", "--batch-timeout", "0.05", "--max-body-mb", "0.01",
        "--accelerator", "cpu", "--verbose",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process = _start(command, log, url)
    try:
        yield url, lk.Predictor.from_checkpoint(checkpoint, device="cpu"), log
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def learning_server(checkpoint, tmp_path_factory):
    """``serve()`` on the same model, from a checkpoint without a recorded input shape (as for a
    task that overrides ``shared_step``), with a 1-second read timeout."""
    folder = tmp_path_factory.mktemp("serve_learn")
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data["lightkit"]["input_shape"] = None
    stripped = folder / "no_shape.ckpt"
    torch.save(data, stripped)
    port = _free_port()
    code = (
        "from lightkit.serve import serve; "
        f"serve({str(stripped)!r}, port={port}, max_batch_size=16, batch_timeout=0.05, "
        f"max_body_bytes={LEARNING_MAX_BODY}, accelerator='cpu', verbose=True, "
        f"read_timeout={READ_TIMEOUT})"
    )
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    process = _start([sys.executable, "-c", code], log, url)
    try:
        yield url, port, lk.Predictor.from_checkpoint(checkpoint, device="cpu"), log
    finally:
        _stop(process)


def test_health_and_a_good_request(server):
    url, predictor, _ = server
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        assert response.status == 200
    sample = [0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.25]
    status, body = _post(url + "/predict", json.dumps({"inputs": sample}).encode())
    assert status == 200
    expected = predictor.predict(torch.tensor([sample]))[0]
    torch.testing.assert_close(torch.tensor(body["outputs"]), expected)
    # curl -d declares form data: the body is JSON all the same.
    status, _ = _post(
        url + "/predict",
        json.dumps({"inputs": sample}).encode(),
        "application/x-www-form-urlencoded",
    )
    assert status == 200


BAD = [
    (b'{"inputs": [1, 2', 400, "not valid JSON"),
    (b'{"input": [1, 2, 3, 4, 5, 6, 7, 8]}', 422, 'expected a JSON object with an "inputs" key'),
    (b"[1, 2, 3]", 422, "got a JSON list"),
    (b'{"inputs": "eight numbers"}', 422, "nested lists of numbers, got a string"),
    (b'{"inputs": [1, 2, 3, "4", 5, 6, 7, 8]}', 422, "got a list containing a string"),
    (b'{"inputs": [1, 2, 3]}', 422, r"has shape (3,), expected (8,)"),
    (b'{"inputs": [[1, 2], [3]]}', 422, "ragged lists"),
    (b'{"inputs": [NaN, 2, 3, 4, 5, 6, 7, 8]}', 422, "NaN or Infinity"),
    (b'{"inputs": [' + b"1.0, " * 4000 + b"1.0]}", 413, "larger than the limit of 10485 bytes"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD, ids=[b[2][:24] for b in BAD])
def test_bad_requests_get_4xx_with_what_was_expected(server, body, status, message):
    url, _, _ = server
    got, detail = _post(url + "/predict", body)
    assert got == status
    assert message in detail["detail"]


def test_concurrent_requests_are_batched_and_bad_ones_fail_alone(server):
    url, predictor, log = server
    g = torch.Generator().manual_seed(1)
    samples = torch.randn(48, 8, generator=g)
    bodies = [json.dumps({"inputs": s.tolist()}).encode() for s in samples]
    bodies += [b'{"inputs": [1, 2, 3]}', b"not json"] * 4  # mixed in with the good ones
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda b: _post(url + "/predict", b), bodies))
    good, bad = results[:48], results[48:]
    assert [status for status, _ in good] == [200] * 48
    expected = predictor.predict(samples)
    torch.testing.assert_close(torch.tensor([body["outputs"] for _, body in good]), expected)
    assert sorted(status for status, _ in bad) == [400] * 4 + [422] * 4
    sizes = [
        int(line.rsplit(" ", 1)[1]) for line in log.read_text().splitlines() if "batch of" in line
    ]
    assert sum(sizes) >= 48 and max(sizes) > 1  # requests really ran together


@pytest.mark.slow  # starts a second server
def test_without_a_recorded_shape_good_requests_never_fail_for_bad_ones(learning_server):
    """Good, wrong-shape and oversized requests at once: each gets its own answer, no 500s."""
    url, port, predictor, log = learning_server
    g = torch.Generator().manual_seed(2)
    samples = torch.randn(48, 8, generator=g)
    jobs = [("good", i, json.dumps({"inputs": s.tolist()}).encode()) for i, s in enumerate(samples)]
    wrong = [[1.0, 2.0, 3.0], [0.5] * 9, [[1.0] * 4, [2.0] * 4], [[0.1] * 8, [0.2] * 8]]
    jobs += [("wrong", i, json.dumps({"inputs": w}).encode()) for i, w in enumerate(wrong * 3)]
    oversized = b'{"inputs": [' + b"0.25, " * (LEARNING_MAX_BODY // 6) + b"0.25]}"
    jobs += [("oversized", i, oversized) for i in range(3)]
    random.Random(0).shuffle(jobs)

    def send(job):
        kind, _, body = job
        return _post_streaming(port, body) if kind == "oversized" else _post(url + "/predict", body)

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(send, jobs))
    by_kind: dict[str, list] = {"good": [], "wrong": [], "oversized": []}
    for (kind, index, _), (status, body) in zip(jobs, results, strict=True):
        by_kind[kind].append((index, status, body))
    good = sorted(by_kind["good"], key=lambda r: r[0])
    assert [status for _, status, _ in good] == [200] * 48, [b for _, s, b in good if s != 200]
    torch.testing.assert_close(
        torch.tensor([body["outputs"] for _, _, body in good]), predictor.predict(samples)
    )
    assert all(status == 422 for _, status, _ in by_kind["wrong"]), by_kind["wrong"]
    assert all(status == 413 for _, status, _ in by_kind["oversized"]), by_kind["oversized"]
    assert "input shape (8,) set by the first request" in log.read_text()
    # Once learned, the shape is enforced, even for a shape the model would accept.
    status, body = _post(url + "/predict", json.dumps({"inputs": [[0.5] * 8] * 2}).encode())
    assert (status, body["detail"]) == (422, '"inputs" has shape (2, 8), expected (8,)')


def _read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    data = b""
    sock.settimeout(0.2)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open for {limit_s} s; got {data!r}")


@pytest.mark.slow  # starts a second server
@pytest.mark.exclusive  # times the read timeout's window
def test_slow_clients_are_answered_408_and_disconnected(learning_server):
    _, port, _, _ = learning_server
    head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n"

    def silent(sock):  # connects and sends nothing
        pass

    def byte_by_byte_headers(sock):
        for byte in head[:-4]:  # never finishes the headers
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    def unfinished_body(sock):
        sock.sendall(head + b'{"inputs": [1, 2')

    def run(behaviour):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            start = time.monotonic()
            feeder = threading.Thread(target=behaviour, args=(sock,))
            feeder.start()
            data = _read_until_closed(sock, READ_TIMEOUT + 5)
            elapsed = time.monotonic() - start
            feeder.join(timeout=10)
            return data, elapsed

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, [silent, byte_by_byte_headers, unfinished_body]))
    for data, elapsed in results:
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert b"read timeout of 2 seconds" in data
        assert READ_TIMEOUT * 0.8 < elapsed < READ_TIMEOUT + 3
    # Idle time on a keep-alive connection between requests is not read time.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for pause in (READ_TIMEOUT + 0.5, 0):
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            time.sleep(pause)
    finally:
        connection.close()


@pytest.mark.slow  # starts a second server
def test_oversized_headers_get_431(learning_server):
    _, port, _, _ = learning_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before it has all
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        data = _read_until_closed(sock, READ_TIMEOUT + 5)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]


@pytest.mark.slow
@pytest.mark.exclusive  # times /health: the other worker would hold a core
def test_health_answers_while_large_bodies_are_parsed(learning_server):
    """Eight bodies of 3.9 MB (one flat list each: the worst case for a parser) sent at once.

    Parsed on the event loop, they held /health for 2.6 s (median 0.7 s) on a 2-core machine;
    parsed in threads a piece at a time, for at most a few tenths of a second.
    """
    url, _, _, _ = learning_server
    large = b'{"inputs": [' + b"0.123456789, " * (3_900_000 // 13) + b"0.5]}"
    assert len(large) < LEARNING_MAX_BODY
    results: list[tuple[int, dict]] = []

    def send() -> None:
        results.append(_post(url + "/predict", large))

    senders = [threading.Thread(target=send) for _ in range(8)]
    for thread in senders:
        thread.start()
    latencies = []
    while any(t.is_alive() for t in senders) and len(latencies) < 2000:
        start = time.perf_counter()
        with urllib.request.urlopen(url + "/health", timeout=30) as response:
            assert response.status == 200
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    for thread in senders:
        thread.join(timeout=120)
    assert [status for status, _ in results] == [422] * 8  # the model takes 8 numbers
    assert len(latencies) >= 3
    slowest = sorted(latencies)[-5:]
    assert max(latencies) < 1.5, f"/health took up to {max(latencies):.2f} s: {slowest}"


def test_default_body_limit_follows_the_input_size():
    assert default_max_body_bytes((1, 28, 28)) == 4 * (26 * 784 + 16)
    assert default_max_body_bytes((8,)) == 64 * 2**10  # the floor
    assert default_max_body_bytes(None) == 10 * 2**20
    assert default_max_body_bytes((3, 224, 224)) > 15_000_000  # 4 × 3.9 MB
    # One sample as clients write it (long float reprs, even indented) fits under the limit.
    x = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 1e-20
    for indent in (None, 2):
        body = json.dumps({"inputs": x.tolist()}, indent=indent).encode()
        assert len(body) < default_max_body_bytes((3, 32, 32))
        assert check_request(body, (3, 32, 32)) is None


def test_check_request_without_a_server():
    assert check_request(b'{"inputs": [[1, 2], [3, 4]]}', (2, 2)) is None
    assert check_request(b'{"inputs": [[1, 2], [3, 4]]}', None) is None
    assert check_request(b'{"inputs": true}', (1,))[0] == 422
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert check_request(deep, (1,))[0] == 422  # not a RecursionError (500)
    assert check_request(b'{"inputs": [' + b"9" * 400 + b"]}", (1,))[0] == 422
    assert check_request(b'{"inputs": [1, 2]}', (2, 1)) == (
        422,
        '"inputs" has shape (2,), expected (2, 1)',
    )
    assert check_request(b'{"inputs": [1, true]}', (2,)) == (
        422,
        '"inputs" must be a sample of shape (2,) as nested lists of numbers, got a list '
        "containing a boolean",
    )


LONG = "[" + ", ".join(str(v) for v in np.linspace(-3, 3, 40_000)) + "]"  # parsed in pieces


@pytest.mark.parametrize(
    "text",
    [
        '{"inputs": [[1, 2], [3, 4]], "id": "x]"}',
        ' [ {"a": [1]}, [2, [3]] ] ',
        '{"inputs": [NaN, -Infinity, 1e-30]}',
        LONG,
        '{"inputs": ' + LONG + ', "more": [' + LONG + "]}",
        LONG[:-1] + ",]",  # trailing comma
        LONG[:-1] + ",, 1]",  # empty element
        LONG[:-1] + " 2]",  # missing comma
        LONG[:-1],  # unterminated
        "[1, 2] x",  # extra data
        "",
    ],
)
def test_parser_agrees_with_json_loads(text):
    """The GIL-friendly parser accepts and rejects exactly what ``json.loads`` does."""
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as err:
        with pytest.raises(json.JSONDecodeError) as caught:
            _loads(text.encode())
        assert (caught.value.msg, caught.value.pos) == (err.msg, err.pos)
    else:
        assert _loads(text.encode()) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"port": 80}, ValueError, "port must be an integer in [1024, 65535], got 80"),
        ({"host": "localhost"}, ValueError, "host must be one of"),
        ({"read_timeout": 0}, ValueError, "read_timeout must be a number"),
        ({"read_timeout": "5"}, TypeError, "read_timeout must be a number"),
        ({"max_batch_size": "4"}, TypeError, "max_batch_size must be an integer >= 1, got '4'"),
        ({"batch_timeout": float("nan")}, ValueError, "batch_timeout must be a finite number"),
        ({"max_body_bytes": 0}, ValueError, "max_body_bytes must be an integer >= 1, got 0"),
        ({"verbose": "no"}, TypeError, "verbose must be True or False, got 'no'"),
        ({"accelerator": "tpu"}, ValueError, "accelerator must be one of 'auto', 'cpu', 'cuda'"),
        ({"input_shape": 8}, ValueError, "input_shape must be the shape of one sample"),
        ({"input_shape": (8, 0)}, ValueError, "got (8, 0)"),
        ({"trust": "mypkg"}, TypeError, "trust must be a list of module prefixes"),
    ],
)
def test_serve_arguments_are_checked_before_anything_starts(tmp_path, kwargs, error, message):
    with pytest.raises(error) as caught:
        serve(tmp_path / "missing.ckpt", **kwargs)
    assert message in str(caught.value)


def test_make_server_names_a_checkpoint_without_a_task(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not written by a lightkit task module"):
        make_server(path)


def _api(checkpoint, max_batch_size, **kwargs):
    from lightkit.serve import PredictorAPI

    api = PredictorAPI(checkpoint=checkpoint, max_batch_size=max_batch_size, **kwargs)
    api.setup("cpu")
    return api


def _answers(api, requests):
    """Run requests through the API as LitServe does; (status, JSON body) per request."""
    decoded = [api.decode_request(r) for r in requests]
    if api.batched:
        outputs = api.unbatch(api.predict(api.batch(decoded)))
    else:
        outputs = [api.predict(d) for d in decoded]
    responses = [api.encode_response(o) for o in outputs]
    return [(r.status_code, json.loads(r.body)) for r in responses]


def test_server_api_with_and_without_batching(checkpoint):
    """With max_batch_size=1 LitServe skips batch()/unbatch(): predict gets a single sample."""
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    expected = lk.Predictor.from_checkpoint(checkpoint, device="cpu").predict(x)
    for max_batch_size in (1, 4):
        answers = _answers(_api(checkpoint, max_batch_size), [{"inputs": r.tolist()} for r in x])
        assert [status for status, _ in answers] == [200] * 4
        torch.testing.assert_close(torch.tensor([b["outputs"] for _, b in answers]), expected)


def test_a_calibrated_checkpoint_serves_temperature_scaled_probabilities(checkpoint, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    saved["lightkit"]["temperature"] = 3.0  # as lk.calibrate(..., checkpoint=) records it
    calibrated = tmp_path / "calibrated.ckpt"
    torch.save(saved, calibrated)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    module = lk.ClassificationModule.load_from_checkpoint(checkpoint).eval()
    with torch.no_grad():
        expected = (module(x) / 3.0).softmax(-1)
    answers = _answers(_api(str(calibrated), 4), [{"inputs": r.tolist()} for r in x])
    got = torch.tensor([body["outputs"] for _, body in answers])
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, module(x).detach().softmax(-1), atol=1e-3)


def test_a_batch_that_fails_is_run_again_one_request_at_a_time(checkpoint):
    api = _api(checkpoint, 8)
    forward = api.predictor.predict_batch
    calls = []

    def fragile(batch, **kwargs):  # a model that fails on one particular input
        calls.append(len(batch))
        if (batch == 666).any():
            raise RuntimeError("cannot handle 666")
        return forward(batch, **kwargs)

    api.predictor.predict_batch = fragile
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    x[1, 0] = 666
    answers = _answers(api, [{"inputs": r.tolist()} for r in x])
    assert [status for status, _ in answers] == [200, 500, 200]
    assert "RuntimeError: cannot handle 666" in answers[1][1]["detail"]
    assert calls == [3, 1, 1, 1]
    torch.testing.assert_close(
        torch.tensor([answers[0][1]["outputs"], answers[2][1]["outputs"]]), forward(x[[0, 2]])
    )


def test_the_first_request_the_model_accepts_sets_the_input_shape(checkpoint, tmp_path):
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data["lightkit"]["input_shape"] = None
    stripped = tmp_path / "no_shape.ckpt"
    torch.save(data, stripped)
    api = _api(str(stripped), 8)
    assert api.input_shape is None
    requests = [[1.0, 2.0, 3.0], [0.5] * 8, [[0.5] * 8] * 2, [0.25] * 8, "x"]
    answers = _answers(api, [{"inputs": r} for r in requests])
    assert [status for status, _ in answers] == [422, 200, 422, 200, 422]
    assert 'cannot take "inputs" of shape (3,)' in answers[0][1]["detail"]
    assert answers[2][1]["detail"] == '"inputs" has shape (2, 8), expected (8,)'
    assert api.input_shape == (8,)


def test_a_checkpoint_that_cannot_be_rebuilt_fails_before_the_server_starts(checkpoint, tmp_path):
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data["lightkit"]["task"] = "collections.OrderedDict"
    path = tmp_path / "other_task.ckpt"
    torch.save(data, path)
    with pytest.raises((TypeError, ValueError, ImportError), match="OrderedDict"):
        make_server(path)  # here, not as "a worker failed to start"


def test_trust_is_passed_to_the_predictor(checkpoint, monkeypatch):
    import lightkit.serve as serve_module

    seen = []
    real = lk.Predictor.from_checkpoint

    def from_checkpoint(path, device="auto", **kwargs):
        seen.append(kwargs)
        return real(path, device=device)

    monkeypatch.setattr(serve_module.Predictor, "from_checkpoint", from_checkpoint)
    make_server(checkpoint, trust=["mypkg.nets"])
    _api(checkpoint, 4, trust=["mypkg.nets"])
    make_server(checkpoint)
    assert [k.get("trust") for k in seen] == [["mypkg.nets"], ["mypkg.nets"], None]
