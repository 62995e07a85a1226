"""Bad inputs to make_trainer, fit and the export functions: each row is a call, the exception it
must raise and fragments its message must contain (the argument's name and the value received).

Add a row for every bad input found; the count only goes up. Nothing may be created on disk.
"""

from __future__ import annotations

import importlib.util
import math
from functools import partial

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import make_blobs

_ONNX = importlib.util.find_spec("onnxruntime") is not None

# (call, exception, fragments of the message)
MAKE_TRAINER = [
    ("make_trainer(nan_guard='no')", TypeError, ["nan_guard", "'no'"]),
    ("make_trainer(nan_guard=1)", TypeError, ["nan_guard", "1"]),
    ("make_trainer(early_stopping='false')", TypeError, ["early_stopping", "'false'"]),
    ("make_trainer(early_stopping=None)", TypeError, ["early_stopping", "None"]),
    ("make_trainer(seed='abc')", TypeError, ["seed", "'abc'"]),
    ("make_trainer(seed=1.5)", TypeError, ["seed", "1.5"]),
    ("make_trainer(seed=-1)", ValueError, ["seed", "-1"]),
    ("make_trainer(seed=2**32)", ValueError, ["seed", "4294967296"]),
    ("make_trainer(seed=True)", TypeError, ["seed", "True"]),
    ("make_trainer(default_root_dir=123)", TypeError, ["default_root_dir", "123"]),
    ("make_trainer(default_root_dir='')", ValueError, ["default_root_dir", "''"]),
    ("make_trainer(default_root_dir=None)", TypeError, ["default_root_dir", "None"]),
    ("make_trainer(gradient_clip_val=math.nan)", ValueError, ["gradient_clip_val", "nan"]),
    ("make_trainer(gradient_clip_val=math.inf)", ValueError, ["gradient_clip_val", "inf"]),
    ("make_trainer(gradient_clip_val=0)", ValueError, ["gradient_clip_val", "0"]),
    ("make_trainer(gradient_clip_val='1.0')", TypeError, ["gradient_clip_val", "'1.0'"]),
    ("make_trainer(gradient_clip_val=True)", TypeError, ["gradient_clip_val", "True"]),
    ("make_trainer(gradient_clip_algorithm='l2')", ValueError, ["gradient_clip_algorithm", "'l2'"]),
    ("make_trainer(max_epochs='10')", TypeError, ["max_epochs", "'10'"]),
    ("make_trainer(max_epochs=-2)", ValueError, ["max_epochs", "-2"]),
    ("make_trainer(max_epochs=True)", TypeError, ["max_epochs", "True"]),
    ("make_trainer(max_epochs=2.0)", TypeError, ["max_epochs", "2.0"]),
    ("make_trainer(patience=2.5)", TypeError, ["patience", "2.5"]),
    ("make_trainer(patience=-1)", ValueError, ["patience", "-1"]),
    ("make_trainer(accumulate_grad_batches=0)", ValueError, ["accumulate_grad_batches", "0"]),
    ("make_trainer(accumulate_grad_batches=2.0)", TypeError, ["accumulate_grad_batches", "2.0"]),
    ("make_trainer(num_nodes='2')", TypeError, ["num_nodes", "'2'"]),
    ("make_trainer(num_nodes=0)", ValueError, ["num_nodes", "0"]),
    ("make_trainer(mode='MIN')", ValueError, ["mode", "'MIN'"]),
    ("make_trainer(mode=None)", ValueError, ["mode", "None"]),
    ("make_trainer(monitor='')", ValueError, ["monitor", "''"]),
    ("make_trainer(monitor=None)", TypeError, ["monitor", "None"]),
    ("make_trainer(checkpoint_every_n_steps=0)", ValueError, ["checkpoint_every_n_steps", "0"]),
    ("make_trainer(checkpoint_every_n_steps=True)", TypeError, ["checkpoint_every_n_steps"]),
    ("make_trainer(version=-1)", ValueError, ["version", "-1"]),
    ("make_trainer(version='first')", ValueError, ["version", "'first'"]),
    ("make_trainer(version=True)", ValueError, ["version", "True"]),
    ("make_trainer(version=1.0)", ValueError, ["version", "1.0"]),
    ("make_trainer(precision=16.0)", TypeError, ["precision", "16.0"]),
    ("make_trainer(precision=True)", TypeError, ["precision", "True"]),
    ("make_trainer(precision='fp8')", ValueError, ["precision", "'fp8'"]),
    ("make_trainer(devices=True)", TypeError, ["devices", "True"]),
    ("make_trainer(devices=2.0)", TypeError, ["devices", "2.0"]),
    ("make_trainer(devices='two')", TypeError, ["devices", "'two'"]),
    ("make_trainer(devices=[])", TypeError, ["devices", "[]"]),
    ("make_trainer(devices=0)", ValueError, ["devices", "0"]),
    ("make_trainer(profiler='fancy')", ValueError, ["profiler", "'fancy'"]),
    ("make_trainer(profiler=True)", ValueError, ["profiler", "True"]),
    ("make_trainer(logger='wandb')", ValueError, ["logger", "'wandb'"]),
    ("make_trainer(logger=0)", ValueError, ["logger", "0"]),
    ("make_trainer(callbacks='EarlyStopping')", TypeError, ["callbacks", "'EarlyStopping'"]),
    ("make_trainer(callbacks=[print])", TypeError, ["callbacks[0]", "print"]),
    ("make_trainer(strategy=3)", TypeError, ["strategy", "3"]),
    ("make_trainer(strategy='dp')", ValueError, ["strategy", "'dp'"]),
]

