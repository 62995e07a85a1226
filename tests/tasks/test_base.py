"""TaskModule (through ClassificationModule): checkpoints and their hyperparameters, optimizer and
scheduler wiring, bad arguments."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import mlp_task


def test_best_and_last_checkpoints_reload_to_identical_outputs(blobs, fast_trainer_kwargs):
    dm = lk.data.DataModule(blobs, batch_size=32)
    module = mlp_task()
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
    module = mlp_task(optimizer=lk.optim.sgd(lr=0.1), scheduler=lk.optim.step(step_size=2))
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


def test_partial_optimizer_and_scheduler_survive_a_checkpoint(tmp_path, blobs):
    module = lk.ClassificationModule(
        lk.models.MLP(8, 3),
        3,
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2),
    )
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=32))
    reloaded = lk.ClassificationModule.load_from_checkpoint(
        trainer.checkpoint_callback.best_model_path
    )
    optimizer = reloaded.optimizer_factory(reloaded.parameters())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.05
    scheduler = reloaded.scheduler_factory(optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR) and scheduler.step_size == 2


def test_plateau_scheduler_is_wired_to_val_loss(blobs):
    module = mlp_task(scheduler=lk.optim.plateau(patience=1))
    trainer_stub = type(
        "T", (), {"estimated_stepping_batches": 10, "limit_val_batches": 1.0, "datamodule": None}
    )()
    module.trainer = trainer_stub  # type: ignore[assignment]
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/loss"
    plain = mlp_task(scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt))
    plain.trainer = trainer_stub  # type: ignore[assignment]
    assert plain.configure_optimizers()["lr_scheduler"]["monitor"] == "val/loss"


def test_plateau_follows_train_loss_without_validation(tmp_path, blobs):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3, scheduler=lk.optim.plateau(patience=1))
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, logger=False)
    with pytest.warns(
        UserWarning, match="ReduceLROnPlateau follows train/loss instead of val/loss"
    ):
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, val_split=0.0))
    assert trainer.lr_scheduler_configs[0].monitor == "train/loss"
    assert trainer.current_epoch == 2


def test_net_must_be_a_module():
    with pytest.raises(TypeError, match=r"net must be a torch\.nn\.Module, got str"):
        lk.ClassificationModule("resnet", num_classes=3)


def test_optimizer_must_be_callable():
    with pytest.raises(TypeError, match="optimizer must be a callable"):
        lk.ClassificationModule(nn.Linear(8, 3), num_classes=3, optimizer=0.01)


def test_batch_that_is_not_a_pair_is_explained():
    with pytest.raises(ValueError, match="expected each batch to be an \\(inputs, target\\) pair"):
        mlp_task().unpack_batch([torch.zeros(2, 8)])
