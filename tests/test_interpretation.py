"""lk.interpret: tables and pictures that point at the samples and classes a model gets wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import lightning
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs, quiet_trainer, write_image


def _planted_val(n: int = 120) -> tuple[TensorDataset, list[int]]:
    """Validation blobs where the first six class-1 samples are labelled as class 2."""
    x, y = make_blobs(n, num_classes=4, features=8, seed=1).tensors
    planted = (y == 1).nonzero().flatten()[:6].tolist()
    y = y.clone()
    y[planted] = 2
    return TensorDataset(x, y), planted


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-class MLP trained on clean blobs, validated on blobs with planted swaps."""
    root = tmp_path_factory.mktemp("interpret")
    trainer = quiet_trainer(root, max_epochs=8)  # seeds: the net is built after it
    module = lk.ClassificationModule(lk.models.MLP(8, 4, hidden=(32,)), num_classes=4)
    val, planted = _planted_val()
    dm = lk.data.DataModule(
        make_blobs(400, num_classes=4, features=8, seed=1),
        val=val,
        batch_size=32,
        class_names=["ant", "bee", "cat", "dog"],
    )
    trainer.fit(module, datamodule=dm)
    return SimpleNamespace(module=module, dm=dm, trainer=trainer, planted=planted)


def test_planted_label_swaps_top_the_losses_and_the_confusions(trained):
    module, dm, planted = trained.module, trained.dm, trained.planted
    report = lk.interpret(module, dm, top_k=len(planted), save_dir=None)
    assert report.kind == "multiclass" and report.num_samples == 120
    assert {row["index"] for row in report.top_losses} == set(planted)
    assert all(row["target"] == "cat" and row["pred"] == "bee" for row in report.top_losses)
    losses = [row["loss"] for row in report.top_losses]
    assert losses == sorted(losses, reverse=True)
    assert report.most_confused[0] == ("cat", "bee", len(planted))
    # The per-class table agrees with the confusions: every planted sample is a "cat" missed.
    cat = next(row for row in report.per_class if row["name"] == "cat")
    cats = int((dm.val.tensors[1] == 2).sum())
    assert cat["support"] == cats and cat["recall"] <= (cats - len(planted)) / cats


def test_indices_name_rows_of_your_arrays_through_a_split(tmp_path):
    """TensorDataModule cuts x/y into new datasets: indices are rows of x, not split positions."""
    ds = make_blobs(200, num_classes=3, seed=2)
    x, y = ds.tensors
    dm = lk.data.TensorDataModule(x, y, val_split=0.25, batch_size=16)
    dm.setup("fit")
    rows = dm.split_indices["val"]
    y = y.clone()
    y[rows[5]] = (y[rows[5]] + 1) % 3  # one wrong label, in the validation split
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), num_classes=3)
    dm = lk.data.TensorDataModule(x, y, val_split=0.25, batch_size=16)
    quiet_trainer(tmp_path, max_epochs=6, logger=False).fit(module, datamodule=dm)
    report = lk.interpret(module, dm, top_k=1, save_dir=None)
    assert report.top_losses[0]["index"] == rows[5]
    assert report.top_losses[0]["position"] == 5


def test_val_split_subsets_report_the_index_in_your_dataset(trained):
    module = trained.module
    ds = make_blobs(100, num_classes=4, features=8, seed=1)
    dm = lk.data.DataModule(ds, val_split=0.3, batch_size=16)
    report = lk.interpret(module, dm, top_k=5, save_dir=None)
    subset = dm.val_dataset  # the Subset random_split made
    for row in report.top_losses:
        assert row["index"] == subset.indices[row["position"]]
        with torch.no_grad():
            assert row["loss"] == pytest.approx(
                float(
                    nn.functional.cross_entropy(
                        module(ds[row["index"]][0][None]), ds.tensors[1][row["index"]][None]
                    )
                ),
                rel=1e-4,
            )


