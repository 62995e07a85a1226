"""load_from_checkpoint (tasks/_loading.py): a reloaded module says what it was built from."""

from __future__ import annotations

import lightkit as lk
from helpers import make_blobs, quiet_trainer


def test_reloaded_hparams_keep_the_net_optimizer_and_scheduler_specs(tmp_path):
    module = lk.ClassificationModule(
        lk.models.MLP(8, 3),
        num_classes=3,
        optimizer=lk.optim.adamw(lr=3e-3),
        scheduler=lk.optim.cosine(),
    )
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), val_split=0.25))
    loaded = lk.ClassificationModule.load_from_checkpoint(
        trainer.checkpoint_callback.best_model_path
    )
    for name in ("net", "optimizer", "scheduler"):
        assert loaded.hparams[name] == module.hparams[name], name
    assert loaded.hparams["optimizer"]["init_args"]["lr"] == 3e-3
    assert loaded.hparams["scheduler"]["class_path"] == "lightkit.optim.cosine"


def test_a_loaded_module_does_not_carry_a_mid_epoch_loss_sum_into_a_new_fit(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), num_classes=3)
    trainer = quiet_trainer(tmp_path, max_steps=3, checkpoint_every_n_steps=3, logger=False)
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(320), val_split=0.2))
    last = trainer.checkpoint_callback.dirpath + "/last.ckpt"
    loaded = lk.ClassificationModule.load_from_checkpoint(last)
    assert loaded._task_state.resumed_loss_sum is None  # a fresh fit starts its own epoch mean
