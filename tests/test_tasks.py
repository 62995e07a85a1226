"""TaskModule and ClassificationModule: training, checkpoints, hyperparameters, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _module(**kwargs) -> lk.ClassificationModule:
    net = lk.models.MLP(8, 3, hidden=(32,))
    return lk.ClassificationModule(net, num_classes=3, **kwargs)


def test_training_lowers_the_loss_and_logs_metrics(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, val_split=0.25, batch_size=32)
    module = _module(optimizer=lk.optim.adam(lr=1e-2))
    trainer = lk.make_trainer(max_epochs=5, **fast_trainer_kwargs)
    before = trainer.validate(module, datamodule=dm, verbose=False)[0]["val/loss"]
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    assert metrics["val/loss"] < 0.5 * before
    assert metrics["val/acc"] > 0.9
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= set(metrics)


def test_accuracy_and_f1_match_torchmetrics_with_one_update_per_batch():
    from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

    metrics = _module().val_metrics
    acc, f1 = MulticlassAccuracy(3, average="micro"), MulticlassF1Score(3, average="macro")
    g = torch.Generator().manual_seed(0)
    for size in (7, 32, 1):
        preds, target = torch.randn(size, 3, generator=g), torch.randint(0, 3, (size,), generator=g)
        metrics.update(preds, target)
        acc.update(preds, target)
        f1.update(preds, target)
    values = metrics.compute()
    assert values["val/acc"] == pytest.approx(float(acc.compute()), abs=1e-6)
    assert values["val/f1"] == pytest.approx(float(f1.compute()), abs=1e-6)
    assert list(metrics.compute_groups.values()) == [["acc", "f1"]]  # one shared update


def test_best_and_last_checkpoints_reload_to_identical_outputs(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, batch_size=32)
    module = _module()
    trainer = lk.make_trainer(max_epochs=3, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=dm)
    ckpt_dir = trainer.checkpoint_callback.dirpath
    best = trainer.checkpoint_callback.best_model_path
    assert best.endswith("best.ckpt")
    last = f"{ckpt_dir}/last.ckpt"

    x = torch.randn(16, 8)
    module.eval()
    # The net is a lightkit model: the checkpoint alone rebuilds it, no net= needed.
    reloaded = lk.ClassificationModule.load_from_checkpoint(last).eval()
    assert isinstance(reloaded.net, lk.models.MLP)
    torch.testing.assert_close(reloaded(x), module(x), rtol=0, atol=0)
    assert reloaded.optimizer_factory == module.optimizer_factory
    best_module = lk.ClassificationModule.load_from_checkpoint(best).eval()
    assert best_module(x).shape == (16, 3)


def test_checkpoint_hyperparameters_are_plain_data(blobs, fast_trainer_kwargs):
    module = _module(optimizer=lk.optim.sgd(lr=0.1), scheduler=lk.optim.step(step_size=2))
    trainer = lk.make_trainer(max_epochs=1, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=64))
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["net"] == {
        "class_path": "lightkit.models.mlp.MLP",
        "init_args": {"in_features": 8, "out_features": 3, "hidden": [32], "dropout": 0.0},
    }
    assert hp["optimizer"]["class_path"] == "lightkit.optim.sgd"
    assert hp["scheduler"] == {
        "class_path": "lightkit.optim.step",
        "init_args": {"step_size": 2, "gamma": 0.1},
    }
    assert hp["num_classes"] == 3


class _CustomNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x)


def test_unrecordable_net_needs_net_argument_on_load(blobs, fast_trainer_kwargs):
    module = lk.ClassificationModule(_CustomNet(), num_classes=3)
    trainer = lk.make_trainer(max_epochs=1, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=64))
    path = trainer.checkpoint_callback.best_model_path
    with pytest.raises(TypeError, match=r"net is required.*load_from_checkpoint"):
        lk.ClassificationModule.load_from_checkpoint(path)
    reloaded = lk.ClassificationModule.load_from_checkpoint(path, net=_CustomNet()).eval()
    x = torch.randn(4, 8)
    torch.testing.assert_close(reloaded(x), module.eval()(x))


class _Digits3(lk.ClassificationModule):
    """A user subclass that builds its own net: only its own arguments are hyperparameters."""

    def __init__(self, hidden: int = 16, lr: float = 1e-3) -> None:
        super().__init__(lk.models.MLP(8, 3, hidden=(hidden,)), 3, optimizer=lk.optim.adam(lr=lr))


def test_subclass_with_its_own_arguments_reloads(blobs, fast_trainer_kwargs):
    module = _Digits3(hidden=24, lr=5e-3)
    assert dict(module.hparams) == {"hidden": 24, "lr": 5e-3}
    trainer = lk.make_trainer(max_epochs=1, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=64))
    reloaded = _Digits3.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert reloaded.net.layers[0][0].out_features == 24


def test_predict_returns_probabilities(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, predict=TensorDataset(torch.randn(10, 8)), batch_size=4)
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    probs = torch.cat(trainer.predict(_module(), datamodule=dm))
    assert probs.shape == (10, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(10))


def test_plateau_scheduler_is_wired_to_val_loss(blobs):
    module = _module(scheduler=lk.optim.plateau(patience=1))
    trainer_stub = type(
        "T", (), {"estimated_stepping_batches": 10, "limit_val_batches": 1.0, "datamodule": None}
    )()
    module.trainer = trainer_stub  # type: ignore[assignment]
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/loss"
    plain = _module(scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt))
    plain.trainer = trainer_stub  # type: ignore[assignment]
    assert plain.configure_optimizers()["lr_scheduler"]["monitor"] == "val/loss"


# --- bad input ------------------------------------------------------------------------------


def _fit(module, dataset, fast_trainer_kwargs, **dm_kwargs):
    trainer = lk.make_trainer(max_epochs=1, logger=False, **fast_trainer_kwargs)
    trainer.fit(module, datamodule=lk.data.DataModule(dataset, **dm_kwargs))


def test_out_of_range_label_names_value_and_batch(fast_trainer_kwargs):
    ds = make_blobs(n=64)
    ds.tensors[1][37] = 7  # num_classes is 3
    with pytest.raises(ValueError, match=r"label 7 at position \d+ of train batch \d .*\[0, 3\)"):
        _fit(_module(), ds, fast_trainer_kwargs, val_split=0.0, batch_size=32)


def test_negative_label_in_validation(fast_trainer_kwargs):
    train, val = make_blobs(n=64), make_blobs(n=16, seed=1)
    val.tensors[1][0] = -1
    with pytest.raises(ValueError, match=r"label -1 at position 0 of val batch 0"):
        _fit(_module(), train, fast_trainer_kwargs, val=val, batch_size=16)


def test_float_labels_are_rejected(fast_trainer_kwargs):
    ds = make_blobs(n=32)
    ds = TensorDataset(ds.tensors[0], ds.tensors[1].float())
    with pytest.raises(TypeError, match=r"integer class indices, got dtype torch\.float32"):
        _fit(_module(), ds, fast_trainer_kwargs, val_split=0.0)


def test_wrong_logit_shape_is_named():
    module = lk.ClassificationModule(nn.Linear(8, 5), num_classes=3)
    with pytest.raises(ValueError, match=r"logits of shape N×3 .* got \(4, 5\)"):
        module.compute_loss(module(torch.randn(4, 8)), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    ("num_classes", "error"),
    [(1, ValueError), (0, ValueError), (2.5, TypeError), (True, TypeError)],
)
def test_bad_num_classes(num_classes, error):
    with pytest.raises(error, match="num_classes must be an integer"):
        lk.ClassificationModule(nn.Linear(8, 3), num_classes=num_classes)


def test_net_must_be_a_module():
    with pytest.raises(TypeError, match=r"net must be a torch\.nn\.Module, got str"):
        lk.ClassificationModule("resnet", num_classes=3)


def test_optimizer_must_be_callable():
    with pytest.raises(TypeError, match="optimizer must be a callable"):
        lk.ClassificationModule(nn.Linear(8, 3), num_classes=3, optimizer=0.01)


def test_batch_that_is_not_a_pair_is_explained():
    with pytest.raises(ValueError, match="expected each batch to be an \\(inputs, target\\) pair"):
        _module().unpack_batch([torch.zeros(2, 8)])