def test_image_files_are_reported_with_their_path(tmp_path):
    for cls in ("a", "b"):
        for i in range(6):
            write_image(tmp_path / "data" / cls / f"{i}.png", value=40 * i, size=(12, 12))
    dm = lk.data.ImageFolderDataModule(
        tmp_path / "data", image_size=12, val_split=0.5, batch_size=4
    )
    module = lk.ClassificationModule(lk.models.ConvNet(3, 2), num_classes=2)
    report = lk.interpret(module, dm, top_k=3, save_dir=None)
    dm.setup("fit")
    paths = dm.val_dataset.paths
    for row in report.top_losses:
        assert row["path"] == str(paths[row["position"]])
        assert row["path"].endswith(".png") and f"/{row['target']}/" in row["path"]


def test_auto_save_writes_readable_pictures_into_the_run_folder_and_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module, dm, trainer, planted = trained.module, trained.dm, trained.trainer, trained.planted
    first = lk.interpret(module, dm)
    second = lk.interpret(module, dm)  # never over the first
    run = trainer.log_dir
    assert str(first.folder).startswith(run) and first.folder.name == "val"
    assert second.folder.name == "val-1"
    names = {p.name for p in first.folder.iterdir()}
    assert names == {
        "confusion_matrix.png",
        "roc.png",
        "precision_recall.png",
        "reliability.png",
        "report.json",
    }  # tabular inputs: no picture of the top-loss samples
    for png in first.folder.glob("*.png"):
        with Image.open(png) as image:
            assert image.width >= 500 and image.height >= 400
            assert len(np.unique(np.asarray(image))) > 20  # drawn: text, axes, colours
    saved = json.loads((first.folder / "report.json").read_text())
    assert saved["most_confused"][0] == {"true": "cat", "predicted": "bee", "count": len(planted)}
    events = EventAccumulator(run, size_guidance={"images": 0})
    events.Reload()
    assert "interpret/val/confusion_matrix" in events.Tags()["images"]
    assert "interpret/val/reliability" in events.Tags()["images"]


def test_a_module_loaded_from_a_checkpoint_reports_into_its_run(trained):
    dm, trainer = trained.dm, trained.trainer
    best = trainer.checkpoint_callback.best_model_path
    loaded = lk.ClassificationModule.load_from_checkpoint(best)
    assert loaded.checkpoint_path == best and loaded.class_names == ("ant", "bee", "cat", "dog")
    fresh = lk.data.DataModule(make_blobs(400, num_classes=4, features=8, seed=1), val=dm.val)
    report = lk.interpret(loaded, fresh, top_k=3)
    assert report.folder.parent.parent == Path(best).resolve().parent.parent
    assert report.top_losses[0]["pred"] == "bee"  # the names came from the checkpoint


def test_the_report_prints_tables_and_converts_to_records(trained):
    module, dm = trained.module, trained.dm
    report = lk.interpret(module, dm, top_k=4, save_dir=None)
    text = str(report)
    for word in ("per class", "most confused", "top losses", "precision", "ece", "cat"):
        assert word in text
    records = report.records("top_losses")
    assert len(records) == 4 and {"index", "loss", "target", "pred", "confidence"} <= set(
        records[0]
    )
    assert report.records("most_confused")[0] == {"true": "cat", "predicted": "bee", "count": 6}
    json.dumps(report.to_dict())  # plain data
    with pytest.raises(ValueError, match="table must be"):
        report.records("losses")


def test_save_refuses_to_replace_an_earlier_report(trained, tmp_path):
    module, dm = trained.module, trained.dm
    report = lk.interpret(module, dm, top_k=2, save_dir=tmp_path / "r")
    assert (tmp_path / "r" / "report.json").is_file()
    with pytest.raises(FileExistsError, match=r"already holds confusion_matrix\.png"):
        report.save(tmp_path / "r")
    report.save(tmp_path / "r", overwrite=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "roc.png").write_bytes(b"my own picture")
    with pytest.raises(FileExistsError, match=r"roc\.png"):
        report.save(mine)
    assert (mine / "roc.png").read_bytes() == b"my own picture"  # nothing written
    assert sorted(p.name for p in mine.iterdir()) == ["roc.png"]


