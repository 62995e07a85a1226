"""Task options: gradient checkpointing, channels_last and torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lightkit as lk


def _grads_and_buffers(module: nn.Module, x: torch.Tensor, target: torch.Tensor, task):
    module.train()
    loss = task.compute_loss(module(x), target)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    buffers = {n: b.clone() for n, b in module.named_buffers()}
    return loss.detach(), grads, buffers


NETS = {
    "unet": (lambda: lk.models.UNet(3, 3, base=8, depth=2), (4, 3, 16, 16), "seg"),
    "convnet": (lambda: lk.models.ConvNet(3, 3), (4, 3, 16, 16), "cls"),
    "mlp": (lambda: lk.models.MLP(12, 3, hidden=(16, 16), dropout=0.3), (4, 12), "cls"),
    "sequential": (
        lambda: nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3)),
        (4, 12),
        "cls",
    ),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_gradient_checkpointing_gives_the_same_gradients_and_buffers(name):
    build, shape, kind = NETS[name]
    torch.manual_seed(0)
    net = build()
    x = torch.randn(*shape)
    make = (
        (lambda n, **kw: lk.SegmentationModule(n, 3, **kw))
        if kind == "seg"
        else (lambda n, **kw: lk.ClassificationModule(n, 3, **kw))
    )
    target = torch.randint(0, 3, (4, 16, 16) if kind == "seg" else (4,))
    plain = make(copy.deepcopy(net))
    ckpt = make(copy.deepcopy(net), gradient_checkpointing=True)
    torch.manual_seed(1)  # same dropout masks in both runs
    loss_a, grads_a, bufs_a = _grads_and_buffers(plain, x, target, plain)
    torch.manual_seed(1)
    loss_b, grads_b, bufs_b = _grads_and_buffers(ckpt, x, target, ckpt)
    torch.testing.assert_close(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for key in grads_a:
        torch.testing.assert_close(grads_a[key], grads_b[key], rtol=1e-5, atol=1e-6)
    for key in bufs_a:  # BatchNorm statistics are updated once, not twice
        torch.testing.assert_close(bufs_a[key], bufs_b[key])


def test_gradient_checkpointing_needs_findable_blocks():
    class Opaque(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="gradient_checkpointing=True needs a net whose blocks"):
        lk.ClassificationModule(Opaque(), 3, gradient_checkpointing=True)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    net = lk.models.ConvNet(3, 4)
    plain = lk.ClassificationModule(copy.deepcopy(net), 4).eval()
    fast = lk.ClassificationModule(copy.deepcopy(net), 4, channels_last=True).eval()
    conv = fast.net.features[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)


def test_compiled_and_plain_modules_share_checkpoint_keys():
    net = lk.models.MLP(8, 3)
    compiled = lk.ClassificationModule(net, 3, compile=True)
    keys = set(compiled.state_dict())
    assert keys == set(lk.ClassificationModule(lk.models.MLP(8, 3), 3).state_dict())
    assert not any("_orig_mod" in k for k in keys)


@pytest.mark.slow
def test_compiled_module_trains_and_its_checkpoint_loads_into_a_plain_one(tmp_path, blobs):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3, compile=True)
    trainer = lk.make_trainer(
        max_epochs=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=32))
    path = trainer.checkpoint_callback.best_model_path
    plain = lk.ClassificationModule.load_from_checkpoint(path, compile=False).eval()
    x = torch.randn(5, 8)
    torch.testing.assert_close(plain(x), module.eval()(x), rtol=1e-5, atol=1e-5)
