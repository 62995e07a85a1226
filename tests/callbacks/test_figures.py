"""ValidationFigures and what TensorBoard gets: scalars (with the gradient norm), figures and
hyperparameters with metrics; figures change no seeded run; what the figures show (colour bar,
counts and shares, captions) and which images the prediction grid samples."""

from __future__ import annotations

import lightning as L
import pytest
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


def test_the_drawing_functions_are_still_imported_from_figures():
    """The drawing lives in callbacks/_drawing.py; figures re-exports its public names."""
    from lightkit.callbacks import _drawing, figures

    for name in ("PALETTE", "confusion_image", "prediction_image", "segmentation_image"):
        assert getattr(figures, name) is getattr(_drawing, name)
        assert name in figures.__all__
    x = torch.rand(2, 3, 8, 8)
    masks = torch.tensor([0, 1, 2, -1]).repeat(2, 8, 2)  # a pixel of each class, and one ignored
    image = figures.segmentation_image(x, masks, masks.flip(-1), num_classes=3)
    assert image.shape[0] == 3 and image.shape[1] > 2 * 64 and image.shape[2] > 3 * 64  # enlarged
    assert image.min() >= 0 and image.max() <= 1


# --- confusion_image ------------------------------------------------------------------------


def _ink(image: torch.Tensor) -> torch.Tensor:
    """Where a figure is not white (text, cells, frames)."""
    return (image < 0.95).any(0)


def _near(image: torch.Tensor, colour: torch.Tensor, tolerance: float = 1 / 255) -> torch.Tensor:
    return ((image - colour.view(3, 1, 1)).abs() <= tolerance).all(0)


def _matrix_corner(image: torch.Tensor) -> tuple[int, int]:
    """The top-left pixel inside a confusion matrix whose first row is all on the diagonal (a
    pure green cell); the colour bar and its key (on the right) are left out."""
    from lightkit.callbacks._drawing import GREEN

    ys, xs = _near(image[:, :, : image.shape[2] - 130], GREEN).nonzero(as_tuple=True)
    return int(ys.min()), int(xs.min())


def _first_diagonal_cell(image: torch.Tensor, cell: int) -> torch.Tensor:
    top, left = _matrix_corner(image)
    return image[:, top : top + cell - 1, left : left + cell - 1]  # less its grid line


def _text_lines(region: torch.Tensor) -> int:
    """Runs of rows holding anything but the region's fill colour (its top-left pixel)."""
    marked = (~_near(region, region[:, 0, 0], 0.02)).any(1).tolist()
    return sum(1 for i, m in enumerate(marked) if m and (i == 0 or not marked[i - 1]))


def test_confusion_cells_show_the_count_over_the_row_share_when_they_are_large_enough():
    from lightkit.callbacks.figures import confusion_image

    matrix = torch.diag(torch.full((10,), 20))
    default = confusion_image(matrix)  # 10 classes by default: cells of 40 px
    assert _text_lines(_first_diagonal_cell(default, 40)) == 2  # "20" over "100%"
    assert _text_lines(_first_diagonal_cell(confusion_image(matrix, size=250), 25)) == 1  # count
    assert _text_lines(_first_diagonal_cell(confusion_image(matrix, size=150), 15)) == 0
    # the same colours, other counts: only the text differs
    doubled = _first_diagonal_cell(confusion_image(matrix * 2), 40)
    assert not torch.equal(doubled, _first_diagonal_cell(default, 40))


def test_the_confusion_matrix_has_a_colour_bar_from_0_to_100_percent():
    from lightkit.callbacks._drawing import BLUE
    from lightkit.callbacks.figures import confusion_image

    image = confusion_image(torch.tensor([[30, 2, 1], [4, 25, 6], [0, 3, 40]]))
    right = image[:, :, image.shape[2] - 130 :]  # right of the matrix and its "n" column

    def gradient(column: torch.Tensor) -> bool:  # a run of 100 rows going from colour to white
        red = column[0].tolist()
        return any(
            all(a <= b for a, b in zip(red[i : i + 99], red[i + 1 : i + 100], strict=True))
            and len(set(red[i : i + 100])) > 80
            for i in range(len(red) - 100)
        )

    strips = [x for x in range(right.shape[2]) if gradient(right[:, :, x])]
    assert len(strips) >= 16  # two strips (green: right, blue: wrong)
    column = right[:, :, strips[-1] - 4]  # inside the blue strip
    assert _near(column[:, :, None], BLUE, 2 / 255).any()  # 100% is the full colour
    assert (column > 0.97).all(0).any()  # 0% is white
    plain = confusion_image(torch.diag(torch.tensor([30, 25, 40])))
    assert not gradient(plain[:, :, _matrix_corner(plain)[1] + 40])  # the cells have no gradient


