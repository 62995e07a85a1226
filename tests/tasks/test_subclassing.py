"""Subclassing a task the way a user does: overriding Lightning hooks without super() keeps lightkit's
bookkeeping (train/loss per step, val/loss, the metrics, the checkpoint record)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchmetrics.classification import MulticlassAccuracy

import lightkit as lk
from helpers import RecordingLogger, make_blobs, quiet_trainer, tiny_datamodule, tiny_net


def _own_training_step(self, batch, batch_idx):
    x, y = batch
    return F.cross_entropy(self(x), y)


def _own_validation_step(self, batch, batch_idx):
    loss = self.shared_step(batch, "val")
    self.log("val/custom", 1.0)
    return loss  # a bare tensor, not lightkit's {"loss", "preds"}


# hook name -> a user's override that does not call super()
OVERRIDES = {
    "setup": lambda self, stage: None,
    "on_fit_start": lambda self: None,
    "on_train_epoch_start": lambda self: None,
    "on_train_epoch_end": lambda self: None,
    "on_validation_epoch_start": lambda self: None,
    "on_validation_epoch_end": lambda self: None,
    "on_train_batch_end": lambda self, outputs, batch, batch_idx: None,
    "on_validation_batch_end": lambda self, outputs, batch, batch_idx, dataloader_idx=0: None,
    "on_save_checkpoint": lambda self, checkpoint: None,
    "on_load_checkpoint": lambda self, checkpoint: None,
    "configure_callbacks": lambda self: [],  # make_trainer still adds the bookkeeping
    "training_step": _own_training_step,
    "validation_step": _own_validation_step,
}


@pytest.mark.parametrize("hook", sorted(OVERRIDES))
def test_overriding_a_hook_without_super_keeps_the_bookkeeping(hook, tmp_path):
    Task = type(f"Task_{hook}", (lk.ClassificationModule,), {hook: OVERRIDES[hook]})
    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, logger=logger, log_every_n_steps=1)
    L.seed_everything(0)
    module = Task(tiny_net(), num_classes=3)
    trainer.fit(module, datamodule=tiny_datamodule())

    assert len(logger.metrics["train/loss"]) == trainer.global_step  # one point per step
    for name in ("train/loss", "val/loss", "val/acc", "val/f1"):
        assert name in trainer.callback_metrics, f"{name} lost when {hook} is overridden"
    assert trainer.callback_metrics["val/loss"] < 1.1  # a real mean (3 classes: ln 3 ≈ 1.1)
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert checkpoint["lightkit"]["task"].endswith(f"Task_{hook}")
    assert checkpoint["lightkit"]["input_shape"] == [8]


def test_a_plain_trainer_gets_the_bookkeeping_from_configure_callbacks(tmp_path):
    logger = RecordingLogger()
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(lk.ClassificationModule(tiny_net(), num_classes=3), datamodule=tiny_datamodule())
    assert {"train/loss", "val/loss", "val/acc"} <= set(trainer.callback_metrics)
    assert sum(isinstance(c, lk.tasks.TaskBookkeeping) for c in trainer.callbacks) == 1


class LateTask(lk.TaskModule):
    """A user's own task: state set after super().__init__(), metrics built from it."""

    def __init__(self, net: torch.nn.Module, num_classes: int) -> None:
        super().__init__(net, optimizer=lk.optim.adam(lr=1e-2))
        self.num_classes = num_classes
        self.register_buffer("class_weights", torch.ones(num_classes))

    def build_metrics(self):
        return {"acc": MulticlassAccuracy(num_classes=self.num_classes)}

    def compute_loss(self, preds, target):
        return F.cross_entropy(preds, target, weight=self.class_weights)

    def task_outputs(self):
        return lk.TaskOutputs("multiclass", num_classes=self.num_classes)


def test_metrics_may_use_state_set_after_super_init(tmp_path):
    trainer = quiet_trainer(tmp_path)
    module = LateTask(tiny_net(), num_classes=3)
    trainer.fit(module, datamodule=tiny_datamodule())
    assert trainer.callback_metrics["val/acc"] > 0.8
    assert module.val_metrics["val/acc"].num_classes == 3  # built from the subclass's state


def test_a_users_own_task_gets_figures_like_the_built_in_ones(tmp_path):
    images = torch.utils.data.TensorDataset(torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,)))
    net = torch.nn.Sequential(torch.nn.Flatten(), tiny_net(features=64))
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    trainer.fit(LateTask(net, num_classes=3), datamodule=lk.data.DataModule(images, val_split=0.5))
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"val/confusion_matrix", "val/predictions"} <= set(events.Tags()["images"])


def test_predict_step_splits_pairs_with_unpack_batch():
    class DictBatches(lk.ClassificationModule):
        def unpack_batch(self, batch):
            return batch["x"], batch["y"]

    module = DictBatches(tiny_net(), num_classes=3).eval()
    x = make_blobs(4).tensors[0]
    out = module.predict_step({"x": x, "y": torch.zeros(4, dtype=torch.long)}, 0)
    assert out.shape == (4, 3) and torch.allclose(out.sum(1), torch.ones(4))


def _returns_none(self, batch, batch_idx):
    self.shared_step(batch, "val")  # and returns nothing, as Lightning allows


def _returns_a_dict_without_loss(self, batch, batch_idx):
    return {"val_loss": self.shared_step(batch, "val")}


@pytest.mark.parametrize("step", [_returns_none, _returns_a_dict_without_loss])
def test_a_validation_step_that_returns_no_loss_still_logs_val_loss_and_metrics(step, tmp_path):
    Task = type("Task", (lk.ClassificationModule,), {"validation_step": step})
    trainer = quiet_trainer(tmp_path)
    trainer.fit(Task(tiny_net(), num_classes=3), datamodule=tiny_datamodule())
    assert {"val/loss", "val/acc", "val/f1"} <= set(trainer.callback_metrics)


class _Reads(L.Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.seen.append(float(pl_module.val_metrics.compute()["val/acc"]))


def test_epoch_end_hooks_and_callbacks_can_still_read_the_metrics(tmp_path):
    seen_by_module: list[float] = []

    class Task(lk.ClassificationModule):
        def on_validation_epoch_end(self):
            if not self.trainer.sanity_checking:
                seen_by_module.append(float(self.val_metrics.compute()["val/acc"]))

    reader = _Reads()
    trainer = quiet_trainer(tmp_path, callbacks=[reader])
    L.seed_everything(0)
    trainer.fit(
        Task(tiny_net(), num_classes=3, optimizer=lk.optim.adam(lr=1e-2)),
        datamodule=tiny_datamodule(),
    )
    logged = float(trainer.callback_metrics["val/acc"])
    assert reader.seen[-1] == pytest.approx(logged) and seen_by_module[-1] == pytest.approx(logged)
    assert logged > 0.5
