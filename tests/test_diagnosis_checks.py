"""lk.diagnose's model checks before training: batch independence, loss at init, activations."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _finding(module, data: TensorDataset, check: str, batch_size: int = 32) -> lk.diagnosis.Finding:
    dm = lk.data.DataModule(data, batch_size=batch_size, val_split=0)
    report = lk.diagnose(module, dm, overfit_steps=2, lr_test=False, default_root_dir="unused")
    (found,) = [f for f in report.findings if f.check == check]
    return found


def _mlp(hidden: tuple[int, ...] = (32,), seed: int = 0) -> lk.models.MLP:
    torch.manual_seed(seed)
    return lk.models.MLP(8, 3, hidden=hidden)


class Lambda(nn.Module):
    """A linear layer with ``fn`` applied to its input: plants a fault in the forward."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.fn(x))


# --- batch_independence ---------------------------------------------------------------------------

MIXERS = {
    "centred over the batch": lambda x: x - x.mean(0),
    "normalized over dim 0": lambda x: F.normalize(x, dim=0),
    "transposed by a wrong reshape": lambda x: x.t().reshape(len(x), -1),
    "softmax over dim 0": lambda x: x.softmax(0),
}


@pytest.mark.parametrize("fault", list(MIXERS))
def test_a_forward_that_mixes_samples_is_an_error(fault):
    found = _finding(lk.ClassificationModule(Lambda(MIXERS[fault]), 3), make_blobs(64),
                     "batch_independence")  # fmt: skip
    assert found.severity == "error", found
    assert "when only sample 0's input changed" in found.message
    assert "mixes samples across the batch axis" in found.message
    assert "not the batch" in found.advice and "x.flatten(1)" in found.advice


def test_a_gradient_that_crosses_samples_is_an_error_even_when_the_forward_does_not():
    # Forward: x + 0 exactly; backward: every sample's output gets a share of every input.
    leak = Lambda(lambda x: x + (x.mean(0) - x.mean(0).detach()))
    found = _finding(lk.ClassificationModule(leak, 3), make_blobs(64), "batch_independence")
    assert found.severity == "error", found
    assert "the gradient of sample 31's output reaches the inputs of 31 other" in found.message


def test_an_mlp_and_a_batchnorm_net_are_batch_independent():
    found = _finding(lk.ClassificationModule(_mlp(), 3), make_blobs(64), "batch_independence")
    assert found.severity == "ok" and "no gradient crosses between samples" in found.message
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    x = make_blobs(64).tensors[0][:4]
    changed = x.clone()
    changed[0] += 1
    assert not torch.allclose(bn(x)[1:], bn(changed)[1:])  # train mode mixes: eval must be used
    found = _finding(lk.ClassificationModule(bn, 3), make_blobs(64), "batch_independence")
    assert found.severity == "ok", found


def test_batchnorm_without_running_stats_is_named_in_the_advice():
    bn = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, track_running_stats=False),
                       nn.Linear(16, 3))  # fmt: skip
    found = _finding(lk.ClassificationModule(bn, 3), make_blobs(64), "batch_independence")
    assert found.severity == "error" and "track_running_stats=False" in found.advice


class Tokens(nn.Module):
    """Token ids -> class logits; ``mix`` subtracts the batch mean (a fault)."""

    def __init__(self, mix: bool) -> None:
        super().__init__()
        self.mix = mix
        self.embed = nn.Embedding(10, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids).mean(1)
        return self.head(h - h.mean(0) if self.mix else h)


@pytest.mark.parametrize("mix", [False, True])
def test_integer_inputs_get_the_forward_check_only(mix):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randint(0, 10, (64, 5), generator=g), torch.arange(64) % 3)
    found = _finding(lk.ClassificationModule(Tokens(mix), 3), data, "batch_independence")
    if mix:
        assert found.severity == "error" and "sample 0's input changed" in found.message
    else:
        assert found.severity == "ok" and "no gradient check: the inputs are not floats" in (
            found.message
        )


