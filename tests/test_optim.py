"""Optimizer and scheduler presets."""

from __future__ import annotations

import itertools

import pytest
import torch

import lightkit as lk
from lightkit._spec import from_spec


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize(
    ("preset", "cls"),
    [
        (lk.optim.adam(lr=0.01), torch.optim.Adam),
        (lk.optim.adamw(), torch.optim.AdamW),
        (lk.optim.sgd(lr=0.1, momentum=0.5), torch.optim.SGD),
        (lk.optim.rmsprop(), torch.optim.RMSprop),
    ],
)
def test_optimizer_presets_build_and_round_trip(preset, cls):
    opt = preset(_params())
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == preset.kwargs["lr"]
    assert from_spec(preset.to_spec(), "optimizer") == preset


@pytest.mark.parametrize(
    "preset",
    [
        lk.optim.plateau(),
        lk.optim.step(5),
        lk.optim.cosine(),
        lk.optim.warmup_cosine(),
        lk.optim.onecycle(0.1),
    ],
)
def test_scheduler_presets_build_and_round_trip(preset):
    scheduler = preset(torch.optim.SGD(_params(), lr=0.1), total_steps=100)
    assert scheduler is not None
    assert from_spec(preset.to_spec(), "scheduler") == preset


def test_warmup_cosine_shape():
    opt = torch.optim.SGD(_params(), lr=1.0)
    sched = lk.optim.warmup_cosine(warmup=10, min_lr_ratio=0.1)(opt, total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1)  # first warmup step
    assert lrs[9] == pytest.approx(1.0)  # peak at the end of warmup
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # then non-increasing
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_total_steps_required():
    with pytest.raises(ValueError, match="needs the run's total number of optimizer steps"):
        lk.optim.cosine()(torch.optim.SGD(_params(), lr=0.1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lk.optim.adam(lr=0), "lr must be a number > 0, got 0"),
        (lambda: lk.optim.sgd(lr=-1), "lr must be a number > 0, got -1"),
        (lambda: lk.optim.plateau(factor=2), r"factor must be in \(0, 1\), got 2"),
        (lambda: lk.optim.onecycle(0.1, pct_start=1.5), "pct_start must be in"),
        (lambda: lk.optim.plateau(mode="up"), "mode must be 'min' or 'max'"),
    ],
)
def test_bad_preset_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_step_interval_presets_step_per_batch(blobs, fast_trainer_kwargs):
    module = lk.ClassificationModule(
        lk.models.MLP(8, 3), 3, optimizer=lk.optim.sgd(lr=0.1), scheduler=lk.optim.onecycle(0.5)
    )
    trainer = lk.make_trainer(max_epochs=2, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=32, val_split=0.25))
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step"
    # OneCycleLR was built for exactly the number of steps the trainer ran.
    assert config.scheduler.total_steps == trainer.global_step == 12
