"""Bad inputs to the data, optim, models and losses layers: a clear error for each, at once.

Each row is a call a careless user (or a hostile config) could make, the exception type expected
(``TypeError`` for a wrong type, ``ValueError`` for a bad value) and fragments the message must
contain: the argument's name and the value received. Rows are only ever added, so the count of
bad inputs covered can only go up. Good inputs next to them are tested in the module's own tests
and in ``test_good_inputs_still_work`` below.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import lightkit as lk
from helpers import make_blobs

NAN, INF = math.nan, math.inf
PAIRS = [(torch.zeros(3), 0), (torch.ones(3), 1), (torch.ones(3), 0), (torch.zeros(3), 1)]


class _Samples(Dataset):
    """A map-style dataset whose every sample is ``sample``."""

    def __init__(self, sample, n: int = 8) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return self.sample


def _setup(dm: lk.data.DataModule) -> None:
    dm.setup("fit")


def _dm(**kwargs):
    return lk.data.DataModule(make_blobs(16), **kwargs)


def _tdm(**kwargs):
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    return lk.data.TensorDataModule(x, y, **kwargs)


def _loader(**kwargs):
    return lk.data.InMemoryLoader((torch.randn(10, 3), torch.zeros(10)), **kwargs)


def _resume(**changes):
    loader = _loader(seed=0, shuffle=True)
    loader.load_state_dict({**loader.state_dict(), **changes})


def _kfold(**kwargs):
    return lk.data.KFoldDataModule(make_blobs(12), k=3, **kwargs)


def _cv(**kwargs):
    args = {"make_module": lambda: None, "dataset": make_blobs(12), "k": 3, **kwargs}
    return lk.cross_validate(**args)


def _tp(**kwargs):
    return lk.data.transforms.train_preset(**{"image_size": 16, **kwargs})


def _ep(**kwargs):
    return lk.data.transforms.eval_preset(**{"image_size": 16, **kwargs})


P, D, M = lk.optim, lk.data, lk.models

# (id, call, exception, fragments of the message)
BAD_INPUTS = [
    # --- DataModule: seeds, sizes, fractions, workers --------------------------------------------
    ("dm-seed-None", lambda: _dm(seed=None), TypeError, ["seed", "None"]),
    ("dm-seed-str", lambda: _dm(seed="abc"), TypeError, ["seed", "'abc'"]),
    ("dm-seed-float", lambda: _dm(seed=1.5), TypeError, ["seed", "1.5"]),
    ("dm-seed-bool", lambda: _dm(seed=True), TypeError, ["seed", "True"]),
    ("dm-seed-negative", lambda: _dm(seed=-1), ValueError, ["seed", "-1"]),
    ("dm-seed-huge", lambda: _dm(seed=2**64), ValueError, ["seed", str(2**64)]),
    ("dm-batch-bool", lambda: _dm(batch_size=True), TypeError, ["batch_size", "True"]),
    ("dm-batch-float", lambda: _dm(batch_size=32.0), TypeError, ["batch_size", "32.0"]),
    ("dm-batch-str", lambda: _dm(batch_size="32"), TypeError, ["batch_size", "'32'"]),
    ("dm-val-false", lambda: _dm(val_split=False), TypeError, ["val_split", "False"]),
    ("dm-val-true", lambda: _dm(val_split=True), TypeError, ["val_split", "True"]),
    ("dm-val-str", lambda: _dm(val_split="0.1"), TypeError, ["val_split", "'0.1'"]),
    ("dm-workers-bool", lambda: _dm(num_workers=True), TypeError, ["num_workers", "True"]),
    ("dm-workers-float", lambda: _dm(num_workers=2.0), TypeError, ["num_workers", "2.0"]),
    ("dm-workers-huge", lambda: _dm(num_workers=10**6), ValueError, ["num_workers", "1000000"]),
    # --- DataModule: what a dataset is ----------------------------------------------------------
    ("dm-train-ints", lambda: D.DataModule([1, 2, 3]), TypeError, ["train", "sample 0", "1"]),
    (
        "dm-train-late-int",
        lambda: D.DataModule([*PAIRS, 5]),
        TypeError,
        ["train", "sample 4", "5"],
    ),
    (
        "dm-train-ragged",
        lambda: D.DataModule([*PAIRS, (torch.zeros(3),)]),
        ValueError,
        ["train", "sample 4", "1 item"],
    ),
    (
        "dm-train-none-target",
        lambda: D.DataModule([*PAIRS, (torch.zeros(3), None)]),
        TypeError,
        ["train", "sample 4", "None"],
    ),
    ("dm-train-tensor", lambda: D.DataModule(torch.randn(8, 3)), TypeError, ["train", "Tensor"]),
    ("dm-train-array", lambda: D.DataModule(np.zeros((8, 3))), TypeError, ["train", "ndarray"]),
    ("dm-train-path", lambda: D.DataModule("data/train"), TypeError, ["train", "'data/train'"]),
    ("dm-train-dict", lambda: D.DataModule({"x": [1], "y": [0]}), TypeError, ["train", "dict"]),
    ("dm-train-iterator", lambda: D.DataModule(iter(PAIRS)), TypeError, ["train", "iterator"]),
    ("dm-val-ints", lambda: D.DataModule(PAIRS, val=[0, 1]), TypeError, ["val", "sample 0", "0"]),
    ("dm-test-str", lambda: D.DataModule(PAIRS, test="abc"), TypeError, ["test", "'abc'"]),
    ("dm-predict-int", lambda: D.DataModule(PAIRS, predict=5), TypeError, ["predict", "5"]),
    (
        "dm-dataset-int-samples",
        lambda: _setup(D.DataModule(_Samples(7))),
        TypeError,
        ["train", "sample 0", "7"],
    ),
    (
        "dm-dataset-none-target",
        lambda: _setup(D.DataModule(_Samples((torch.zeros(2), None)))),
        TypeError,
        ["train", "sample 0", "None"],
    ),
    (
        "dm-dataset-str-samples",
        lambda: _setup(D.DataModule(make_blobs(16), test=_Samples("img.png"))),
        TypeError,
        ["test", "sample 0", "'img.png'"],
    ),
    # --- TensorDataModule ------------------------------------------------------------------------
    (
        "tdm-object-array",
        lambda: D.TensorDataModule(np.array([object()] * 4), np.zeros(4)),
        TypeError,
        ["TensorDataModule: x", "object"],
    ),
    (
        "tdm-str-array",
        lambda: D.TensorDataModule(np.zeros((4, 2)), np.array(["a", "b", "a", "b"])),
        TypeError,
        ["TensorDataModule: y", "<U1"],
    ),
    ("tdm-stratify-str", lambda: _tdm(stratify="no"), TypeError, ["stratify", "'no'"]),
    ("tdm-stratify-int", lambda: _tdm(stratify=1), TypeError, ["stratify", "1"]),
    ("tdm-test-bool", lambda: _tdm(test_split=True), TypeError, ["test_split", "True"]),
    (
        "tdm-splits-sum",
        lambda: _tdm(val_split=0.5, test_split=0.6),
        ValueError,
        ["val_split", "0.5", "test_split", "0.6"],
    ),
    ("tdm-seed-None", lambda: _tdm(seed=None), TypeError, ["seed", "None"]),
    ("tdm-device-name", lambda: _tdm(device="gpu"), ValueError, ["device", "'gpu'"]),
    ("tdm-device-float", lambda: _tdm(device=3.5), TypeError, ["device", "3.5"]),
    # --- built-in data modules -------------------------------------------------------------------
    ("digits-seed-None", lambda: D.DigitsDataModule(seed=None), TypeError, ["seed", "None"]),
    (
        "digits-test-str",
        lambda: D.DigitsDataModule(test_split="0.2"),
        TypeError,
        ["test_split", "'0.2'"],
    ),
    (
        "digits-val-false",
        lambda: D.DigitsDataModule(val_split=False),
        TypeError,
        ["val_split", "False"],
    ),
    (
        "digits-batch-bool",
        lambda: D.DigitsDataModule(batch_size=True),
        TypeError,
        ["batch_size", "True"],
    ),
    (
        "shapes-samples-bool",
        lambda: D.ShapesDataModule(num_samples=True),
        TypeError,
        ["num_samples", "True"],
    ),
    (
        "shapes-size-float",
        lambda: D.ShapesDataModule(image_size=32.0),
        TypeError,
        ["image_size", "32.0"],
    ),
    ("sklearn-name-None", lambda: D.SklearnDataModule(name=None), TypeError, ["name", "None"]),
    (
        "sklearn-name-list",
        lambda: D.SklearnDataModule(name=["diabetes"]),
        TypeError,
        ["name", "['diabetes']"],
    ),
    ("sklearn-seed-float", lambda: D.SklearnDataModule(seed=1.5), TypeError, ["seed", "1.5"]),
    # --- k-fold ----------------------------------------------------------------------------------
    ("kfold-k-bool", lambda: D.KFoldDataModule(make_blobs(12), k=True), TypeError, ["k", "True"]),
    ("kfold-k-float", lambda: D.KFoldDataModule(make_blobs(12), k=3.0), TypeError, ["k", "3.0"]),
    ("kfold-fold-str", lambda: _kfold(fold="0"), TypeError, ["fold", "'0'"]),
    ("kfold-stratify-str", lambda: _kfold(stratify="no"), TypeError, ["stratify", "'no'"]),
    ("kfold-seed-None", lambda: _kfold(seed=None), TypeError, ["seed", "None"]),
    (
        "kfold-dataset-ints",
        lambda: D.KFoldDataModule([1, 2, 3, 4, 5, 6], k=3),
        TypeError,
        ["dataset", "sample 0", "1"],
    ),
    ("kfold-dataset-None", lambda: D.KFoldDataModule(None), TypeError, ["dataset", "None"]),
    (
        "kfold-dataset-tensor",
        lambda: D.KFoldDataModule(torch.randn(12, 3)),
        TypeError,
        ["dataset", "Tensor"],
    ),
    ("cv-make-module", lambda: _cv(make_module="mlp"), TypeError, ["make_module", "'mlp'"]),
    (
        "cv-make-module-returns",
        lambda: _cv(make_module=lambda: "net"),
        TypeError,
        ["make_module()", "'net'"],
    ),
    ("cv-k-zero", lambda: _cv(k=0), ValueError, ["k", "0"]),
    ("cv-k-bool", lambda: _cv(k=True), TypeError, ["k", "True"]),
    (
        "cv-trainer-kwargs",
        lambda: _cv(trainer_kwargs=[("max_epochs", 1)]),
        TypeError,
        ["trainer_kwargs", "list"],
    ),
    ("cv-stratify-str", lambda: _cv(stratify="false"), TypeError, ["stratify", "'false'"]),
    ("cv-seed-None", lambda: _cv(seed=None), TypeError, ["seed", "None"]),
    ("cv-dataset-ints", lambda: _cv(dataset=[1, 2, 3]), TypeError, ["dataset", "sample 0"]),
    # --- InMemoryLoader --------------------------------------------------------------------------
    (
        "loader-single-tensor",
        lambda: D.InMemoryLoader(torch.randn(10, 3)),
        TypeError,
        ["tensors", "Tensor", "(10, 3)"],
    ),
    ("loader-None", lambda: D.InMemoryLoader(None), TypeError, ["tensors", "None"]),
    ("loader-empty", lambda: D.InMemoryLoader(()), ValueError, ["tensors", "()"]),
    (
        "loader-not-tensor",
        lambda: D.InMemoryLoader((torch.zeros(3), "y")),
        TypeError,
        ["tensors[1]", "'y'"],
    ),
    (
        "loader-devices",
        lambda: D.InMemoryLoader((torch.zeros(3), torch.zeros(3, device="meta"))),
        ValueError,
        ["tensors[1]", "meta"],
    ),
    ("loader-batch-bool", lambda: _loader(batch_size=True), TypeError, ["batch_size", "True"]),
    ("loader-shuffle-str", lambda: _loader(shuffle="no"), TypeError, ["shuffle", "'no'"]),
    ("loader-drop-str", lambda: _loader(drop_last="false"), TypeError, ["drop_last", "'false'"]),
    ("loader-seed-str", lambda: _loader(seed="abc"), TypeError, ["seed", "'abc'"]),
    ("loader-seed-float", lambda: _loader(seed=1.5), TypeError, ["seed", "1.5"]),
    ("loader-device-name", lambda: _loader(device="gpu"), ValueError, ["device", "'gpu'"]),
    # --- state read back from a checkpoint (untrusted) ---------------------------------------
    (
        "loader-state-negative",
        lambda: _resume(consumed=-3),
        ValueError,
        ["state['consumed']", "-3"],
    ),
    ("loader-state-str", lambda: _resume(consumed="x"), TypeError, ["state['consumed']", "'x'"]),
    ("loader-state-nan", lambda: _resume(length=NAN), TypeError, ["state['length']", "nan"]),
    ("loader-state-batch", lambda: _resume(batch_size=0), ValueError, ["state['batch_size']", "0"]),
    (
        "loader-state-generator",
        lambda: _resume(epoch_start_generator=torch.zeros(3)),
        ValueError,
        ["state['epoch_start_generator']", "float32"],
    ),
    (
        "loader-state-not-dict",
        lambda: _loader(seed=0).load_state_dict("abc"),
        TypeError,
        ["state", "'abc'"],
    ),
    ("dm-state-not-dict", lambda: _dm().load_state_dict("abc"), TypeError, ["state_dict", "'abc'"]),
    (
        "dm-state-loader",
        lambda: _dm().load_state_dict({"train_loader": 5}),
        TypeError,
        ["state_dict['train_loader']", "5"],
    ),
    (
        "dm-state-generator",
        lambda: _dm().load_state_dict({"train_loader": {"generator": "x"}}),
        TypeError,
        ["['generator']", "'x'"],
    ),
    # --- small public helpers --------------------------------------------------------------------
    ("shapes-fn-bool", lambda: D.make_shapes(True, 32), TypeError, ["num_samples", "True"]),
    ("shapes-fn-negative", lambda: D.make_shapes(-1, 8), ValueError, ["num_samples", "-1"]),
    ("shapes-fn-seed", lambda: D.make_shapes(3, 8, seed=None), TypeError, ["seed", "None"]),
    ("shapes-fn-size", lambda: D.make_shapes(3, 2.5), TypeError, ["image_size", "2.5"]),
    (
        "transformed-fn",
        lambda: D.TransformedDataset(make_blobs(4), "abc"),
        TypeError,
        ["transform", "'abc'"],
    ),
    (
        "transformed-paired",
        lambda: D.TransformedDataset(make_blobs(4), abs, paired="no"),
        TypeError,
        ["paired", "'no'"],
    ),
    (
        "transformed-dataset",
        lambda: D.TransformedDataset(5, abs),
        TypeError,
        ["dataset", "5"],
    ),
    # --- transforms ------------------------------------------------------------------------------
    ("tp-hflip-str", lambda: _tp(hflip="no"), TypeError, ["hflip", "'no'"]),
    (
        "tp-rrc-str",
        lambda: _tp(random_resized_crop="false"),
        TypeError,
        ["random_resized_crop", "'false'"],
    ),
    ("tp-rotation-nan", lambda: _tp(rotation=NAN), ValueError, ["rotation", "nan"]),
    ("tp-rotation-negative", lambda: _tp(rotation=-5), ValueError, ["rotation", "-5"]),
    ("tp-rotation-str", lambda: _tp(rotation="15"), TypeError, ["rotation", "'15'"]),
    ("tp-jitter-negative", lambda: _tp(color_jitter=-0.1), ValueError, ["color_jitter", "-0.1"]),
    ("tp-jitter-nan", lambda: _tp(color_jitter=NAN), ValueError, ["color_jitter", "nan"]),
    (
        "tp-mean-std-lengths",
        lambda: _tp(mean=(0.5, 0.5), std=(0.2,)),
        ValueError,
        ["mean", "std", "(0.5, 0.5)", "(0.2,)"],
    ),
    ("tp-mean-str", lambda: _tp(mean="abc"), TypeError, ["mean", "'abc'"]),
    ("tp-std-zero", lambda: _tp(mean=(0.5,), std=(0.0,)), ValueError, ["std[0]", "0.0"]),
    ("tp-std-nan", lambda: _tp(mean=(0.5,), std=(NAN,)), ValueError, ["std[0]", "nan"]),
    ("tp-mean-nan", lambda: _tp(mean=(NAN,), std=(0.5,)), ValueError, ["mean[0]", "nan"]),
    ("tp-size-bool", lambda: _tp(image_size=True), TypeError, ["image_size", "True"]),
    ("tp-size-pair-bool", lambda: _tp(image_size=(32, True)), TypeError, ["image_size", "True"]),
    ("ep-size-str", lambda: _ep(image_size="32"), TypeError, ["image_size", "'32'"]),
    ("ep-size-float", lambda: _ep(image_size=32.0), TypeError, ["image_size", "32.0"]),
    ("ep-std-zeros", lambda: _ep(std=(0, 0, 0)), ValueError, ["std[0]", "0"]),
    ("ep-mean-int", lambda: _ep(mean=5), TypeError, ["mean", "5"]),
    # --- optimizers ------------------------------------------------------------------------------
    ("adam-lr-nan", lambda: P.adam(lr=NAN), ValueError, ["lr", "nan"]),
    ("adam-lr-inf", lambda: P.adam(lr=INF), ValueError, ["lr", "inf"]),
    ("adam-lr-str", lambda: P.adam(lr="1e-3"), TypeError, ["lr", "'1e-3'"]),
    ("adam-lr-bool", lambda: P.adam(lr=True), TypeError, ["lr", "True"]),
    ("adam-betas-short", lambda: P.adam(betas=(0.9,)), ValueError, ["betas", "(0.9,)"]),
    ("adam-betas-one", lambda: P.adam(betas=(1.0, 0.999)), ValueError, ["betas[0]", "1.0"]),
    ("adam-betas-nan", lambda: P.adam(betas=(0.9, NAN)), ValueError, ["betas[1]", "nan"]),
    ("adam-betas-float", lambda: P.adam(betas=0.9), TypeError, ["betas", "0.9"]),
    ("adam-betas-str", lambda: P.adam(betas="ab"), TypeError, ["betas", "'ab'"]),
    ("adam-wd-nan", lambda: P.adam(weight_decay=NAN), ValueError, ["weight_decay", "nan"]),
    ("adam-fused-str", lambda: P.adam(fused="no"), TypeError, ["fused", "'no'"]),
    ("adamw-lr-nan", lambda: P.adamw(lr=NAN), ValueError, ["lr", "nan"]),
    ("adamw-betas-big", lambda: P.adamw(betas=(0.9, 1.5)), ValueError, ["betas[1]", "1.5"]),
    ("adamw-fused-int", lambda: P.adamw(fused=1), TypeError, ["fused", "1"]),
    ("sgd-momentum-big", lambda: P.sgd(momentum=1.5), ValueError, ["momentum", "1.5"]),
    ("sgd-momentum-nan", lambda: P.sgd(momentum=NAN), ValueError, ["momentum", "nan"]),
    ("sgd-nesterov-str", lambda: P.sgd(nesterov="no"), TypeError, ["nesterov", "'no'"]),
    (
        "sgd-nesterov-no-momentum",
        lambda: P.sgd(nesterov=True, momentum=0),
        ValueError,
        ["nesterov", "momentum", "0"],
    ),
    ("sgd-fused-str", lambda: P.sgd(fused="yes"), TypeError, ["fused", "'yes'"]),
    ("sgd-lr-inf", lambda: P.sgd(lr=INF), ValueError, ["lr", "inf"]),
    ("rmsprop-alpha-big", lambda: P.rmsprop(alpha=1.5), ValueError, ["alpha", "1.5"]),
    ("rmsprop-lr-nan", lambda: P.rmsprop(lr=NAN), ValueError, ["lr", "nan"]),
    ("rmsprop-momentum-nan", lambda: P.rmsprop(momentum=NAN), ValueError, ["momentum", "nan"]),
    ("rmsprop-wd-nan", lambda: P.rmsprop(weight_decay=NAN), ValueError, ["weight_decay", "nan"]),
    # --- schedulers ------------------------------------------------------------------------------
    ("plateau-patience-bool", lambda: P.plateau(patience=True), TypeError, ["patience", "True"]),
    ("plateau-factor-str", lambda: P.plateau(factor="0.5"), TypeError, ["factor", "'0.5'"]),
    ("plateau-monitor-int", lambda: P.plateau(monitor=5), TypeError, ["monitor", "5"]),
    ("plateau-monitor-empty", lambda: P.plateau(monitor=""), ValueError, ["monitor", "''"]),
    ("step-gamma-nan", lambda: P.step(gamma=NAN), ValueError, ["gamma", "nan"]),
    ("step-gamma-bool", lambda: P.step(gamma=True), TypeError, ["gamma", "True"]),
    ("step-size-bool", lambda: P.step(step_size=True), TypeError, ["step_size", "True"]),
    ("cosine-ratio-str", lambda: P.cosine(min_lr_ratio="0"), TypeError, ["min_lr_ratio", "'0'"]),
    ("wc-warmup-nan", lambda: P.warmup_cosine(warmup=NAN), ValueError, ["warmup", "nan"]),
    ("wc-warmup-inf", lambda: P.warmup_cosine(warmup=INF), ValueError, ["warmup", "inf"]),
    ("wc-warmup-fraction", lambda: P.warmup_cosine(warmup=1.5), ValueError, ["warmup", "1.5"]),
    ("wc-warmup-bool", lambda: P.warmup_cosine(warmup=True), TypeError, ["warmup", "True"]),
    ("onecycle-lr-nan", lambda: P.onecycle(NAN), ValueError, ["max_lr", "nan"]),
    ("onecycle-lr-str", lambda: P.onecycle("0.1"), TypeError, ["max_lr", "'0.1'"]),
    ("onecycle-pct-str", lambda: P.onecycle(0.1, pct_start="0.3"), TypeError, ["pct_start"]),
    # --- models ----------------------------------------------------------------------------------
    ("mlp-in-bool", lambda: M.MLP(True, 3), TypeError, ["in_features", "True"]),
    ("mlp-in-float", lambda: M.MLP(4.0, 3), TypeError, ["in_features", "4.0"]),
    ("mlp-hidden-int", lambda: M.MLP(4, 3, hidden=8), TypeError, ["hidden", "8"]),
    ("mlp-hidden-str", lambda: M.MLP(4, 3, hidden="64"), TypeError, ["hidden", "'64'"]),
    ("mlp-hidden-float", lambda: M.MLP(4, 3, hidden=(8, 2.0)), TypeError, ["hidden[1]", "2.0"]),
    ("mlp-dropout-str", lambda: M.MLP(4, 3, dropout="0.1"), TypeError, ["dropout", "'0.1'"]),
    ("mlp-dropout-true", lambda: M.MLP(4, 3, dropout=True), TypeError, ["dropout", "True"]),
    ("mlp-dropout-false", lambda: M.MLP(4, 3, dropout=False), TypeError, ["dropout", "False"]),
    ("convnet-widths-int", lambda: M.ConvNet(3, 10, widths=32), TypeError, ["widths", "32"]),
    (
        "convnet-widths-bool",
        lambda: M.ConvNet(3, 10, widths=(32, True)),
        TypeError,
        ["widths[1]", "True"],
    ),
    ("convnet-dropout-None", lambda: M.ConvNet(3, 10, dropout=None), TypeError, ["dropout"]),
    ("convnet-in-str", lambda: M.ConvNet("3", 10), TypeError, ["in_channels", "'3'"]),
    ("unet-depth-bool", lambda: M.UNet(3, 3, depth=True), TypeError, ["depth", "True"]),
    ("unet-base-float", lambda: M.UNet(3, 3, base=8.0), TypeError, ["base", "8.0"]),
    ("backbone-name-None", lambda: M.backbone(None, 10), TypeError, ["name", "None"]),
    (
        "backbone-classes-bool",
        lambda: M.backbone("resnet18", True),
        TypeError,
        ["num_classes", "True"],
    ),
    (
        "backbone-channels-float",
        lambda: M.backbone("resnet18", 10, in_channels=3.0),
        TypeError,
        ["in_channels", "3.0"],
    ),
    # weights=True or 5 would download ImageNet weights through torchvision's legacy path.
    (
        "backbone-weights-bool",
        lambda: M.backbone("resnet18", 10, weights=True),
        TypeError,
        ["weights", "True"],
    ),
    (
        "backbone-weights-int",
        lambda: M.backbone("resnet18", 10, weights=5),
        TypeError,
        ["weights", "5"],
    ),
    (
        "backbone-weights-name",
        lambda: M.backbone("resnet18", 10, weights="NOPE"),
        ValueError,
        ["weights", "'NOPE'", "IMAGENET1K_V1"],
    ),
    # --- losses ----------------------------------------------------------------------------------
    ("dice-smooth-nan", lambda: lk.losses.DiceLoss(smooth=NAN), ValueError, ["smooth", "nan"]),
    ("dice-smooth-inf", lambda: lk.losses.DiceLoss(smooth=INF), ValueError, ["smooth", "inf"]),
    ("dice-smooth-str", lambda: lk.losses.DiceLoss(smooth="1"), TypeError, ["smooth", "'1'"]),
    ("dice-smooth-bool", lambda: lk.losses.DiceLoss(smooth=True), TypeError, ["smooth", "True"]),
    (
        "dice-ignore-float",
        lambda: lk.losses.DiceLoss(ignore_index=1.5),
        TypeError,
        ["ignore_index", "1.5"],
    ),
    (
        "dice-ignore-str",
        lambda: lk.losses.DiceLoss(ignore_index="255"),
        TypeError,
        ["ignore_index", "'255'"],
    ),
    (
        "dice-ignore-bool",
        lambda: lk.losses.DiceLoss(ignore_index=True),
        TypeError,
        ["ignore_index", "True"],
    ),
    (
        "cedice-weight-nan",
        lambda: lk.losses.CEDiceLoss(dice_weight=NAN),
        ValueError,
        ["dice_weight", "nan"],
    ),
    (
        "cedice-weight-negative",
        lambda: lk.losses.CEDiceLoss(dice_weight=-1),
        ValueError,
        ["dice_weight", "-1"],
    ),
    (
        "cedice-ignore-str",
        lambda: lk.losses.CEDiceLoss(ignore_index="x"),
        TypeError,
        ["ignore_index", "'x'"],
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "fragments"),
    [pytest.param(call, error, fragments, id=name) for name, call, error, fragments in BAD_INPUTS],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{missing} not in the message: {message}"


def test_the_table_only_grows():
    assert len({name for name, *_ in BAD_INPUTS}) == len(BAD_INPUTS) >= 178


GOOD_INPUTS = [
    # Edges of each accepted range, numpy scalars, lists where tuples are documented.
    lambda: _dm(seed=0, val_split=0, num_workers=0),
    lambda: _dm(seed=2**32 - 1, val_split=np.float32(0.25), batch_size=np.int64(4)),
    lambda: _dm(num_workers="auto", train_transform=abs, eval_transform=None),
    lambda: D.DataModule(PAIRS, val=PAIRS, test=[torch.zeros(3)] * 2, predict=[{"x": 1}] * 2),
    lambda: D.DataModule([[0.5, 1.0], [0.25, 0.0]], val_split=0),  # scalar regression rows
    lambda: _tdm(stratify=np.bool_(True), val_split=0.2, test_split=0.2, device="cpu"),
    lambda: D.TensorDataModule(
        np.zeros((6, 2), dtype=np.float32), None, device=torch.device("cpu")
    ),
    lambda: _kfold(fold=2, stratify=False, seed=np.int64(5)),
    lambda: D.InMemoryLoader([torch.zeros(4)], seed=None, device=None),
    lambda: D.InMemoryLoader(iter([torch.zeros(4), torch.ones(4)]), shuffle=True, seed=0),
    lambda: _tp(image_size=[16, 24], mean=[0.5], std=[0.25], rotation=0, color_jitter=0),
    lambda: _tp(rotation=180, color_jitter=1.5, hflip=False, random_resized_crop=False),
    lambda: _ep(image_size=np.int64(16), mean=np.array([0.5, 0.5, 0.5]).tolist()),
    lambda: P.adam(lr=np.float32(1e-3), betas=[0.0, 0.5], weight_decay=0),
    lambda: P.sgd(lr=1, momentum=0, nesterov=False),
    lambda: P.rmsprop(alpha=0.5, momentum=0.99),
    lambda: P.plateau(patience=0, factor=0.1, monitor="train/loss", mode="max"),
    lambda: P.warmup_cosine(warmup=10.0, min_lr_ratio=1),
    lambda: P.warmup_cosine(warmup=0),
    lambda: P.onecycle(max_lr=1, pct_start=0.5),
    lambda: M.MLP(4, 3, hidden=[], dropout=0),
    lambda: M.ConvNet(1, 2, widths=[4], dropout=0.5),
    lambda: M.UNet(1, 2, base=np.int64(4), depth=1),
    lambda: lk.losses.DiceLoss(ignore_index=-100, smooth=0),
    lambda: lk.losses.CEDiceLoss(ignore_index=np.int64(255), dice_weight=0),
]


@pytest.mark.parametrize("call", GOOD_INPUTS)
def test_good_inputs_still_work(call):
    made = call()
    if isinstance(made, lk.data.DataModule):
        made.setup("fit")
        next(iter(made.train_dataloader()))
    elif isinstance(made, lk.data.InMemoryLoader):
        assert len(list(made)) == 1


def test_presets_checked_values_round_trip():
    preset = P.adam(betas=[0.8, 0.9])
    assert preset.kwargs["betas"] == (0.8, 0.9)
    assert P.adam(**preset.to_spec()["init_args"]) == preset  # rebuilt from a checkpoint spec
    spec = lk.data.transforms.eval_preset([16, 24], [0.5], [0.2]).lightkit_spec["init_args"]
    assert spec == {"image_size": [16, 24], "mean": [0.5], "std": [0.2]}
    assert lk.data.transforms.eval_preset(**spec).lightkit_spec["init_args"] == spec


def test_reading_a_first_sample_moves_no_random_generator():
    class Noisy(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, index):
            return torch.rand(2), int(np.random.randint(2)) + int(random.random() > 2)

    def draws():
        return torch.rand(1).item(), np.random.rand(), random.random()

    def seed():
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)

    seed()
    expected = draws()
    seed()
    dm = D.DataModule(Noisy(), val_split=0)
    dm.setup("fit")  # reads sample 0 to check its layout
    assert draws() == expected
    with pytest.raises(TypeError, match="train sample 0 is 3"):
        D.DataModule(_Samples(3)).setup("fit")
