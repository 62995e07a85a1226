"""ModelCheckpoint: paths read back from a checkpoint's callback state never leave the run folder."""

from __future__ import annotations

from pathlib import Path

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
