"""lightkit serve: a real server on a free loopback port, good, bad and concurrent requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import lightkit as lk
from lightkit.serve import check_request

pytest.importorskip("litserve", reason="needs the serve extra")


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
    checkpoint = trainer.checkpoint_callback.best_model_path
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lightkit.cli",
                "serve",
                checkpoint,
                "--port",
                str(port),
                "--max-batch-size",
                "16",
                "--batch-timeout",
                "0.05",
                "--max-body-mb",
                "0.01",
                "--accelerator",
                "cpu",
                "--verbose",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # LitServe starts worker processes: stop the whole group
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        predictor = lk.Predictor.from_checkpoint(checkpoint, device="cpu")
        yield url, predictor, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


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


def test_unbatched_server_api_handles_one_sample_at_a_time(tmp_path):
    """With max_batch_size=1 LitServe skips batch()/unbatch(): predict gets a single sample."""
    from lightkit.serve import PredictorAPI

    x = torch.randn(64, 8)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3)
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=lk.data.TensorDataModule(x, (x[:, 0] > 0).long(), batch_size=16))
    checkpoint = trainer.checkpoint_callback.best_model_path
    for max_batch_size in (1, 4):
        api = PredictorAPI(checkpoint=checkpoint, max_batch_size=max_batch_size)
        api.setup("cpu")
        samples = [api.decode_request({"inputs": row.tolist()}) for row in x[:4]]
        if max_batch_size == 1:
            outputs = [api.encode_response(api.predict(s))["outputs"] for s in samples]
        else:
            outputs = [
                api.encode_response(o)["outputs"]
                for o in api.unbatch(api.predict(api.batch(samples)))
            ]
        expected = lk.Predictor.from_checkpoint(checkpoint, device="cpu").predict(x[:4])
        torch.testing.assert_close(torch.tensor(outputs), expected)
