"""FineTuning and lk.fine_tune: the head first, then everything at discriminative learning rates."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

import lightkit as lk
from helpers import DIGITS_MLP_SECTIONS, flat_weights, make_blobs
from lightkit.callbacks import FineTuning


class Snapshots(Callback):
    """The body's and the head's weights at the end of each training epoch."""

    def __init__(self):
        self.body, self.head = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        net = pl_module.net
        self.body.append(
            torch.cat([p.detach().flatten().clone() for p in net.layers[:-1].parameters()])
        )
        self.head.append(
            torch.cat([p.detach().flatten().clone() for p in net.layers[-1].parameters()])
        )


def _mlp():
    torch.manual_seed(0)
    return lk.ClassificationModule(
        lk.models.MLP(8, 3, hidden=[16, 16]), 3, optimizer=lk.optim.adamw(lr=1e-2)
    )


def _options(tmp_path, **kwargs):
    return dict(default_root_dir=tmp_path, logger=False, enable_progress_bar=False, verbose=False,
                enable_model_summary=False, **kwargs)  # fmt: skip


def test_the_head_trains_alone_first_then_everything_at_a_lower_body_lr(tmp_path):
    module, snaps = _mlp(), Snapshots()
    start_body = torch.cat(
        [p.detach().flatten().clone() for p in module.net.layers[:-1].parameters()]
    )
    dm = lk.data.DataModule(make_blobs(128), batch_size=32)
    trainer = lk.fine_tune(
        module, dm, epochs=3, freeze_epochs=1, callbacks=[snaps], **_options(tmp_path)
    )
    torch.testing.assert_close(snaps.body[0], start_body, rtol=0, atol=0)  # frozen in epoch 0
    assert not torch.equal(snaps.body[1], snaps.body[0])  # trained from epoch 1
    assert not torch.equal(snaps.head[0], snaps.head[1])
    lrs = sorted(g["lr"] for g in trainer.optimizers[0].param_groups)
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-2)  # body 0.1x the head
    assert all(p.requires_grad for p in module.parameters())  # handed back trainable


def test_adamw_puts_biases_and_norms_in_a_group_without_weight_decay(tmp_path):
    module = lk.ClassificationModule(
        lk.models.ConvNet(1, 3, widths=(4,)), 3, optimizer=lk.optim.adamw()
    )
    optimizer = module.configure_optimizers()
    flat = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    decayed = [g for g in optimizer.param_groups if g["weight_decay"] == 0.01]
    assert flat and decayed
    assert all(p.ndim <= 1 for g in flat for p in g["params"])
    assert all(p.ndim > 1 for g in decayed for p in g["params"])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.parameters()))
    plain = lk.ClassificationModule(
        lk.models.ConvNet(1, 3, widths=(4,)),
        3,
        optimizer=lk.optim.adamw(filter_bias_and_norm=False),
    ).configure_optimizers()
    assert len(plain.param_groups) == 1 and plain.param_groups[0]["weight_decay"] == 0.01
    assert lk.optim.adamw().to_spec()["init_args"]["filter_bias_and_norm"] is True


def test_a_killed_fine_tuning_run_resumes_bit_identically(tmp_path):
    dm = lambda: lk.data.DataModule(make_blobs(128), batch_size=32)  # noqa: E731
    whole = _mlp()
    lk.fine_tune(whole, dm(), epochs=4, freeze_epochs=2, **_options(tmp_path / "whole"))
    # The same run stopped after the frozen epoch 0 (max_epochs=1), then resumed to the end.
    part = _mlp()
    lk.fit(
        part,
        dm(),
        max_epochs=1,
        callbacks=[FineTuning(freeze_epochs=2)],
        **_options(tmp_path / "part"),
    )
    resumed = _mlp()
    lk.fine_tune(
        resumed, dm(), epochs=4, freeze_epochs=2, resume=True, **_options(tmp_path / "part")
    )
    torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)


def test_batchnorm_is_kept_or_frozen_as_asked(tmp_path):
    def run(train_bn):
        torch.manual_seed(0)
        module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4,)), 3)
        bn = next(m for m in module.net.modules() if isinstance(m, nn.BatchNorm2d))
        before = bn.running_mean.clone(), bn.weight.detach().clone()
        x = torch.randn(64, 1, 8, 8) + 2
        dm = lk.data.DataModule(
            torch.utils.data.TensorDataset(x, torch.randint(0, 3, (64,))), batch_size=16
        )
        lk.fit(module, dm, max_epochs=1, callbacks=[FineTuning(freeze_epochs=1, train_bn=train_bn)],
               **_options(tmp_path / str(train_bn)))  # fmt: skip
        return before, (bn.running_mean, bn.weight.detach())

    (mean0, weight0), (mean1, weight1) = run(train_bn=False)
    torch.testing.assert_close(mean1, mean0, rtol=0, atol=0)
    torch.testing.assert_close(weight1, weight0, rtol=0, atol=0)
    (mean0, weight0), (mean1, weight1) = run(train_bn=True)
    assert not torch.equal(mean1, mean0) and not torch.equal(weight1, weight0)


def test_bad_options_say_what_to_pass(tmp_path):
    dm = lk.data.DataModule(make_blobs(64), batch_size=32)
    headless = lk.ClassificationModule(nn.Sequential(nn.Conv1d(1, 3, 8), nn.Flatten()), 3)
    with pytest.raises(
        ValueError, match=r"cannot find the head of Sequential.*pass head=.*\['0', '1'\]"
    ):
        lk.fine_tune(headless, dm, epochs=2, **_options(tmp_path))
    with pytest.raises(ValueError, match=r"no submodule 'classifier'.*\['layers'\]"):
        lk.fine_tune(_mlp(), dm, epochs=2, head="classifier", **_options(tmp_path))
    with pytest.raises(ValueError, match=r"freeze_epochs=2 leaves no epoch of the 2"):
        lk.fine_tune(_mlp(), dm, epochs=2, freeze_epochs=2, **_options(tmp_path))
    with pytest.raises(ValueError, match=r"body_lr_ratio must be a number in \(0, 1\]"):
        FineTuning(body_lr_ratio=0.0)
    with pytest.raises(ValueError, match=r"freeze_epochs must be an integer >= 0"):
        FineTuning(freeze_epochs=-1)
    with pytest.raises(TypeError, match=r"give the number of epochs as epochs="):
        lk.fine_tune(_mlp(), dm, max_epochs=3)


def test_fine_tuning_works_from_a_config(tmp_path):
    from lightkit.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(
        """
