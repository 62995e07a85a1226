"""ValidationFigures and what TensorBoard gets: scalars (with the gradient norm), figures and
hyperparameters with metrics; figures change no seeded run."""

from __future__ import annotations

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lightkit as lk
from helpers import row_images


def _events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_tensorboard_gets_scalars_figures_and_hparams(tmp_path):
    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path, log_every_n_steps=2, enable_progress_bar=False
    )
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16, val_split=0.25))
    events = _events(trainer.logger.log_dir)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "val/loss", "val/acc", "val/f1"} <= scalars
    assert any(tag.startswith("lr-") for tag in scalars)
    norms = [e.value for e in events.Scalars("train/grad_norm")]
    assert len(norms) == trainer.global_step // 2 == 5 and all(v > 0 for v in norms)  # every 2nd
    images = set(events.Tags()["images"])
    assert {"val/confusion_matrix", "val/predictions"} <= images
    assert len(events.Images("val/confusion_matrix")) == 2  # one per validation epoch
    assert events.Images("val/predictions")[0].width > 100
    # hyperparameters with metrics: TensorBoard's HPARAMS tab
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins


def test_segmentation_overlays(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False)
    dm = lk.data.ShapesDataModule(num_samples=40, image_size=16, batch_size=8)
    trainer.fit(lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), 3), datamodule=dm)
    images = set(_events(trainer.logger.log_dir).Tags()["images"])
    assert "val/segmentation" in images and "val/predictions" not in images


def test_seeded_runs_are_identical_with_summary_and_figures(tmp_path):
    weights = []
    for run in range(2):
        trainer = lk.make_trainer(max_epochs=2, seed=0, default_root_dir=tmp_path / str(run),
                                  enable_progress_bar=False)  # fmt: skip
        module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
        trainer.fit(module, datamodule=lk.data.DataModule(row_images(), batch_size=16))
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
