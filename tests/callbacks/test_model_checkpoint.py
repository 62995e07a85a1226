"""ModelCheckpoint: paths read back from a checkpoint's callback state never leave the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch

from helpers import mlp_fit, mlp_run


def test_paths_in_a_crafted_checkpoint_never_leave_the_run_folder(tmp_path):
    trainer = mlp_run(tmp_path, checkpoint_every_n_steps=2)
    folder = Path(trainer.checkpoint_callback.dirpath)
    precious_file = tmp_path / "precious.ckpt"  # named like a checkpoint, outside the run
    precious_file.write_text("keep")
    precious_dir = tmp_path / "precious_dir"
    precious_dir.mkdir()
    (precious_dir / "data.ckpt").write_text("keep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.ckpt").write_text("keep")
    (folder / "escape").symlink_to(outside, target_is_directory=True)
    # Lexically inside the checkpoint folder (Lightning's own test), really outside it.
    sneaky_dir, sneaky_file = f"{folder}/../../../precious_dir", f"{folder}/../../../precious.ckpt"
    via_link = f"{folder}/escape/victim.ckpt"
    checkpoint = torch.load(folder / "last.ckpt", weights_only=True)
    states = [s for k, s in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert len(states) == 2  # the epoch-end one (top-1 best + last) and the every-N-steps one
    for state in states:
        state.update(dirpath=str(folder), last_model_path=via_link)
    states[0].update(
        best_model_path=sneaky_dir,
        kth_best_model_path=sneaky_dir,
        best_k_models={sneaky_dir: torch.tensor(1e9)},
        best_model_score=torch.tensor(1e9),
        kth_value=torch.tensor(1e9),
        last_model_path=sneaky_file,
    )
    torch.save(checkpoint, folder / "last.ckpt")
    with pytest.warns(UserWarning) as record:
        resumed = mlp_fit(tmp_path, resume=True, max_epochs=5, checkpoint_every_n_steps=2)
    assert resumed.current_epoch == 5  # 3 more epochs: several best, last and step saves
    assert precious_file.read_text() == "keep"
    assert (precious_dir / "data.ckpt").read_text() == "keep"
    assert (outside / "victim.ckpt").read_text() == "keep"
    dropped = " ".join(
        str(w.message) for w in record if "never be read or deleted" in str(w.message)
    )
    for path in (sneaky_dir, sneaky_file, via_link):
        assert repr(path) in dropped
    assert {p.name for p in folder.iterdir()} == {"best.ckpt", "last.ckpt", "escape"}
    assert resumed.checkpoint_callback.best_model_path == str(folder / "best.ckpt")


def test_an_honest_resume_keeps_every_path_and_warns_nothing(tmp_path):
    import warnings

    trainer = mlp_run(tmp_path)
    best = trainer.checkpoint_callback.best_model_path
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        resumed = mlp_fit(tmp_path, resume=True)
    assert not [w for w in record if "never be read or deleted" in str(w.message)]
    callback = resumed.checkpoint_callback
    assert callback.best_model_path == best and list(callback.best_k_models) == [best]


def test_last_ckpt_is_refreshed_every_epoch_even_when_the_monitor_stops_improving(tmp_path):
    import lightkit as lk
    from helpers import flat_weights, make_blobs

    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), 3)
    dm = lk.data.DataModule(make_blobs(128), batch_size=32)
    # mode="max" on a falling val/loss: only the first epoch is ever "best".
    trainer = lk.fit(module, dm, max_epochs=3, mode="max", default_root_dir=tmp_path,
                     logger=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    last = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert best["epoch"] == 0
    assert last["global_step"] == trainer.global_step and last["epoch"] == 2
    saved = torch.cat([v.flatten() for k, v in last["state_dict"].items()])
    torch.testing.assert_close(saved, flat_weights(module), rtol=0, atol=0)


def test_last_ckpt_follows_validation_that_runs_mid_epoch(tmp_path):
    from lightning.pytorch.callbacks import Callback

    import lightkit as lk
    from helpers import make_blobs

    class ValidationSteps(Callback):
        steps: ClassVar[list[int]] = []

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                self.steps.append(trainer.global_step)

    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[16]), 3)
    dm = lk.data.DataModule(make_blobs(256), batch_size=32)  # 7 training batches an epoch
    trainer = lk.fit(module, dm, max_epochs=2, mode="max", val_check_interval=3,
                     callbacks=[ValidationSteps()], default_root_dir=tmp_path, logger=False,
                     enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    last = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert len(ValidationSteps.steps) >= 3
    assert last["global_step"] == ValidationSteps.steps[-1]  # the last validation's, not the best's
