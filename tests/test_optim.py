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
        (lambda: lk.optim.adam(lr=0), r"lr must be a number (> 0|in \(0, inf\)), got 0"),
        (lambda: lk.optim.sgd(lr=-1), r"lr must be a number (> 0|in \(0, inf\)), got -1"),
        (lambda: lk.optim.plateau(factor=2), r"factor must be a number in \(0, 1\), got 2"),
        (lambda: lk.optim.onecycle(0.1, pct_start=1.5), "pct_start must be a number in"),
        (lambda: lk.optim.plateau(mode="up"), "mode must be one of 'min', 'max', got 'up'"),
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


@pytest.mark.parametrize("preset", [lk.optim.adam(), lk.optim.adamw(), lk.optim.sgd()])
def test_fused_kernel_is_used_where_every_parameter_allows_it(preset):
    net = torch.nn.Linear(4, 2)
    assert preset(net.parameters()).defaults["fused"] is True
    groups = [{"params": [net.weight]}, {"params": [net.bias], "lr": 0.1}]
    assert preset(groups).defaults["fused"] is True
    from_generator = preset([{"params": (p for p in net.parameters())}])  # not used up
    assert from_generator.defaults["fused"] is True
    assert sum(len(g["params"]) for g in from_generator.param_groups) == 2  # adamw: 2 groups
    # A complex parameter (or a tensor subclass, another device) keeps PyTorch's default.
    mixed = [net.weight, torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))]
    assert not preset(mixed).defaults["fused"]


def test_fused_can_be_turned_off_and_is_checked():
    net = torch.nn.Linear(4, 2)
    assert not lk.optim.adam(fused=False)(net.parameters()).defaults["fused"]
    assert lk.optim.adam(fused=False).to_spec()["init_args"]["fused"] is False
    with pytest.raises(TypeError, match="fused must be True, False or None"):
        lk.optim.adam(fused="yes")


def test_fused_adam_trains_like_the_default_implementation():
    def train(preset):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        optimizer = preset(net.parameters())
        g = torch.Generator().manual_seed(1)
        for _ in range(100):
            x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
        return optimizer, torch.cat([p.detach().flatten() for p in net.parameters()])

    fused, fused_weights = train(lk.optim.adam(lr=1e-2))
    plain, plain_weights = train(lk.optim.adam(lr=1e-2, fused=False))
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    torch.manual_seed(0)
    start = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    initial = torch.cat([p.detach().flatten() for p in start.parameters()])
    assert (fused_weights - initial).abs().max() > 0.1  # 100 steps moved the weights
    assert (fused_weights - plain_weights).abs().max() < 1e-5  # the same updates up to rounding


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: lk.optim.cosine(min_lr_ratio=2),
            ValueError,
            r"min_lr_ratio must be a number in \[0, 1\], got 2",
        ),
        (lambda: lk.optim.plateau(patience=2.5), TypeError, r"patience must be an integer >= 0"),
        (lambda: lk.optim.step(step_size=2.5), TypeError, r"step_size must be an integer >= 1"),
    ],
)
def test_more_bad_preset_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