trainer:
  max_epochs: 2
  limit_train_batches: 2
  limit_val_batches: 1
  enable_progress_bar: false
  callbacks:
    - class_path: lightkit.callbacks.FineTuning
      init_args: {freeze_epochs: 1, body_lr_ratio: 0.2}
"""
        + DIGITS_MLP_SECTIONS
    )
    assert (
        main(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'runs'}"])
        == 0
    )
    checkpoint = torch.load(
        tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert sorted(g["lr"] for g in groups) == pytest.approx([0.2e-3, 1e-3])


def test_an_interrupted_fine_tuning_run_leaves_nothing_frozen(tmp_path):
    module = _mlp()

    class Boom(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            raise RuntimeError("boom")  # mid-way through the frozen epoch

    dm = lk.data.DataModule(make_blobs(64), batch_size=32)
    with pytest.raises(RuntimeError, match="boom"):
        lk.fit(module, dm, max_epochs=2, callbacks=[FineTuning(freeze_epochs=1), Boom()],
               **_options(tmp_path))  # fmt: skip
    assert all(p.requires_grad for p in module.parameters())
    assert module.lr_multipliers is None


def test_several_devices_get_ddp_that_allows_frozen_parameters():
    from lightkit.fitting import _with_unused_parameters

    assert _with_unused_parameters({"strategy": "ddp"}) == "ddp_find_unused_parameters_true"
    assert (
        _with_unused_parameters({"strategy": "ddp_spawn"})
        == "ddp_spawn_find_unused_parameters_true"
    )
    assert _with_unused_parameters({"devices": 2}) == "ddp_find_unused_parameters_true"
    assert _with_unused_parameters({"num_nodes": 2}) == "ddp_find_unused_parameters_true"
    assert _with_unused_parameters({"devices": 1}) == "auto"
    assert _with_unused_parameters({"strategy": "fsdp"}) == "fsdp"


def test_onecycle_keeps_the_groups_learning_rate_ratios(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), 3, optimizer=lk.optim.adam(lr=1e-2),
                                     scheduler=lk.optim.onecycle(max_lr=0.1))  # fmt: skip
    trainer = lk.fine_tune(module, lk.data.DataModule(make_blobs(64), batch_size=32), epochs=2,
                           body_lr_ratio=0.1, **_options(tmp_path))  # fmt: skip
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert sorted(g["max_lr"] for g in scheduler.optimizer.param_groups) == pytest.approx(
        [0.01, 0.1]
    )


def test_layer_decay_gives_each_block_a_rate_by_its_depth():
    module = lk.ClassificationModule(lk.models.backbone("resnet18", 5), 5)
    multipliers = FineTuning(body_lr_ratio=0.1, layer_decay=0.5).multipliers(module)
    blocks = ["layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]  # from the head down
    expected = {f"net.{b}": 0.1 * 0.5**depth for depth, b in enumerate(blocks)}
    assert multipliers == pytest.approx({"net": 0.1 * 0.5**6, **expected, "net.fc": 1.0})
    # A net whose depth sits in one container: it is opened up (MobileNet's features.*).
    module = lk.ClassificationModule(lk.models.backbone("mobilenet_v3_small", 5), 5)
    names = list(FineTuning(layer_decay=0.5).multipliers(module))
    assert names[1] == "net.classifier.0" and names[-2] == "net.features.0"
    assert len([n for n in names if n.startswith("net.features.")]) == 13
    # Without layer_decay the whole body shares one rate.
    assert FineTuning(body_lr_ratio=0.2).multipliers(module) == {
        "net": 0.2,
        "net.classifier.3": 1.0,
    }


def test_fine_tune_with_layer_decay_trains_the_stem_slowest(tmp_path):
    torch.manual_seed(0)
    net = lk.models.ConvNet(1, 10, widths=(8, 16))
    module = lk.ClassificationModule(net, 10, optimizer=lk.optim.adamw(lr=1e-2))
    dm = lk.data.TensorDataModule(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)),
                                  batch_size=16)  # fmt: skip
    trainer = lk.fine_tune(module, dm, epochs=2, freeze_epochs=1, layer_decay=0.5,
                           **_options(tmp_path))  # fmt: skip
    rate = {}
    for group in trainer.optimizers[0].param_groups:
        for param in group["params"]:
            rate[id(param)] = group["initial_lr"] if "initial_lr" in group else group["lr"]
    by_name = {name: rate[id(p)] for name, p in module.named_parameters()}
    stem = next(v for k, v in by_name.items() if k.startswith("net.features.0."))
    head = by_name[next(k for k in by_name if k.startswith("net.head.") and k.endswith("weight"))]
    deepest = max(k for k in by_name if k.startswith("net.features."))
    assert head == pytest.approx(1e-2)
    assert by_name[deepest] == pytest.approx(1e-3)  # body_lr_ratio just below the head
    assert stem < by_name[deepest] / 1.9  # at least one decay step further down
    assert module.lr_multipliers is None  # the module's own value comes back


@pytest.mark.parametrize("value", [0.0, 1.5, -0.5, "0.5", True])
def test_bad_layer_decays_are_named(value):
    with pytest.raises((TypeError, ValueError), match="FineTuning: layer_decay must be"):
        FineTuning(layer_decay=value)