def test_ece_is_torchmetrics_and_the_bins_add_up(trained):
    from torchmetrics.functional.classification import multiclass_calibration_error

    module, dm = trained.module, trained.dm
    report = lk.interpret(module, dm, save_dir=None)
    x, y = dm.val.tensors
    with torch.no_grad():
        probs = module(x).softmax(-1)
    assert report.ece == pytest.approx(
        float(multiclass_calibration_error(probs, y, 4, n_bins=15)), abs=1e-6
    )
    bins = report.plots["reliability"]
    assert sum(bins["count"]) == len(y)
    gap = sum(
        c * abs(a - f)
        for c, a, f in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    )
    assert gap / len(y) == pytest.approx(report.ece, abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multilabel", "regression"])
def test_every_task_kind_gets_its_report(kind, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 6, generator=g)
    if kind == "binary":
        y = (x[:, 0] > 0).float()
        module = lk.BinaryClassificationModule(lk.models.MLP(6, 1, hidden=(16,)))
        pictures = {"confusion_matrix", "roc", "precision_recall", "reliability"}
    elif kind == "multilabel":
        y = torch.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 2] > 0.5], 1).float()
        module = lk.MultilabelClassificationModule(lk.models.MLP(6, 3, hidden=(16,)), num_labels=3)
        pictures = {"roc", "precision_recall", "reliability"}
    else:
        y = x[:, :2] @ torch.tensor([[1.0], [-2.0]])
        module = lk.RegressionModule(lk.models.MLP(6, 1, hidden=(16,)))
        pictures = {"predicted_vs_true", "residuals"}
    dm = lk.data.TensorDataModule(x, y, val_split=0.25, batch_size=32)
    trainer = quiet_trainer(tmp_path, max_epochs=5, logger=False)
    trainer.fit(module, datamodule=dm)
    report = lk.interpret(module, dm, top_k=3, save_dir=tmp_path / "report")
    assert {p.stem for p in (tmp_path / "report").glob("*.png")} == pictures
    assert (
        len(report.top_losses) == 3
        and report.top_losses[0]["loss"] >= report.top_losses[-1]["loss"]
    )
    if kind == "regression":
        assert report.ece is None and report.per_class == []
        assert {"mae", "rmse", "r2"} <= set(report.metrics)
        row = report.top_losses[0]
        assert row["loss"] == pytest.approx((row["target"] - row["pred"]) ** 2, rel=1e-4)
    else:
        assert 0 <= report.ece <= 1
        assert len(report.per_class) == (2 if kind == "binary" else 3)
    if kind == "binary":
        # The same numbers as the module's own validation metrics.
        logged = trainer.validate(module, datamodule=dm, verbose=False)[0]
        assert report.metrics["accuracy"] == pytest.approx(logged["val/acc"], abs=1e-6)
        assert report.metrics["mean_loss"] == pytest.approx(logged["val/loss"], rel=1e-5)
    if kind == "multilabel":
        assert isinstance(report.top_losses[0]["target"], list)


@pytest.mark.slow
def test_segmentation_reports_per_class_iou_and_the_worst_images(tmp_path):
    torch.manual_seed(0)
    dm = lk.data.ShapesDataModule(num_samples=24, image_size=16, batch_size=8)
    module = lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), num_classes=3)
    quiet_trainer(tmp_path, max_epochs=1, logger=False).fit(module, datamodule=dm)
    report = lk.interpret(module, dm, top_k=2, save_dir=tmp_path / "seg")
    assert [row["class"] for row in report.per_class] == [0, 1, 2]
    assert all(row["iou"] is None or 0 <= row["iou"] <= 1 for row in report.per_class)
    assert sum(row["support"] for row in report.per_class) == report.num_samples * 16 * 16
    assert {p.stem for p in (tmp_path / "seg").glob("*.png")} == {
        "confusion_matrix",
        "per_class_iou",
        "worst",
    }
    assert "miou" in report.metrics and report.ece is None


