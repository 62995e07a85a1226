"""lk.cross_validate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lightkit as lk
from helpers import make_blobs


def test_cross_validate(tmp_path, capsys):
    calls = []

    def make_module():
        calls.append(1)
        return lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)

    result = lk.cross_validate(
        make_module,
        make_blobs(120),
        k=3,
        batch_size=16,
        trainer_kwargs={"max_epochs": 3, "default_root_dir": tmp_path, "logger": False},
    )
    assert len(calls) == 3 and len(result["folds"]) == 3  # a fresh module per fold
    assert {"val/loss", "val/acc", "val/f1"} <= set(result["mean"])
    accs = [f["val/acc"] for f in result["folds"]]
    assert result["mean"]["val/acc"] == pytest.approx(sum(accs) / 3)
    assert result["std"]["val/acc"] == pytest.approx(float(torch.tensor(accs).std()))
    table = capsys.readouterr().out
    assert "mean" in table and "std" in table and "val/acc" in table


def test_cross_validate_is_reproducible(tmp_path, capsys):
    def run():
        return lk.cross_validate(
            lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3),
            make_blobs(64),
            k=2,
            trainer_kwargs={"max_epochs": 1, "default_root_dir": tmp_path, "logger": False},
        )

    torch.manual_seed(1)
    first = run()
    torch.manual_seed(2)  # the caller's RNG state does not matter
    assert run()["folds"] == first["folds"]


def test_group_folds_never_split_a_group(tmp_path):
    from lightkit.data import KFoldDataModule

    ds = make_blobs(90)
    groups = [f"patient{i % 13}" for i in range(90)]  # 13 groups of 6-7 samples
    seen = set()
    for fold in range(4):
        dm = KFoldDataModule(ds, k=4, fold=fold, groups=groups, seed=3)
        train = {groups[i] for i in dm.train_indices}
        val = {groups[i] for i in dm.val_indices}
        assert not train & val, f"fold {fold} has groups on both sides: {train & val}"
        assert len(dm.train_indices) + len(dm.val_indices) == 90
        seen |= set(dm.val_indices)
    assert seen == set(range(90))  # every sample validated once
    sizes = [len(KFoldDataModule(ds, k=4, fold=f, groups=groups).val_indices) for f in range(4)]
    assert max(sizes) - min(sizes) <= 7  # balanced to within one group
    with pytest.raises(ValueError, match="3 distinct groups cannot make k=4"):
        KFoldDataModule(ds, k=4, groups=[i % 3 for i in range(90)])
    with pytest.raises(ValueError, match="groups has 10 ids for 90 samples"):
        KFoldDataModule(ds, k=4, groups=list(range(10)))
    with pytest.raises(TypeError, match=r"groups\[0\] is \[0\]; group ids must be hashable"):
        KFoldDataModule(ds, k=2, groups=[[i] for i in range(90)])
    with pytest.raises(TypeError, match=r"groups\[1\] is None; .* not missing"):
        KFoldDataModule(ds, k=2, groups=[0, None] * 45)
    with pytest.raises(TypeError, match=r"groups\[0\] is nan"):
        KFoldDataModule(ds, k=2, groups=np.full(90, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match=r"one-dimensional .* shape \(90, 1\)"):
        KFoldDataModule(ds, k=2, groups=torch.zeros(90, 1))
    # numpy arrays (and pandas Series, tensors) are the usual form: the same folds as a list
    as_array = KFoldDataModule(ds, k=4, fold=1, groups=np.array(groups), seed=3)
    assert (
        as_array.val_indices == KFoldDataModule(ds, k=4, fold=1, groups=groups, seed=3).val_indices
    )


def test_out_of_fold_predictions_come_from_the_model_that_did_not_train_on_them(tmp_path, capsys):
    from lightkit.data import KFoldDataModule

    ds = make_blobs(60)
    groups = [i // 4 for i in range(60)]
    result = lk.cross_validate(
        lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3),
        ds,
        k=3,
        batch_size=16,
        groups=groups,
        return_oof=True,
        trainer_kwargs={"max_epochs": 2, "default_root_dir": tmp_path, "logger": False},
    )
    oof, oof_fold = result["oof"], result["oof_fold"]
    assert oof.shape == (60, 3) and torch.allclose(oof.sum(1), torch.ones(60))  # probabilities
    assert sorted(set(oof_fold.tolist())) == [0, 1, 2]
    for fold in range(3):
        held_out = KFoldDataModule(ds, k=3, fold=fold, groups=groups).val_indices
        assert (oof_fold[held_out] == fold).all()
    _assert_each_fold_predicted_by_its_best_checkpoint(result, ds)
    with pytest.raises(TypeError, match="return_oof"):
        lk.cross_validate(lambda: None, ds, return_oof="yes")
    with pytest.raises(ValueError, match="may not set version"):
        lk.cross_validate(lambda: None, ds, trainer_kwargs={"version": "last"})


@pytest.mark.slow
def test_out_of_fold_predictions_of_an_ema_run_come_from_the_best_checkpoint(tmp_path, capsys):
    """After an EMA fit, validate leaves the raw weights in the module: OOF must not use them."""
    ds = make_blobs(48)
    result = lk.cross_validate(
        lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3),
        ds,
        k=2,
        batch_size=8,
        return_oof=True,
        trainer_kwargs={"max_epochs": 2, "default_root_dir": tmp_path, "logger": False, "ema": 0.5},
    )
    _assert_each_fold_predicted_by_its_best_checkpoint(result, ds)


def _assert_each_fold_predicted_by_its_best_checkpoint(result, ds):
    for fold, path in enumerate(result["checkpoints"]):
        held_out = (result["oof_fold"] == fold).nonzero().flatten()
        model = lk.ClassificationModule.load_from_checkpoint(path).eval()
        with torch.no_grad():
            expected = model.predict_step(ds.tensors[0][held_out], 0)
        torch.testing.assert_close(result["oof"][held_out], expected)


def test_the_fold_models_predict_as_one_ensemble(tmp_path, capsys):
    """return_ensemble=True: the mean of the folds' best models (Predictor.ensemble)."""
    ds = make_blobs(48)
    result = lk.cross_validate(
        lambda: lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(8,)), 3),
        ds,
        k=2,
        batch_size=16,
        trainer_kwargs={"max_epochs": 2, "default_root_dir": tmp_path, "logger": False},
        return_ensemble=True,
    )
    ensemble = result["ensemble"]
    assert isinstance(ensemble, lk.inference.EnsemblePredictor)
    assert len(ensemble.members) == 2
    x = ds.tensors[0]
    folds = []
    for path in result["checkpoints"]:
        model = lk.ClassificationModule.load_from_checkpoint(path).eval()
        with torch.no_grad():
            folds.append(model(x).softmax(-1))
    assert not torch.allclose(folds[0], folds[1], atol=1e-4)  # two different models
    probs = ensemble.predict(x)
    torch.testing.assert_close(probs, (folds[0] + folds[1]) / 2)
    assert ensemble.predict_labels(x) == probs.argmax(1).tolist()
    again = lk.Predictor.ensemble(result["checkpoints"], device="cpu")
    torch.testing.assert_close(again.predict(x), probs)


def test_return_ensemble_is_a_boolean_and_needs_the_checkpoints(tmp_path):
    ds = make_blobs(24)
    with pytest.raises(TypeError, match="return_ensemble must be True or False"):
        lk.cross_validate(lambda: None, ds, k=2, return_ensemble="yes")
