"""Class imbalance: class_weights ("balanced" or given), pos_weight="balanced", focal loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from torchmetrics.functional.classification import multiclass_f1_score, multiclass_recall

import lightkit as lk
from helpers import no_log_trainer


def _imbalanced(n_major: int, n_minor: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    major = torch.randn(n_major, 8, generator=g)
    minor = torch.randn(n_minor, 8, generator=g) + torch.tensor([1.2, 1.2, 0, 0, 0, 0, 0, 0])
    x = torch.cat([major, minor])
    y = torch.cat([torch.zeros(n_major, dtype=torch.long), torch.ones(n_minor, dtype=torch.long)])
    return TensorDataset(x, y)


def _train(tmp_path, **task_kwargs):
    torch.manual_seed(0)
    module = lk.ClassificationModule(lk.models.MLP(8, 2, hidden=[16]), 2, **task_kwargs)
    dm = lk.data.DataModule(_imbalanced(1900, 100, seed=1), val_split=0.0, batch_size=64)
    no_log_trainer(tmp_path, max_epochs=8).fit(module, datamodule=dm)
    test = _imbalanced(500, 500, seed=2)
    with torch.no_grad():
        predicted = module.eval()(test.tensors[0]).argmax(1)
    target = test.tensors[1]
    recall = multiclass_recall(predicted, target, num_classes=2, average="none")[1].item()
    macro_f1 = multiclass_f1_score(predicted, target, num_classes=2, average="macro").item()
    return module, recall, macro_f1


@pytest.mark.slow
def test_balanced_class_weights_raise_minority_recall_and_macro_f1(tmp_path):
    _, plain_recall, plain_f1 = _train(tmp_path / "plain")
    weighted, recall, f1 = _train(tmp_path / "balanced", class_weights="balanced")
    assert recall > plain_recall + 0.2 and f1 > plain_f1 + 0.05, (
        plain_recall,
        recall,
        plain_f1,
        f1,
    )
    # scikit-learn's rule on the 95/5 training split: 2000 / (2 * count)
    torch.testing.assert_close(
        weighted._loss_weights.tensor, torch.tensor([2000 / 3800, 2000 / 200])
    )
    # Focal loss helps the rare class too, and the weights can be given as they are.
    _, focal_recall, _ = _train(tmp_path / "focal", class_weights=[1.0, 5.0], focal_gamma=2.0)
    assert focal_recall > plain_recall + 0.2


def test_the_weighted_focal_loss_is_what_the_formula_says():
    module = lk.ClassificationModule(
        lk.models.MLP(4, 3), 3, class_weights=[1.0, 2.0, 3.0], focal_gamma=2.0
    )
    preds, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([1.0, 2.0, 3.0])
    p_true = preds.softmax(1)[torch.arange(6), target]
    expected = (
        (1 - p_true) ** 2 * w[target] * -preds.log_softmax(1)[torch.arange(6), target]
    ).sum() / w[target].sum()
    torch.testing.assert_close(module.compute_loss(preds, target), expected)
    plain = lk.ClassificationModule(lk.models.MLP(4, 3), 3, class_weights=[1.0, 2.0, 3.0])
    torch.testing.assert_close(
        plain.compute_loss(preds, target), F.cross_entropy(preds, target, weight=w)
    )


def test_binary_and_multilabel_balanced_weights(tmp_path):
    x = torch.randn(40, 4)
    y = (torch.arange(40) < 10).float()  # 10 positives, 30 negatives
    binary = lk.BinaryClassificationModule(
        lk.models.MLP(4, 1), pos_weight="balanced", focal_gamma=1.0
    )
    dm = lk.data.DataModule(TensorDataset(x, y), val_split=0.0, batch_size=20)
    no_log_trainer(tmp_path / "b", max_epochs=1).fit(binary, datamodule=dm)
    assert binary._balanced_weight.tensor.item() == pytest.approx(3.0)
    labels = torch.stack([(torch.arange(40) < 8), (torch.arange(40) < 20)], 1).float()
    multi = lk.MultilabelClassificationModule(lk.models.MLP(4, 2), 2, class_weights="balanced")
    dm = lk.data.DataModule(TensorDataset(x, labels), val_split=0.0, batch_size=20)
    no_log_trainer(tmp_path / "m", max_epochs=1).fit(multi, datamodule=dm)
    torch.testing.assert_close(multi._loss_weights.tensor, torch.tensor([32 / 8, 20 / 20]))


def test_weights_are_recorded_as_plain_data_and_reload(tmp_path):
    module = lk.ClassificationModule(lk.models.MLP(8, 2), 2, class_weights=torch.tensor([1.0, 4.0]))
    dm = lk.data.DataModule(_imbalanced(60, 20, seed=0), val_split=0.25, batch_size=16)
    trainer = no_log_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, datamodule=dm)
    loaded = lk.ClassificationModule.load_from_checkpoint(
        trainer.checkpoint_callback.best_model_path
    )
    assert loaded.class_weights == [1.0, 4.0] and loaded.hparams.class_weights == [1.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"class_weights": [1.0]},
            r"class_weights must be None, 'balanced' or 2 positive finite weights",
        ),
        ({"class_weights": [1.0, -1.0]}, r"2 positive finite weights"),
        (
            {"class_weights": "balance"},
            r"class_weights must be None, 'balanced' or 2 weights, got 'balance'",
        ),
        ({"focal_gamma": -1.0}, r"focal_gamma must be a number in \[0, 10\], got -1.0"),
    ],
)
def test_bad_imbalance_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lk.ClassificationModule(lk.models.MLP(4, 2), 2, **kwargs)


def test_balanced_without_a_lightkit_data_module_is_unweighted_with_a_warning():
    module = lk.ClassificationModule(lk.models.MLP(4, 2), 2, class_weights="balanced")
    preds, target = torch.randn(3, 2), torch.tensor([0, 1, 0])
    with pytest.warns(UserWarning, match=r"counts the training labels of a lightkit data module"):
        loss = module.compute_loss(preds, target)  # as lk.diagnose does, outside a fit
    torch.testing.assert_close(loss, F.cross_entropy(preds, target))


def test_soft_targets_keep_the_weighted_mean():
    module = lk.ClassificationModule(lk.models.MLP(4, 2), 2, class_weights=[1.0, 9.0])
    preds = torch.randn(4, 2)
    soft = torch.tensor([[0.7, 0.3], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    w = torch.tensor([1.0, 9.0])
    per_sample = -(soft * w * preds.log_softmax(1)).sum(1)
    torch.testing.assert_close(
        module.compute_loss(preds, soft), per_sample.sum() / (soft @ w).sum()
    )
    hard = torch.tensor([0, 0, 1, 1])  # one-hot soft targets give exactly the hard-label loss
    torch.testing.assert_close(
        module.compute_loss(preds, F.one_hot(hard, 2).float()), module.compute_loss(preds, hard)
    )


def test_balanced_pos_weight_with_ema_and_batchnorm(tmp_path):
    # EMA copies the module when fitting starts: the buffer list must not change afterwards.
    torch.manual_seed(0)
    x = torch.randn(40, 1, 8, 8)
    y = (torch.arange(40) < 8).float()
    module = lk.BinaryClassificationModule(
        lk.models.ConvNet(1, 1, widths=(4,)), pos_weight="balanced"
    )
    dm = lk.data.DataModule(TensorDataset(x, y), val_split=0.25, batch_size=10)
    lk.fit(module, dm, max_epochs=2, ema=0.9, default_root_dir=tmp_path, logger=False,
           enable_progress_bar=False, enable_model_summary=False, verbose=False)  # fmt: skip
    train = dm.train_targets()  # counted on the training split
    assert module._balanced_weight.tensor.item() == pytest.approx(
        float((train == 0).sum() / (train == 1).sum())
    )


def test_counting_names_bad_labels_and_reads_torchvision_targets():
    class WithTargets(torch.utils.data.Dataset):
        def __init__(self):
            self.targets = [0, 1, 1, 1]
            self.reads = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            self.reads += 1
            return torch.zeros(2), self.targets[i]

    data = WithTargets()
    dm = lk.data.DataModule(data, val_split=0.0)
    dm.setup("fit")
    before = data.reads
    assert dm.train_targets().tolist() == [0, 1, 1, 1]
    assert data.reads == before  # the targets attribute is read, not the samples
    module = lk.ClassificationModule(lk.models.MLP(4, 2), 2)
    from lightkit.tasks._imbalance import balanced_class_weights

    with pytest.raises(ValueError, match=r"holds label 5, outside \[0, 2\)"):
        balanced_class_weights(torch.tensor([0, 5]), 2, module._name)
    assert lk.ClassificationModule(
        lk.models.MLP(4, 2), 2, class_weights=np.array([1.0, 2.0])
    ).class_weights == [1.0, 2.0]


def test_a_balanced_sampler_draws_the_classes_about_equally_and_resumes(tmp_path):
    from helpers import flat_weights

    data = _imbalanced(190, 10, seed=3)
    dm = lk.data.DataModule(data, val_split=0.0, batch_size=50, sampler="balanced")
    dm.setup("fit")
    labels = torch.cat([batch[1] for batch in dm.train_dataloader()])
    assert len(labels) == 200 and 0.35 < labels.float().mean().item() < 0.65  # was 0.05
    # The DataLoader path (an image-file dataset would take it) draws alike.
    dm_loader = lk.data.DataModule(data, val_split=0.0, batch_size=50, sampler="balanced")
    dm_loader.setup("fit")
    object.__setattr__(dm_loader, "_distributed", lambda: True)  # force the DataLoader path
    loader_labels = torch.cat([batch[1] for batch in dm_loader.train_dataloader()])
    assert 0.35 < loader_labels.float().mean().item() < 0.65

    def run(root, epochs, resume=False):
        torch.manual_seed(0)
        module = lk.ClassificationModule(lk.models.MLP(8, 2), 2)
        dm = lk.data.DataModule(_imbalanced(190, 10, seed=3), val_split=0.0, batch_size=50,
                                sampler="balanced")  # fmt: skip
        lk.fit(module, dm, max_epochs=epochs, resume=resume, default_root_dir=root, logger=False,
               enable_progress_bar=False, enable_model_summary=False, verbose=False)  # fmt: skip
        return flat_weights(module)

    whole = run(tmp_path / "whole", 3)
    run(tmp_path / "part", 1)
    torch.testing.assert_close(run(tmp_path / "part", 3, resume=True), whole, rtol=0, atol=0)


def test_the_balanced_sampler_needs_class_labels():
    with pytest.raises(ValueError, match=r"sampler must be one of \('balanced',\)|sampler must be"):
        lk.data.DataModule(_imbalanced(10, 10, seed=0), sampler="uniform")
    multi = TensorDataset(torch.randn(20, 4), torch.zeros(20, 3))
    dm = lk.data.DataModule(multi, val_split=0.0, sampler="balanced")
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"needs one integer class label per training sample"):
        dm.train_dataloader()


@pytest.mark.slow
def test_the_balanced_sampler_raises_minority_recall(tmp_path):
    def train(sampler):
        torch.manual_seed(0)
        module = lk.ClassificationModule(lk.models.MLP(8, 2, hidden=[16]), 2)
        dm = lk.data.DataModule(_imbalanced(1900, 100, seed=1), val_split=0.0, batch_size=64,
                                sampler=sampler)  # fmt: skip
        no_log_trainer(tmp_path / str(sampler), max_epochs=8).fit(module, datamodule=dm)
        test = _imbalanced(500, 500, seed=2)
        with torch.no_grad():
            predicted = module.eval()(test.tensors[0]).argmax(1)
        return multiclass_recall(predicted, test.tensors[1], num_classes=2, average="none")[
            1
        ].item()

    assert train("balanced") > train(None) + 0.2