@pytest.mark.slow
def test_your_own_task_subclass_gets_the_same_report(tmp_path):
    class Scorer(lk.TaskModule):
        def compute_loss(self, preds, target):
            return nn.functional.cross_entropy(preds, target)

        def task_outputs(self):
            return lk.TaskOutputs("multiclass", num_classes=3)

    torch.manual_seed(0)
    module = Scorer(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    dm = lk.data.DataModule(make_blobs(120), val_split=0.25, batch_size=16)
    quiet_trainer(tmp_path, max_epochs=3, logger=False).fit(module, datamodule=dm)
    report = lk.interpret(module, dm, top_k=2, save_dir=None)
    assert report.kind == "multiclass" and len(report.per_class) == 3
    assert report.top_losses[0]["target"] in (0, 1, 2)


def test_the_module_keeps_its_mode_and_interpret_checks_its_arguments(trained):
    module, dm = trained.module, trained.dm
    module.train()
    lk.interpret(module, dm, top_k=0, save_dir=None)
    assert module.training
    with pytest.raises(ValueError, match="split must be one of"):
        lk.interpret(module, dm, split="train")
    with pytest.raises(ValueError, match="top_k"):
        lk.interpret(module, dm, top_k=-1)
    with pytest.raises(TypeError, match="module must be"):
        lk.interpret(nn.Linear(2, 2), dm)
    with pytest.raises(TypeError, match="save_dir"):
        lk.interpret(module, dm, save_dir=3)
    no_val = lk.data.DataModule(make_blobs(40, num_classes=4), val_split=0.0)
    with pytest.raises(ValueError, match="no val data"):
        lk.interpret(module, no_val)
    assert math.isfinite(lk.interpret(module, dm, split="val", save_dir=None).metrics["mean_loss"])


def test_a_shuffling_or_bucketing_val_loader_still_names_samples_by_index(trained):
    """Planted samples are found by their index whatever order the user's loader reads in."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    class OwnData(lightning.LightningDataModule):
        def __init__(self, loader):
            super().__init__()
            self.loader = loader

        def val_dataloader(self):
            return self.loader

    module, dm, planted = trained.module, trained.dm, trained.planted
    val = dm.val
    g = torch.Generator().manual_seed(0)
    buckets = BatchSampler(RandomSampler(val, generator=g), batch_size=7, drop_last=False)
    for loader in (
        DataLoader(val, batch_size=16, shuffle=True, generator=g),
        DataLoader(val, batch_sampler=buckets),
    ):
        report = lk.interpret(module, OwnData(loader), top_k=len(planted), save_dir=None)
        assert {row["index"] for row in report.top_losses} == set(planted)


def test_bad_outputs_and_targets_are_named_not_raised_from_torch(trained):
    module, dm = trained.module, trained.dm

    class Broken(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            return self.out(x)

    nan = lk.ClassificationModule(Broken(lambda x: torch.full((len(x), 4), float("nan"))), 4)
    with pytest.raises(ValueError, match="batch 0: the model's outputs hold NaN or Inf"):
        lk.interpret(nan, dm, save_dir=None)
    wide = lk.ClassificationModule(Broken(lambda x: torch.zeros(len(x), 5)), 4)
    with pytest.raises(
        ValueError, match=r"outputs of shape \(32, 5\) for a multiclass task with 4"
    ):
        lk.interpret(wide, dm, save_dir=None)
    x, y = dm.val.tensors
    y = y.clone()
    y[3] = -100
    bad = lk.data.DataModule(dm.train, val=TensorDataset(x, y), batch_size=32)
    with pytest.raises(ValueError, match="batch 0: target -100 is not a class of this 4-class"):
        lk.interpret(module, bad, save_dir=None)
    with pytest.warns(UserWarning, match="3 class names for 4 classes"):
        lk.interpret(
            lk.ClassificationModule(lk.models.MLP(8, 4), 4),  # no names of its own
            lk.data.DataModule(dm.train, val=dm.val, class_names=["a", "b", "c"]),
            save_dir=None,
        )


def test_frozen_submodules_stay_in_eval_mode(trained):
    module, dm = trained.module, trained.dm
    module.train()
    frozen = module.net.layers[0]
    frozen.eval()
    lk.interpret(module, dm, top_k=0, save_dir=None)
    assert module.training and not frozen.training
