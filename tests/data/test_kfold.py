"""KFoldDataModule: disjoint, stratified, seeded folds."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def test_kfold_folds_are_disjoint_stratified_and_seeded():
    ds = make_blobs(90)
    labels = ds.tensors[1]
    val_sets = []
    for fold in range(3):
        dm = lk.data.KFoldDataModule(ds, k=3, fold=fold, seed=5)
        assert set(dm.train_indices).isdisjoint(dm.val_indices)
        assert len(dm.train_indices) + len(dm.val_indices) == 90
        counts = torch.bincount(labels[dm.val_indices], minlength=3)
        overall = torch.bincount(labels, minlength=3) / 3
        assert (counts - overall).abs().max() <= 1  # stratified
        val_sets.append(set(dm.val_indices))
    assert set().union(*val_sets) == set(range(90))
    assert lk.data.KFoldDataModule(ds, k=3, fold=1, seed=5).val_indices == sorted(val_sets[1])
    with pytest.raises(ValueError, match=r"fold must be an integer in \[0, 2\], got 3"):
        lk.data.KFoldDataModule(ds, k=3, fold=3)


def test_kfold_stratify_needs_class_labels():
    regression = TensorDataset(torch.randn(20, 3), torch.randn(20))
    with pytest.raises(
        ValueError, match=r"stratify=True needs one integer class label.*stratify=False"
    ):
        lk.data.KFoldDataModule(regression, k=2)
    assert len(lk.data.KFoldDataModule(regression, k=2, stratify=False).val_indices) == 10


def test_kfold_training_loaders_resume_mid_epoch():
    # Per-sample data (a transform): the resumable loader, whose exactness tests/data/test_loaders.py
    # checks; tensors alone take the in-memory loader, resumable too.
    ds = make_blobs(60)
    dm = lk.data.KFoldDataModule(ds, k=3, fold=0, seed=5, train_transform=lambda v: v)
    dm.setup("fit")
    assert isinstance(dm.train_dataloader(), lk.data.ResumableLoader)
    assert "resumable" in dm.state_dict()["train_loader"]