def test_a_batch_of_one_is_skipped():
    found = _finding(lk.ClassificationModule(Lambda(MIXERS["centred over the batch"]), 3),
                     make_blobs(8), "batch_independence", batch_size=1)  # fmt: skip
    assert found.severity == "ok" and found.message.startswith("skipped: ")


# --- init_loss ------------------------------------------------------------------------------------


def _plain_ce(net: nn.Module, data: TensorDataset) -> tuple[float, float]:
    """The cross-entropy of ``net`` on all of ``data`` and the entropy of its labels."""
    x, y = data.tensors
    with torch.no_grad():
        loss = float(F.cross_entropy(net(x), y))
    p = torch.bincount(y).float() / len(y)
    return loss, float(-(p * p.log()).sum())


def test_a_default_init_gives_a_loss_near_ln_c_and_the_numbers_are_right():
    data = make_blobs(64)
    net = _mlp()
    loss, entropy = _plain_ce(net, data)
    found = _finding(lk.ClassificationModule(net, 3), data, "init_loss", batch_size=64)
    assert found.severity == "ok", found
    assert f"loss at init {loss:.4g} (mean over 1 batch(es)" in found.message
    assert f"ln 3 = {math.log(3):.4g}" in found.message
    assert f"label frequencies {entropy:.4g}" in found.message


def test_a_huge_output_layer_is_a_warning_with_the_prior_as_advice():
    data = make_blobs(64)
    net = _mlp()
    with torch.no_grad():
        net.layers[-1].weight.mul_(100)
    loss, _ = _plain_ce(net, data)
    assert loss > 2 * math.log(3)
    found = _finding(lk.ClassificationModule(net, 3), data, "init_loss", batch_size=64)
    assert found.severity == "warning", found
    assert f"loss at init {loss:.4g}" in found.message
    assert f"{loss / math.log(3):.1f}× the uniform loss" in found.message
    assert "nn.init.zeros_(net.layers.1.weight)" in found.advice
    prior = ", ".join(f"{p:.2f}" for p in (torch.bincount(data.tensors[1]) / 64).tolist())
    assert "net.layers.1.bias.data = torch.log(prior)" in found.advice and prior in found.advice


def test_the_module_loss_options_do_not_move_the_init_loss():
    data = make_blobs(64)
    plain = _finding(lk.ClassificationModule(_mlp(), 3), data, "init_loss", batch_size=64)
    dressed = lk.ClassificationModule(_mlp(), 3, label_smoothing=0.3, class_weights=[1.0, 5.0, 9.0])
    found = _finding(dressed, data, "init_loss", batch_size=64)
    assert found.severity == "ok" and found.message == plain.message


def test_binary_init_loss_is_compared_with_ln_2_and_the_positive_rate():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (torch.arange(64) % 4 == 0).float()  # a quarter positive
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.manual_seed(0)
    found = _finding(lk.BinaryClassificationModule(nn.Linear(8, 1)), TensorDataset(x, y),
                     "init_loss")  # fmt: skip
    assert found.severity == "ok", found
    assert f"ln 2 = {math.log(2):.4g}" in found.message and f"{entropy:.4g}" in found.message
    big = nn.Linear(8, 1)
    with torch.no_grad():
        big.weight.mul_(100)
    found = _finding(lk.BinaryClassificationModule(big), TensorDataset(x, y), "init_loss")
    assert found.severity == "warning", found
    assert "net.bias.data = torch.logit(p)" in found.advice and "0.25" in found.advice


def test_segmentation_leaves_ignored_pixels_out():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 6, 6, generator=g)
    masks = torch.randint(0, 3, (8, 6, 6), generator=g)
    masks[:, 0] = 255
    torch.manual_seed(0)
    net = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        loss = float(F.cross_entropy(net(x), masks, ignore_index=255))
    module = lk.SegmentationModule(net, 3, ignore_index=255)  # ce+dice: not ln 3 comparable
    found = _finding(module, TensorDataset(x, masks), "init_loss", batch_size=8)
    assert found.severity == "ok" and f"loss at init {loss:.4g}" in found.message


