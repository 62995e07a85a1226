"""MixUp and CutMix on ClassificationModule: soft targets for the loss, hard labels elsewhere."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk
from helpers import flat_weights, make_blobs, row_images


def _module(**kwargs):
    torch.manual_seed(0)
    return lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4,)), 3, **kwargs)


def _options(tmp_path, **kwargs):
    return dict(default_root_dir=tmp_path, logger=False, enable_progress_bar=False, verbose=False,
                enable_model_summary=False, **kwargs)  # fmt: skip


@pytest.mark.parametrize("kwargs", [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.2, "cutmix": 1.0}])
def test_training_batches_get_soft_targets_and_metrics_the_hard_labels(tmp_path, kwargs):
    module = _module(train_metrics=True, **kwargs)
    seen = []
    original = module.compute_loss

    def recording(preds, target):
        seen.append((module.trainer.training, target.dtype, tuple(target.shape)))
        return original(preds, target)

    module.compute_loss = recording
    trainer = lk.fit(module, lk.data.DataModule(row_images(), batch_size=16), max_epochs=1,
                     **_options(tmp_path))  # fmt: skip
    train = [s for s in seen if s[0]]
    evaluation = [s for s in seen if not s[0]]
    assert train and all(dtype.is_floating_point and len(shape) == 2 for _, dtype, shape in train)
    assert evaluation and all(dtype == torch.long for _, dtype, _ in evaluation)
    assert 0.0 <= float(trainer.callback_metrics["train/acc"]) <= 1.0


def test_label_checks_still_see_the_hard_labels(tmp_path):
    data = row_images()
    data.tensors[1][5] = 7  # out of range for 3 classes
    with pytest.raises(ValueError, match=r"label 7"):
        lk.fit(_module(mixup=0.4), lk.data.DataModule(data, batch_size=16), max_epochs=1,
               **_options(tmp_path))  # fmt: skip


def test_mixing_needs_image_batches(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3, mixup=0.2)
    with pytest.raises(
        ValueError, match=r"mix images \(N×C×H×W batches\), got inputs of shape \(32, 8\)"
    ):
        lk.fit(module, lk.data.DataModule(make_blobs(64), batch_size=32), max_epochs=1,
               **_options(tmp_path))  # fmt: skip


def test_bad_alphas_are_named():
    with pytest.raises(ValueError, match=r"mixup must be a number in \[0, 10\], got -0.5"):
        lk.ClassificationModule(lk.models.MLP(8, 3), 3, mixup=-0.5)
    with pytest.raises(TypeError, match=r"cutmix"):
        lk.ClassificationModule(lk.models.MLP(8, 3), 3, cutmix="1.0")


def test_a_killed_mixup_run_resumes_bit_identically(tmp_path):
    dm = lambda: lk.data.DataModule(row_images(), batch_size=16)  # noqa: E731
    whole = _module(mixup=0.4, cutmix=1.0)
    lk.fit(whole, dm(), max_epochs=3, seed=0, **_options(tmp_path / "whole"))
    part = _module(mixup=0.4, cutmix=1.0)
    lk.fit(part, dm(), max_epochs=1, seed=0, **_options(tmp_path / "part"))
    resumed = _module(mixup=0.4, cutmix=1.0)
    lk.fit(resumed, dm(), max_epochs=3, seed=0, resume=True, **_options(tmp_path / "part"))
    torch.testing.assert_close(flat_weights(resumed), flat_weights(whole), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [{"mixup": 0.4}, {"cutmix": 1.0}])
def test_multilabel_mixes_label_vectors_and_keeps_hard_labels_for_metrics(tmp_path, kwargs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=g)
    y = (torch.rand(64, 3, generator=g) > 0.5).long()  # integer 0/1 label vectors
    torch.manual_seed(0)
    module = lk.MultilabelClassificationModule(
        lk.models.ConvNet(1, 3, widths=(4,)), 3, train_metrics=True, **kwargs
    )
    seen = []
    original = module.compute_loss

    def recording(preds, target):
        seen.append((module.trainer.training, target))
        return original(preds, target)

    module.compute_loss = recording
    data = torch.utils.data.TensorDataset(x, y)
    trainer = lk.fit(
        module, lk.data.DataModule(data, batch_size=16), max_epochs=1, **_options(tmp_path)
    )
    mixed = [t for training, t in seen if training]
    assert mixed and all(t.is_floating_point() for t in mixed)
    assert any(((t > 0) & (t < 1)).any() for t in mixed)  # some labels really were mixed
    assert 0.0 <= float(trainer.callback_metrics["train/f1"]) <= 1.0
