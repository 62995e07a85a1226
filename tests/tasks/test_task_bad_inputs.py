"""Bad inputs to the task modules and Predictor: each row is a call, the error type and what the
message must say (the argument and the value received). Add rows; never remove one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lightkit as lk


def _net() -> nn.Module:
    return nn.Linear(4, 3)


def _dm():
    return lk.data.TensorDataModule(torch.randn(16, 4), torch.randint(0, 3, (16,)))


def _predictor(**kwargs):
    module = lk.ClassificationModule(_net(), num_classes=3)
    return lk.Predictor(module, **{"device": "cpu", **kwargs})


CLS, BIN, ML = (
    lk.ClassificationModule,
    lk.BinaryClassificationModule,
    lk.MultilabelClassificationModule,
)
REG, SEG = lk.RegressionModule, lk.SegmentationModule

# (id, call, exception type, fragments the message must contain)
CASES = [
    ("num_classes str", lambda: CLS(_net(), num_classes="3"), TypeError, ["num_classes", "'3'"]),
    ("num_classes float", lambda: CLS(_net(), num_classes=3.0), TypeError, ["num_classes", "3.0"]),
    (
        "num_classes bool",
        lambda: CLS(_net(), num_classes=True),
        TypeError,
        ["num_classes", "True"],
    ),
    ("num_classes 1", lambda: CLS(_net(), num_classes=1), ValueError, ["num_classes", "Binary"]),
    (
        "label_smoothing str",
        lambda: CLS(_net(), 3, label_smoothing="0.1"),
        TypeError,
        ["label_smoothing", "'0.1'"],
    ),
    (
        "label_smoothing nan",
        lambda: CLS(_net(), 3, label_smoothing=math.nan),
        ValueError,
        ["label_smoothing", "nan"],
    ),
    (
        "label_smoothing 1",
        lambda: CLS(_net(), 3, label_smoothing=1.0),
        ValueError,
        ["label_smoothing", "1.0"],
    ),
    ("compile 'no'", lambda: CLS(_net(), 3, compile="no"), TypeError, ["compile", "'no'"]),
    (
        "train_metrics 'false'",
        lambda: CLS(_net(), 3, train_metrics="false"),
        TypeError,
        ["train_metrics", "'false'"],
    ),
    ("channels_last 1", lambda: REG(_net(), channels_last=1), TypeError, ["channels_last", "1"]),
    (
        "gradient_checkpointing None",
        lambda: REG(_net(), gradient_checkpointing=None),
        TypeError,
        ["gradient_checkpointing", "None"],
    ),
    ("net str", lambda: CLS("resnet18", 3), TypeError, ["net", "str"]),
    ("net None", lambda: CLS(None, 3), TypeError, ["net is required"]),
    ("optimizer float", lambda: CLS(_net(), 3, optimizer=0.01), TypeError, ["optimizer", "0.01"]),
    (
        "scheduler str",
        lambda: CLS(_net(), 3, scheduler="cosine"),
        TypeError,
        ["scheduler", "'cosine'"],
    ),
    ("pos_weight nan", lambda: BIN(_net(), pos_weight=math.nan), ValueError, ["pos_weight", "nan"]),
    ("pos_weight str", lambda: BIN(_net(), pos_weight="2"), TypeError, ["pos_weight", "'2'"]),
    ("pos_weight negative", lambda: BIN(_net(), pos_weight=-1.0), ValueError, ["pos_weight", "-1"]),
    ("pos_weight bool", lambda: BIN(_net(), pos_weight=True), TypeError, ["pos_weight", "True"]),
    ("threshold nan", lambda: BIN(_net(), threshold=math.nan), ValueError, ["threshold", "nan"]),
    ("threshold 1.5", lambda: BIN(_net(), threshold=1.5), ValueError, ["threshold", "1.5"]),
    ("threshold str", lambda: BIN(_net(), threshold="0.5"), TypeError, ["threshold", "'0.5'"]),
    ("num_labels 1", lambda: ML(_net(), num_labels=1), ValueError, ["num_labels", "1"]),
    (
        "regression loss name",
        lambda: REG(_net(), loss="mae"),
        ValueError,
        ["loss", "'mae'", "'l1'"],
    ),
    ("regression loss list", lambda: REG(_net(), loss=["mse"]), ValueError, ["loss", "['mse']"]),
    (
        "huber_delta nan",
        lambda: REG(_net(), loss="huber", huber_delta=math.nan),
        ValueError,
        ["huber_delta", "nan"],
    ),
    (
        "huber_delta 0",
        lambda: REG(_net(), loss="huber", huber_delta=0),
        ValueError,
        ["huber_delta", "0"],
    ),
    (
        "huber_delta bool",
        lambda: REG(_net(), loss="huber", huber_delta=True),
        TypeError,
        ["huber_delta", "True"],
    ),
    ("segmentation loss", lambda: SEG(_net(), 3, loss="focal"), ValueError, ["loss", "'focal'"]),
    (
        "ignore_index inside",
        lambda: SEG(_net(), 3, ignore_index=1),
        ValueError,
        ["ignore_index", "1"],
    ),
    (
        "ignore_index bool",
        lambda: SEG(_net(), 3, ignore_index=True),
        TypeError,
        ["ignore_index", "True"],
    ),
    (
        "ignore_index str",
        lambda: SEG(_net(), 3, ignore_index="255"),
        TypeError,
        ["ignore_index", "'255'"],
    ),
    (
        "Predictor input_shape int",
        lambda: _predictor(input_shape=8),
        TypeError,
        ["input_shape", "8"],
    ),
    (
        "Predictor input_shape str",
        lambda: _predictor(input_shape="3x32"),
        TypeError,
        ["input_shape", "'3x32'"],
    ),
    (
        "Predictor input_shape 0",
        lambda: _predictor(input_shape=(3, 0)),
        ValueError,
        ["input_shape[1]", "0"],
    ),
    (
        "Predictor input_shape float",
        lambda: _predictor(input_shape=(4.0,)),
        TypeError,
        ["input_shape[0]", "4.0"],
    ),
    (
        "Predictor input_shape huge",
        lambda: _predictor(input_shape=(2**20, 2**20)),
        ValueError,
        ["input_shape", "numbers per sample"],
    ),
    ("Predictor device", lambda: _predictor(device="gpu"), ValueError, ["device", "'gpu'"]),
    ("Predictor transform", lambda: _predictor(transform=3), TypeError, ["transform", "3"]),
    (
        "Predictor image_mode",
        lambda: _predictor(image_mode="rgb"),
        ValueError,
        ["image_mode", "'rgb'"],
    ),
    ("Predictor module", lambda: lk.Predictor("model.ckpt"), TypeError, ["module", "str"]),
    (
        "predict batch_size 0",
        lambda: _predictor().predict(torch.randn(2, 4), batch_size=0),
        ValueError,
        ["batch_size", "0"],
    ),
    (
        "predict batch_size bool",
        lambda: _predictor().predict(torch.randn(2, 4), batch_size=True),
        TypeError,
        ["batch_size", "True"],
    ),
    (
        "predict wrong shape",
        lambda: _predictor(input_shape=(4,)).predict(torch.randn(2, 5)),
        ValueError,
        ["(2, 5)", "N×4"],
    ),
    (
        "predict NaN",
        lambda: _predictor().predict(torch.tensor([[math.nan] * 4])),
        ValueError,
        ["NaN"],
    ),
    (
        "predict strings",
        lambda: _predictor().predict([["a", "b", "c", "d"]]),
        TypeError,
        ["sample 0"],
    ),
    ("predict dict", lambda: _predictor().predict({"x": 1}), TypeError, ["inputs", "dict"]),
    (
        "from_checkpoint trust True",
        lambda: lk.Predictor.from_checkpoint("x.ckpt", trust=True),
        TypeError,
        ["trust", "True"],
    ),
    (
        "load_from_checkpoint trust int",
        lambda: CLS.load_from_checkpoint("x.ckpt", trust=[1]),
        TypeError,
        ["trust", "[1]"],
    ),
    (
        "from_checkpoint missing file",
        lambda: lk.Predictor.from_checkpoint("no/such.ckpt"),
        FileNotFoundError,
        ["no/such.ckpt"],
    ),
    (
        "from_checkpoint path int",
        lambda: lk.Predictor.from_checkpoint(123),
        TypeError,
        ["path", "123"],
    ),
    (
        "load_from_checkpoint path None",
        lambda: CLS.load_from_checkpoint(None),
        TypeError,
        ["checkpoint_path", "None"],
    ),
    ("num_labels float", lambda: ML(_net(), num_labels=2.0), TypeError, ["num_labels", "2.0"]),
    ("regression loss None", lambda: REG(_net(), loss=None), ValueError, ["loss", "None"]),
    (
        "ignore_index float",
        lambda: SEG(_net(), 3, ignore_index=1.5),
        TypeError,
        ["ignore_index", "1.5"],
    ),
    (
        "diagnose overfit_steps",
        lambda: lk.diagnose(CLS(_net(), 3), _dm(), overfit_steps=-1),
        ValueError,
        ["overfit_steps", "-1"],
    ),
    (
        "diagnose lr_test",
        lambda: lk.diagnose(CLS(_net(), 3), _dm(), lr_test="no"),
        TypeError,
        ["lr_test", "'no'"],
    ),
    (
        "diagnose seed",
        lambda: lk.diagnose(CLS(_net(), 3), _dm(), seed=None),
        TypeError,
        ["seed", "None"],
    ),
    (
        "diagnose data_batches",
        lambda: lk.diagnose(CLS(_net(), 3), _dm(), data_batches=0),
        ValueError,
        ["data_batches", "0"],
    ),
    ("diagnose module", lambda: lk.diagnose(_net(), _dm()), TypeError, ["module", "Linear"]),
    (
        "diagnose datamodule",
        lambda: lk.diagnose(CLS(_net(), 3), [1, 2]),
        TypeError,
        ["datamodule", "list"],
    ),
    (
        "load_from_checkpoint missing file",
        lambda: CLS.load_from_checkpoint("no/such.ckpt"),
        FileNotFoundError,
        ["no/such.ckpt"],
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_a_clear_error(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_table_only_grows():
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len(CASES)
