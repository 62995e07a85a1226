"""What lightkit's safe checkpoint loading costs against a plain ``torch.load(weights_only=True)``.

``lk.checkpointing.load_checkpoint`` verifies every zip entry's CRC-32 before it unpickles (so a
bit-flipped file is reported as damaged instead of loading wrong weights), and
``TaskModule.load_from_checkpoint`` reads the file once and builds the module itself under the
trust policy. Both are timed against plain PyTorch on the same file, in the same process,
alternating, best of ``--rounds``.

::

    python benchmarks/checkpoint_load.py                # a ~200 MB checkpoint
    python benchmarks/checkpoint_load.py --mb 20 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import lightkit as lk
from lightkit.checkpointing import load_checkpoint


def _best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the weights in MB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    width = 1024
    layers = max(1, args.mb * 2**20 // (4 * width * width))
    net = lk.models.MLP(width, 10, hidden=[width] * layers)
    module = lk.ClassificationModule(net, num_classes=10)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.ckpt"
        torch.save(
            {
                "state_dict": module.state_dict(),
                "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": "2.6.0",
            },
            path,
        )
        size = path.stat().st_size / 2**20
        plain = _best(lambda: torch.load(path, map_location="cpu", weights_only=True), args.rounds)
        checked = _best(lambda: load_checkpoint(path), args.rounds)

        def plain_module() -> nn.Module:
            fresh = lk.ClassificationModule(lk.models.MLP(width, 10, hidden=[width] * layers), 10)
            fresh.load_state_dict(
                torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            )
            return fresh

        rebuild_plain = _best(plain_module, args.rounds)
        rebuild = _best(lambda: lk.ClassificationModule.load_from_checkpoint(path), args.rounds)
    print(f"checkpoint: {size:.0f} MB, best of {args.rounds}")
    print(f"  torch.load(weights_only=True)            {plain:7.3f} s   1.00x")
    print(f"  lk.checkpointing.load_checkpoint          {checked:7.3f} s   {checked / plain:.2f}x")
    print(f"  build + load_state_dict (plain PyTorch)  {rebuild_plain:7.3f} s   1.00x")
    print(
        f"  ClassificationModule.load_from_checkpoint {rebuild:7.3f} s   "
        f"{rebuild / rebuild_plain:.2f}x"
    )


if __name__ == "__main__":
    main()
