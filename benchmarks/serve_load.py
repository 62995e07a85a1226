"""Load test of ``lightkit serve`` on loopback: dynamic batching (max batch 32) against none (1).

Trains a small ConvNet checkpoint for a few steps (1×28×28 inputs, 10 classes), then for each
``--max-batch-size`` starts the real server (``python -m lightkit.cli serve``), sends
``--requests`` requests from ``--clients`` concurrent clients, and reports throughput (requests/s),
p50 and p99 latency, and the number of failed requests (which must be 0), plus the ratio of each
throughput to the unbatched server's::

    python benchmarks/serve_load.py                                # 1000 requests, 32 clients
    python benchmarks/serve_load.py --requests 40 --clients 8      # tiny mode
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

import lightkit as lk


def make_checkpoint(folder: Path) -> str:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)
    module = lk.ClassificationModule(lk.models.ConvNet(1, 10), num_classes=10)
    trainer = lk.make_trainer(
        max_steps=4, default_root_dir=folder, logger=False, enable_progress_bar=False,
        enable_model_summary=False, seed=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=lk.data.TensorDataModule(x, y, batch_size=64))
    return trainer.checkpoint_callback.last_model_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str, port: int, max_batch_size: int, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "lightkit.cli", "serve", checkpoint, "--port", str(port),
        "--max-batch-size", str(max_batch_size), "--batch-timeout", "0.005", "--accelerator", "cpu",
    ]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
        if process.poll() is not None:
            break
    stop(process)
    raise RuntimeError(f"server did not start:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def load(port: int, requests: int, clients: int, body: bytes) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        nonlocal failures
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                ok = response.status == 200 and "outputs" in json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                failures += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    folder = Path(tempfile.mkdtemp(prefix="serve_load_"))
    checkpoint = make_checkpoint(folder)
    sample = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(1))
    body = json.dumps({"inputs": sample.tolist()}).encode()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s); ConvNet 1×28×28, {args.requests} "
          f"requests from {args.clients} concurrent clients on loopback")  # fmt: skip
    rows = []
    for max_batch in args.batch_sizes:
        port = free_port()
        process = start_server(checkpoint, port, max_batch, folder / f"server{max_batch}.log")
        try:
            load(port, min(50, args.requests), args.clients, body)  # warm-up
            seconds, latencies, failures = load(port, args.requests, args.clients, body)
        finally:
            stop(process)
        q = statistics.quantiles(latencies, n=100)
        rows.append((max_batch, args.requests / seconds, q[49] * 1e3, q[98] * 1e3, failures))
    base = rows[0][1]
    print(f"{'max batch':>9}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    for max_batch, rate, p50, p99, failures in rows:
        print(f"{max_batch:>9}{rate:>10.1f}{rate / base:>8.2f}{p50:>9.1f}{p99:>9.1f}{failures:>8}")


if __name__ == "__main__":
    main()