FIT = [
    ("fit(module, dm, resume='yes')", TypeError, ["resume", "'yes'"]),
    ("fit(module, dm, resume=1)", TypeError, ["resume", "1"]),
    ("fit(module, dm, oom_retry=0)", TypeError, ["oom_retry", "0"]),
    ("fit(module, dm, oom_retry='false')", TypeError, ["oom_retry", "'false'"]),
    ("fit('net', dm)", TypeError, ["module", "'net'"]),
    ("fit(net, dm)", TypeError, ["module", "Linear"]),
    ("fit(module, make_blobs(16))", TypeError, ["datamodule", "TensorDataset"]),
    ("fit(module, dm, resume=True, default_root_dir=5)", TypeError, ["default_root_dir", "5"]),
    ("fit(module, dm, resume=True, version='newest')", ValueError, ["version", "'newest'"]),
    ("fit(module, dm, nan_guard='no')", TypeError, ["nan_guard", "'no'"]),
    ("fit(module, dm, seed='abc')", TypeError, ["seed", "'abc'"]),
]

EXPORT = [
    ("to_torchscript(net, x, out, batch_sizes=[])", ValueError, ["batch_sizes", "[]"]),
    ("to_torchscript(net, x, out, batch_sizes=())", ValueError, ["batch_sizes", "()"]),
    ("to_torchscript(net, x, out, batch_sizes=[0])", ValueError, ["batch_sizes[0]", "0"]),
    ("to_torchscript(net, x, out, batch_sizes=[1, -8])", ValueError, ["batch_sizes[1]", "-8"]),
    ("to_torchscript(net, x, out, batch_sizes=8)", TypeError, ["batch_sizes", "8"]),
    ("to_torchscript(net, x, out, batch_sizes='8')", TypeError, ["batch_sizes", "'8'"]),
    ("to_torchscript(net, x, out, batch_sizes=[True])", TypeError, ["batch_sizes[0]", "True"]),
    ("to_torchscript(net, x, out, atol=math.nan)", ValueError, ["atol", "nan"]),
    ("to_torchscript(net, x, out, atol=-1)", ValueError, ["atol", "-1"]),
    ("to_torchscript(net, x, out, atol='0.1')", TypeError, ["atol", "'0.1'"]),
    ("to_torchscript(net, x, out, overwrite='yes')", TypeError, ["overwrite", "'yes'"]),
    ("to_torchscript(net, x, out, method='jit')", ValueError, ["method", "'jit'"]),
    ("to_torchscript(net, x, None)", TypeError, ["path", "None"]),
    ("to_torchscript(net, x, 3)", TypeError, ["path", "3"]),
    ("to_torchscript(net, x, '')", ValueError, ["path", "''"]),
    ("to_torchscript(net, x, out, source=3)", TypeError, ["source", "3"]),
    ("to_torchscript(net, x, out, overwrite=True, source=out)", ValueError, ["source", "m.pt"]),
    ("to_torchscript('net', x, out)", TypeError, ["module", "str"]),
    ("to_torchscript(net, [1.0], out)", TypeError, ["example_input", "list"]),
    ("to_exported_program(net, x, out, dynamic_batch=1)", TypeError, ["dynamic_batch", "1"]),
    (
        "to_exported_program(net, x, out, batch_sizes=[1, 2.5])",
        TypeError,
        ["batch_sizes[1]", "2.5"],
    ),
    ("to_exported_program(net, x, out, atol=math.inf)", ValueError, ["atol", "inf"]),
]

