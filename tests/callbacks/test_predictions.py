"""PredictionWriter: predictions to CSV, one row per sample, with class names; never overwrites."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs
from lightkit.callbacks import PredictionWriter


def _predict(module, dm, path=None, root=None):
    writer = PredictionWriter(path)
    trainer = lk.make_trainer(
        default_root_dir=root or path.parent, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[writer],
    )  # fmt: skip
    out = trainer.predict(module, datamodule=dm)
    return writer, torch.cat(out), list(csv.reader(writer.written.open()))


def test_multiclass_rows_name_the_classes_and_match_the_outputs(tmp_path):
    data = make_blobs(40)
    dm = lk.data.DataModule(data, predict=data, class_names=["a", "b", "c"], batch_size=16)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=[8]), 3)
    lk.make_trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path,
                    enable_model_summary=False).fit(module, datamodule=dm)  # fmt: skip
    writer, probs, rows = _predict(module, dm, tmp_path / "out" / "preds.csv")
    assert writer.written == tmp_path / "out" / "preds.csv" and writer.count == 40
    assert rows[0] == ["index", "label", "p_a", "p_b", "p_c"]
    assert [int(r[0]) for r in rows[1:]] == list(range(40))
    assert [r[1] for r in rows[1:]] == [["a", "b", "c"][i] for i in probs.argmax(1).tolist()]
    got = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    torch.testing.assert_close(got, probs, atol=1e-5, rtol=1e-4)
    # Nothing saved is overwritten: a second run writes beside the first.
    again, _, _ = _predict(module, dm, tmp_path / "out" / "preds.csv")
    assert again.written == tmp_path / "out" / "preds-1.csv"
    assert len(list(csv.reader((tmp_path / "out" / "preds.csv").open()))) == 41


def test_binary_multilabel_and_values(tmp_path):
    x = torch.randn(10, 4)
    binary = lk.BinaryClassificationModule(lk.models.MLP(4, 1, hidden=[4]))
    dm = lk.data.DataModule(
        TensorDataset(x, torch.zeros(10)), predict=TensorDataset(x), batch_size=4
    )
    _, probs, rows = _predict(binary, dm, tmp_path / "b.csv")
    assert rows[0] == ["index", "label", "probability"]
    assert [r[1] for r in rows[1:]] == [str(int(p > 0.5)) for p in probs.tolist()]

    multilabel = lk.MultilabelClassificationModule(lk.models.MLP(4, 3, hidden=[4]), 3)
    dm = lk.data.DataModule(
        TensorDataset(x, torch.zeros(10, 3)), predict=TensorDataset(x), batch_size=4,
        class_names=["red", "green", "blue"],
    )  # fmt: skip
    _, probs, rows = _predict(multilabel, dm, tmp_path / "m.csv")
    assert rows[0] == ["index", "labels", "p_red", "p_green", "p_blue"]
    expected = [";".join(n for n, p in zip(["red", "green", "blue"], row, strict=True) if p > 0.5)
                for row in probs.tolist()]  # fmt: skip
    assert [r[1] for r in rows[1:]] == expected

    regression = lk.RegressionModule(lk.models.MLP(4, 2, hidden=[4]))
    dm = lk.data.DataModule(
        TensorDataset(x, torch.zeros(10, 2)), predict=TensorDataset(x), batch_size=4
    )
    _, values, rows = _predict(regression, dm, tmp_path / "r.csv")
    assert rows[0] == ["index", "output_0", "output_1"]
    torch.testing.assert_close(torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]]), values,
                               atol=1e-5, rtol=1e-4)  # fmt: skip


def test_segmentation_masks_are_saved_as_pngs_of_class_indices(tmp_path):
    dm = lk.data.ShapesDataModule(num_samples=12, image_size=16, batch_size=4)
    dm.setup("fit")
    images = torch.stack([dm.train_dataset[i][0] for i in range(6)])
    dm_predict = lk.data.DataModule(
        dm.train_dataset, predict=TensorDataset(images), batch_size=4, val_split=0.0
    )
    module = lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), 3)
    _, probs, rows = _predict(module, dm_predict, tmp_path / "seg.csv")
    assert rows[0] == ["index", "mask"] and len(rows) == len(images) + 1
    mask = np.array(Image.open(tmp_path / rows[1][1]))
    np.testing.assert_array_equal(mask, probs[0].argmax(0).numpy())


def test_the_default_file_goes_to_the_log_folder(tmp_path):
    data = make_blobs(8)
    dm = lk.data.DataModule(data, predict=data, batch_size=4)
    writer, _, rows = _predict(lk.ClassificationModule(lk.models.MLP(8, 3), 3), dm, root=tmp_path)
    assert writer.written.name == "predictions.csv" and len(rows) == 9
    assert writer.written.is_relative_to(tmp_path)
    assert rows[0][:3] == ["index", "label", "p_0"]  # indices where no names were recorded


def test_predicting_without_a_predict_set_uses_the_test_then_validation_split(tmp_path):
    data = make_blobs(20)
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3)
    dm = lk.data.DataModule(data, test=make_blobs(6), batch_size=4)
    with pytest.warns(UserWarning, match=r"predicting the test split \(6 samples"):
        _, probs, _ = _predict(module, dm, tmp_path / "t.csv")
    assert len(probs) == 6
    dm = lk.data.DataModule(data, val_split=0.25, batch_size=4)
    with pytest.warns(UserWarning, match=r"predicting the val split \(5 samples"):
        _, probs, _ = _predict(module, dm, tmp_path / "v.csv")
    assert len(probs) == 5
    dm = lk.data.DataModule(data, val_split=0.0, batch_size=4)
    with pytest.raises(ValueError, match=r"nothing to predict.*pass predict="):
        _predict(module, dm, tmp_path / "n.csv")


def test_a_bad_path_is_refused():
    with pytest.raises(TypeError, match=r"PredictionWriter: path must be a CSV file path"):
        PredictionWriter(3)
