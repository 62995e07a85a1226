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


def _ink(image: torch.Tensor) -> torch.Tensor:
    """Where a figure is not white (text, cells, frames)."""
    return (image < 0.95).any(0)


def test_the_confusion_matrix_names_its_rows_and_counts_its_cells():
    from lightkit.callbacks.figures import confusion_image

    matrix = torch.tensor([[30, 2, 1], [4, 25, 6], [0, 3, 40]])
    plain = confusion_image(matrix, class_names=None)
    named = confusion_image(matrix, class_names=["cat", "dog", "a rather long class name"])
    assert named.shape[0] == 3 and named.shape[2] > plain.shape[2]  # a wider margin for names
    left = named.shape[2] - plain.shape[2]
    assert _ink(named[:, 40:, : left - 4]).any()  # the row labels are drawn
    # cells show their counts: a one-colour cell would have no other ink than its fill
    cell = named[
        :, 30 + 10 : 30 + 75, plain.shape[2] - 256 + left + 10 : plain.shape[2] - 256 + left + 75
    ]
    assert cell.flatten(1).unique(dim=1).shape[1] > 2
    tiny = confusion_image(torch.ones(100, 100, dtype=torch.long))  # cells of 2 px: no text
    assert tiny.shape == (3, 200, 200)


def test_prediction_grids_caption_each_image_with_the_predicted_class():
    from lightkit.callbacks.figures import prediction_image

    x = torch.zeros(2, 1, 32, 32)
    target, predicted = torch.tensor([0, 1]), torch.tensor([0, 0])
    grid = prediction_image(x, target, predicted, class_names=["cat", "dog"])
    tile = 2 + 70  # grid padding + framed, upscaled image width
    captions = grid[:, 2 + 70 : 2 + 70 + 27]  # the strips under the images
    right, wrong = captions[:, :, 2:tile], captions[:, :, tile + 2 : 2 * tile]
    green, red = torch.tensor([0x1A, 0x7F, 0x33]) / 255, torch.tensor([0xC0, 0x14, 0x1A]) / 255

    def has(colour, region):
        return ((region - colour[:, None, None]).abs().amax(0) < 0.1).any()

    assert has(green, right) and not has(red, right)
    assert has(red, wrong) and _ink(wrong[:, 13:]).any()  # and the true class on a second line
    assert not _ink(right[:, 13:]).any()  # right: one line only


def test_the_callback_draws_the_modules_class_names(tmp_path, monkeypatch):
    from lightkit.callbacks import figures

    seen = []
    original = figures.confusion_image
    monkeypatch.setattr(
        figures,
        "confusion_image",
        lambda matrix, class_names=None: (
            seen.append(class_names) or original(matrix, class_names=class_names)
        ),
    )
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False)
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4,)), 3)
    dm = lk.data.DataModule(
        row_images(), batch_size=16, val_split=0.25, class_names=["a", "b", "c"]
    )
    trainer.fit(module, datamodule=dm)
    assert seen == [["a", "b", "c"]]