ONNX = [
    ("to_onnx(net, x, out, opset=99)", ValueError, ["opset", "99"]),
    ("to_onnx(net, x, out, opset=6)", ValueError, ["opset", "6"]),
    ("to_onnx(net, x, out, opset='18')", TypeError, ["opset", "'18'"]),
    ("to_onnx(net, x, out, opset=True)", TypeError, ["opset", "True"]),
    ("to_onnx(net, x, out, dynamic_batch='no')", TypeError, ["dynamic_batch", "'no'"]),
    ("to_onnx(net, x, out, batch_sizes=[])", ValueError, ["batch_sizes", "[]"]),
]

ROWS = (
    MAKE_TRAINER
    + FIT
    + EXPORT
    + [pytest.param(*row, marks=pytest.mark.skipif(not _ONNX, reason="needs onnx")) for row in ONNX]
)


def test_the_table_only_grows():
    assert len(ROWS) >= 93


@pytest.mark.parametrize(
    ("call", "error", "fragments"), ROWS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_bad_input_is_refused_with_a_clear_message(tmp_path, call, error, fragments):
    root = tmp_path / "runs"
    torch.manual_seed(0)
    net = nn.Linear(8, 3)
    namespace = {
        "math": math,
        "make_blobs": make_blobs,
        "make_trainer": partial(lk.make_trainer, default_root_dir=root),
        "fit": partial(lk.fit, default_root_dir=root, enable_progress_bar=False),
        "to_torchscript": lk.export.to_torchscript,
        "to_onnx": lk.export.to_onnx,
        "to_exported_program": lk.export.to_exported_program,
        "module": lk.ClassificationModule(net, 3),
        "dm": lk.data.DataModule(make_blobs(64), batch_size=16),
        "net": net,
        "x": torch.randn(2, 8),
        "out": tmp_path / "m.pt",
    }
    if "overwrite=True, source=out" in call:
        (tmp_path / "m.pt").write_text("the checkpoint")
    with pytest.raises(error) as info:
        eval(call, namespace)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{call}: {fragment!r} not in {message!r}"
    assert not root.exists() or not any(root.iterdir()), "a bad input created a run folder"
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "runs")
    assert written in ([], ["m.pt"] if "source=out" in call else []), written


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"strategy": "dpp"},
            r"unknown strategy 'dpp'; expected one of 'auto', 'ddp', 'ddp_spawn', 'fsdp'",
        ),
        ({"strategy": "dp"}, "Lightning 2 has no DataParallel; use 'ddp'"),
        ({"strategy": 3}, "strategy must be a name or a lightning Strategy"),
        (
            {"accelerator": "cpu", "devices": 10_000},
            "devices=10000 but this machine has .* CPU core",
        ),
        ({"accelerator": "cpu", "devices": 0}, "devices must be 'auto', -1, a positive count"),
        (
            {"accelerator": "cpu", "precision": "16-mixed"},
            "fp16 mixed precision.*needs a GPU.*'32-true'",
        ),
        (
            {"gradient_clip_algorithm": "l2"},
            "gradient_clip_algorithm must be one of 'norm', 'value'",
        ),
        ({"num_nodes": 0}, "num_nodes must be an integer >= 1, got 0"),
        (
            {"profiler": "fancy"},
            "unknown profiler 'fancy'; expected None, 'simple', 'advanced', 'pytorch'",
        ),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be an integer >= 1, got 0"),
    ],
)
def test_bad_scale_arguments(tmp_path, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lk.make_trainer(default_root_dir=tmp_path, **kwargs)


def test_bad_input_creates_no_run_folder(tmp_path):
    with pytest.raises(ValueError):
        lk.make_trainer(default_root_dir=tmp_path, strategy="nope")
    assert not (tmp_path / "version_0").exists()
