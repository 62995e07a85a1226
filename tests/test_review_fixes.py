"""Regressions found in review: partial factories in checkpoints, fp16 sums, plateau without
validation, k-fold on non-class targets, colour masks, segmentation transforms via DataModule."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def test_partial_optimizer_and_scheduler_survive_a_checkpoint(tmp_path, blobs):
    module = lk.ClassificationModule(
        lk.models.MLP(8, 3),
        3,
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2),
    )
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False)
    trainer.fit(module, datamodule=lk.data.DataModule(blobs, batch_size=32))
    reloaded = lk.ClassificationModule.load_from_checkpoint(
        trainer.checkpoint_callback.best_model_path
    )
    optimizer = reloaded.optimizer_factory(reloaded.parameters())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.05
    scheduler = reloaded.scheduler_factory(optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR) and scheduler.step_size == 2


def test_epoch_loss_sum_does_not_overflow_in_half_precision():
    from lightkit.tasks._bookkeeping import TaskState

    state = TaskState()
    for _ in range(4):
        state.accumulate("val", torch.tensor(30000.0, dtype=torch.float16), 32)
    total, count = state.loss_sums["val"]
    assert torch.isfinite(total) and float(total / count) == pytest.approx(30000.0)


def test_plateau_follows_train_loss_without_validation(tmp_path, blobs):
    module = lk.ClassificationModule(lk.models.MLP(8, 3), 3, scheduler=lk.optim.plateau(patience=1))
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, logger=False)
    with pytest.warns(
        UserWarning, match="ReduceLROnPlateau follows train/loss instead of val/loss"
    ):
        trainer.fit(module, datamodule=lk.data.DataModule(blobs, val_split=0.0))
    assert trainer.lr_scheduler_configs[0].monitor == "train/loss"
    assert trainer.current_epoch == 2


def test_kfold_stratify_needs_class_labels():
    regression = TensorDataset(torch.randn(20, 3), torch.randn(20))
    with pytest.raises(
        ValueError, match=r"stratify=True needs one integer class label.*stratify=False"
    ):
        lk.data.KFoldDataModule(regression, k=2)
    assert len(lk.data.KFoldDataModule(regression, k=2, stratify=False).val_indices) == 10


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


def test_colour_mask_is_named(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "mask.png")
    ds = lk.data.SegmentationDataset([tmp_path / "img.png"], [tmp_path / "mask.png"])
    with pytest.raises(
        lk.data.BadImageError, match=r"mask file '.*mask\.png' is a PIL mode 'RGB' image"
    ):
        ds[0]


def test_datamodule_transforms_move_image_and_mask_together(tmp_path):
    paths = []
    for i in range(4):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[:, :8] = 1 + i % 2  # left half labelled
        Image.fromarray(mask).save(tmp_path / f"m{i}.png")
        Image.fromarray(mask * 100).convert("RGB").save(tmp_path / f"i{i}.png")  # image = mask
        paths.append((tmp_path / f"i{i}.png", tmp_path / f"m{i}.png"))
    dataset = lk.data.SegmentationDataset(*zip(*paths, strict=True))
    flip = lk.data.transforms.train_preset(
        16, (0, 0, 0), (1, 1, 1), rotation=0, color_jitter=0, random_resized_crop=False
    )
    dm = lk.data.DataModule(dataset, val_split=0.5, train_transform=flip, batch_size=2)
    dm.setup("fit")
    torch.manual_seed(0)
    for _ in range(8):  # random flips: the mask must follow the image every time
        image, mask = dm.train_dataset[0]
        assert torch.equal((image[0] * 255 / 100).round().long(), mask)
        assert mask.dtype == torch.long


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: lk.optim.cosine(min_lr_ratio=2),
            ValueError,
            r"min_lr_ratio must be a number in \[0, 1\], got 2",
        ),
        (lambda: lk.optim.plateau(patience=2.5), TypeError, r"patience must be an integer >= 0"),
        (lambda: lk.optim.step(step_size=2.5), TypeError, r"step_size must be an integer >= 1"),
    ],
)
def test_more_bad_preset_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