def test_the_confusion_matrix_names_rows_and_columns():
    from lightkit.callbacks.figures import confusion_image

    matrix = torch.diag(torch.tensor([30, 25, 40]))
    plain = confusion_image(matrix)
    named = confusion_image(matrix, class_names=["cat", "dog", "a rather long class name"])
    assert named.shape[0] == 3 and named.shape[2] > plain.shape[2]  # a wider margin for rows
    assert named.shape[1] > plain.shape[1]  # column names too long to lie across: turned
    for image in (plain, named):
        top, left = _matrix_corner(image)
        assert _ink(image[:, top + 10 : top + 70, 20 : left - 2]).any()  # the first row's label
        assert _ink(image[:, top - 20 : top - 2, left + 10 : left + 70]).any()  # first column's
        assert _ink(image[:, top + 100 : top + 140, :16]).any()  # "true class", turned
        assert _ink(image[:, 20:36, left:]).any()  # "predicted class" over the columns


@pytest.mark.parametrize("classes", [2, 10, 30, 100])
def test_confusion_images_of_any_size_are_valid_pictures(classes):
    from lightkit.callbacks.figures import confusion_image

    matrix = torch.randint(0, 50, (classes, classes), generator=torch.Generator().manual_seed(0))
    matrix[1] = 0  # a class without samples
    names = [f"class {i} with a very long name indeed" for i in range(classes)]
    for image in (confusion_image(matrix, class_names=names), confusion_image(matrix * 0)):
        assert image.ndim == 3 and image.shape[0] == 3 and image.dtype == torch.float32
        assert image.min() >= 0 and image.max() <= 1
        assert image.shape[2] > min(80, max(12, 400 // classes)) * classes + 100
    tiny = confusion_image(torch.ones(classes, classes, dtype=torch.long), size=classes)
    assert tiny.shape[1] > 100  # 1-px cells still get titles and a colour bar


# --- prediction_image -----------------------------------------------------------------------

TILE = 2 + 3 * 32 + 6  # grid padding, then a 32-px image enlarged 3 times and framed
GREEN_TEXT, RED_TEXT = (
    torch.tensor([0x1A, 0x7F, 0x33]) / 255,
    torch.tensor([0xC0, 0x14, 0x1A]) / 255,
)


def _captions(grid: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and second caption lines under image ``index`` of the grid's first row."""
    strip = grid[:, TILE : TILE + 28, 2 + index * TILE : (index + 1) * TILE]
    return strip[:, :13], strip[:, 13:]


def test_prediction_grids_caption_each_image_with_prediction_confidence_and_truth():
    from lightkit.callbacks.figures import prediction_image

    x = torch.zeros(2, 1, 32, 32)
    target, predicted = torch.tensor([0, 1]), torch.tensor([0, 0])
    names = ["cat", "dog"]
    grid = prediction_image(
        x, target, predicted, class_names=names, confidence=torch.tensor([0.93, 0.6])
    )
    (right_guess, right_truth), (wrong_guess, wrong_truth) = _captions(grid, 0), _captions(grid, 1)
    assert _near(right_guess, GREEN_TEXT, 0.1).any() and not _near(right_guess, RED_TEXT, 0.1).any()
    assert _near(wrong_guess, RED_TEXT, 0.1).any()
    grey = torch.tensor([0x77, 0x77, 0x77]) / 255
    assert _near(right_truth, grey, 0.05).any()  # "true: cat", in grey when right
    assert right_truth.min() > 0.3 and (wrong_truth < 0.1).all(0).any()  # black when wrong
    # the confidence widens the first line: "cat 93%" against "cat"
    bare = prediction_image(x, target, predicted, class_names=names)

    def extent(line: torch.Tensor) -> int:
        return int(_ink(line).any(0).nonzero().max())

    assert extent(_captions(grid, 0)[0]) > extent(_captions(bare, 0)[0]) + 10
    assert torch.equal(_captions(grid, 0)[1], _captions(bare, 0)[1])


# --- sampling across classes ----------------------------------------------------------------


class _Described:
    """A module as the callback sees it: task_outputs(), unpack_batch() and class names."""

    def __init__(self, outputs: lk.TaskOutputs, class_names=None) -> None:
        self.outputs, self.class_names = outputs, class_names

    def task_outputs(self) -> lk.TaskOutputs:
        return self.outputs

    def unpack_batch(self, batch):
        return batch


def _validate(tmp_path, monkeypatch, module, batches, **options):
    """One validation epoch of ValidationFigures over ``(x, y, preds)`` batches; what it drew."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightkit.callbacks import figures

    drawn = {}
    original = figures.prediction_image

    def spy(x, target, predicted, class_names=None, confidence=None):
        drawn.update(x=x, target=target, predicted=predicted, confidence=confidence)
        return original(x, target, predicted, class_names, confidence)

    monkeypatch.setattr(figures, "prediction_image", spy)
    trainer = L.Trainer(logger=TensorBoardLogger(tmp_path), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    callback = figures.ValidationFigures(**options)
    callback.on_validation_epoch_start(trainer, module)
    for i, (x, y, preds) in enumerate(batches):
        callback.on_validation_batch_end(trainer, module, {"loss": 0.0, "preds": preds}, (x, y), i)
    picks = callback._picks
    callback.on_validation_epoch_end(trainer, module)
    return drawn, picks


def _ordered_split(classes: int, per_class: int, batch_size: int):
    """Validation batches sorted by class (all of class 0 first), image ``i`` filled with ``i``."""
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    logits = torch.randn(len(y), classes, generator=torch.Generator().manual_seed(0))
    return [
        (x[i : i + batch_size], y[i : i + batch_size], logits[i : i + batch_size])
        for i in range(0, len(y), batch_size)
    ], logits


def test_an_ordered_split_shows_every_class_with_its_softmax_confidence(tmp_path, monkeypatch):
    batches, logits = _ordered_split(classes=3, per_class=16, batch_size=8)
    module = _Described(lk.TaskOutputs("multiclass", num_classes=3), ["a", "b", "c"])
    drawn, _ = _validate(tmp_path, monkeypatch, module, batches, max_images=16)
    assert drawn["target"].tolist() == [0] * 5 + [1] * 5 + [2] * 5  # 16 // 3 of each class
    chosen = drawn["x"][:, 0, 0, 0].long()  # the first 5 images of each class, across batches
    assert chosen.tolist() == [*range(5), *range(16, 21), *range(32, 37)]
    assert torch.equal(drawn["predicted"], logits[chosen].argmax(1))
    torch.testing.assert_close(drawn["confidence"], logits[chosen].softmax(1).amax(1))


def test_many_classes_fill_one_image_a_class_in_a_buffer_of_max_images(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    y = torch.randperm(1000, generator=g)  # every class once, in random order
    x, logits = torch.rand(1000, 3, 8, 8, generator=g), torch.randn(1000, 1000, generator=g)
    batches = [(x[i : i + 100], y[i : i + 100], logits[i : i + 100]) for i in range(0, 1000, 100)]
    module = _Described(lk.TaskOutputs("multiclass", num_classes=1000))
    drawn, picks = _validate(tmp_path, monkeypatch, module, batches, max_images=16)
    assert drawn["target"].tolist() == list(range(16))  # the first 16 classes, one image each
    assert torch.equal(drawn["x"], x[y.argsort()[:16]])
    assert picks.images.shape[0] == 16 and picks.counts.shape == (16,)  # never 1000 of anything


def test_binary_confidence_is_the_probability_of_the_predicted_class(tmp_path, monkeypatch):
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    logits = torch.tensor([[-2.0], [1.0], [-0.5], [3.0], [-1.0], [0.2]])
    module = _Described(lk.TaskOutputs("binary", num_classes=2))
    batches = [(torch.rand(6, 1, 8, 8), y.float(), logits)]
    drawn, _ = _validate(tmp_path, monkeypatch, module, batches, max_images=4)
    assert drawn["target"].tolist() == [0, 0, 1, 1]  # 2 of each class
    p = logits.view(-1).sigmoid()[[0, 1, 3, 4]]
    assert drawn["predicted"].tolist() == [0, 1, 1, 0]
    torch.testing.assert_close(drawn["confidence"], torch.where(p > 0.5, p, 1 - p))


def test_validation_batches_read_nothing_back_to_the_host(tmp_path, monkeypatch):
    """Each of these would be a host sync on a GPU: only the epoch end may do them."""
    from lightkit.callbacks import figures

    def refuse(*_, **__):
        raise AssertionError("a host sync in on_validation_batch_end")

    batch_end = figures.ValidationFigures.on_validation_batch_end

    def strict(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__"):
                patch.setattr(torch.Tensor, name, refuse)
            batch_end(*args, **kwargs)

    monkeypatch.setattr(figures.ValidationFigures, "on_validation_batch_end", strict)
    batches, _ = _ordered_split(classes=4, per_class=6, batch_size=5)
    module = _Described(lk.TaskOutputs("multiclass", num_classes=4))
    drawn, _ = _validate(tmp_path, monkeypatch, module, batches)
    assert drawn["target"].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_targets_out_of_range_are_left_out_of_figures(tmp_path, monkeypatch):
    y = torch.tensor([-100, 0, 1, 5, 1])  # an ignored label and one past the classes
    logits = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    module = _Described(lk.TaskOutputs("multiclass", num_classes=2))
    drawn, _ = _validate(tmp_path, monkeypatch, module, [(torch.rand(5, 1, 8, 8), y, logits)])
    assert drawn["target"].tolist() == [0, 1, 1]


def test_ordered_validation_data_shows_every_class_in_tensorboard(tmp_path, monkeypatch):
    from lightkit.callbacks import figures

    drawn = []
    original = figures.prediction_image
    monkeypatch.setattr(
        figures, "prediction_image", lambda *a, **k: drawn.append(a[1]) or original(*a, **k)
    )
    data = row_images(96)
    order = data.tensors[1].argsort(stable=True)
    val = torch.utils.data.TensorDataset(data.tensors[0][order], data.tensors[1][order])
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False)
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4,)), 3)
    trainer.fit(
        module,
        datamodule=lk.data.DataModule(
            row_images(), val, batch_size=16, class_names=["top", "middle", "bottom"]
        ),
    )
    assert len(drawn) == 1 and set(drawn[0].tolist()) == {0, 1, 2}  # the split is ordered
    events = _events(trainer.logger.log_dir)
    for tag in ("val/confusion_matrix", "val/predictions"):
        (image,) = events.Images(tag)
        assert image.width > 300 and image.height > 100


def test_images_go_to_each_logger_that_takes_them_and_skip_the_others(tmp_path):
    """One helper routes every picture: TensorBoard gets the C×H×W tensor, MLflow an H×W×3 uint8
    array under a key it accepts, CSV nothing."""
    import numpy as np
    from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

    from lightkit.callbacks._images import image_loggers, log_image

    class FakeMLflow(MLFlowLogger):  # no mlflow needed: records what its client would get
        def __init__(self) -> None:
            Logger.__init__(self)
            self.calls = []

        experiment = property(lambda self: self)
        run_id = property(lambda self: "run-1")

        def log_image(self, run_id, image, key, step):
            self.calls.append((run_id, image, key, step))

    tensorboard, csv, mlflow = TensorBoardLogger(tmp_path), CSVLogger(tmp_path), FakeMLflow()
    loggers = [csv, tensorboard, mlflow]
    assert image_loggers(loggers) == [tensorboard, mlflow]
    image = torch.zeros(3, 4, 5)
    image[0] = 1.0  # red
    log_image(loggers, "val/a(b)", image, 7)
    log_image(loggers, "gray", torch.full((1, 2, 2), 128, dtype=torch.uint8), 8)
    tensorboard.experiment.flush()
    (run_id, pixels, key, step), (_, gray, _, _) = mlflow.calls
    assert (run_id, key, step) == ("run-1", "val/a_b_", 7)
    assert pixels.dtype == np.uint8 and pixels.shape == (4, 5, 3)
    assert pixels[..., 0].min() == 255 and pixels[..., 1:].max() == 0
    assert gray.shape == (2, 2, 3) and (gray == 128).all()
    assert set(_events(tensorboard.log_dir).Tags()["images"]) == {"val/a(b)", "gray"}
    assert not list(tmp_path.rglob("metrics.csv"))  # CSV took no image (and logged nothing)