def test_regression_reports_the_loss_without_an_expectation():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 1, generator=g)
    found = _finding(lk.RegressionModule(nn.Linear(8, 1)), TensorDataset(x, y), "init_loss")
    assert found.severity == "ok" and "no expected value for outputs of kind 'values'" in (
        found.message
    )


# --- activations ----------------------------------------------------------------------------------


def test_a_layer_of_dead_relus_is_named():
    net = _mlp(hidden=(32, 16))
    with torch.no_grad():
        net.layers[1][0].bias.fill_(-100.0)  # the second hidden layer never fires
    found = _finding(lk.ClassificationModule(net, 3), make_blobs(64), "activations")
    assert found.severity == "warning", found
    assert found.message.startswith("net.layers.1.1 (ReLU): 100% of 16 units never fire")
    assert "net.layers.0.1" not in found.message  # the first layer is alive
    assert "kaiming" in found.advice and "LeakyReLU" in found.advice


def test_a_healthy_net_has_live_activations():
    found = _finding(lk.ClassificationModule(_mlp(hidden=(32, 16)), 3), make_blobs(64),
                     "activations")  # fmt: skip
    assert found.severity == "ok" and found.message.startswith("2 activation call(s) over 64")


class Reused(nn.Module):
    """One nn.ReLU called twice; the second call's input is pushed far below zero."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second, self.head = nn.Linear(8, 32), nn.Linear(32, 16), nn.Linear(16, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.second(self.act(self.first(x))) - 100))


def test_a_reused_relu_is_counted_per_call():
    found = _finding(lk.ClassificationModule(Reused(), 3), make_blobs(64), "activations")
    assert found.severity == "warning", found
    assert found.message.startswith("net.act (ReLU, call 2): 100% of 16 units never fire")
    assert "call 1" not in found.message


def test_dead_channels_and_saturated_sigmoids_are_found():
    conv = nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([-100.0, -100.0, -100.0, 0.0]))  # 3 of 4 channels dead
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    g = torch.Generator().manual_seed(0)
    images = TensorDataset(torch.randn(32, 1, 6, 6, generator=g), torch.arange(32) % 3)
    found = _finding(lk.ClassificationModule(net, 3), images, "activations")
    assert (
        found.severity == "warning" and "net.1 (ReLU): 75% of 4 units never fire" in found.message
    )

    linear = nn.Linear(8, 16)
    with torch.no_grad():
        linear.weight.mul_(100)
    net = nn.Sequential(linear, nn.Sigmoid(), nn.Linear(16, 3))
    found = _finding(lk.ClassificationModule(net, 3), make_blobs(64), "activations")
    assert found.severity == "warning" and "net.1 (Sigmoid):" in found.message
    assert "units saturate on >= 90% of their outputs" in found.message and "xavier" in found.advice


def test_functional_activations_are_said_to_be_unwatched():
    found = _finding(lk.ClassificationModule(Lambda(F.relu), 3), make_blobs(64), "activations")
    assert found.severity == "ok" and "F.relu cannot be watched" in found.message


class Sequences(nn.Module):
    """N×T×8 sequences through a Linear (units last) or N×8×T through a Conv1d (units at dim 1)."""

    def __init__(self, conv: bool) -> None:
        super().__init__()
        self.conv = conv
        self.layer = nn.Conv1d(8, 4, 1) if conv else nn.Linear(8, 4)
        with torch.no_grad():
            self.layer.bias.copy_(torch.tensor([-100.0, -100.0, -100.0, 0.0]))
        self.act = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.layer(x.transpose(1, 2) if self.conv else x))
        return self.head(h.mean(2 if self.conv else 1))


@pytest.mark.parametrize("conv", [False, True])
def test_units_of_sequences_are_channels_after_a_conv1d_and_features_after_a_linear(conv):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 5, 8, generator=g), torch.arange(32) % 3)
    found = _finding(lk.ClassificationModule(Sequences(conv), 3), data, "activations")
    assert found.severity == "warning" and "net.act (ReLU): 75% of 4 units never fire" in (
        found.message
    )
