"""record_init_args: a user's own net reloads from the checkpoint alone, once its module is trusted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import make_blobs, quiet_trainer


@lk.models.record_init_args
class WideNet(nn.Module):
    def __init__(self, features: int, classes: int, widths: tuple = (16,), **extra):
        super().__init__()
        layers, width = [], features
        for w in widths:
            layers += [nn.Linear(width, w), nn.ReLU()]
            width = w
        self.body = nn.Sequential(*layers, nn.Linear(width, classes))
        self.extra = extra

    def forward(self, x):
        return self.body(x)


def test_a_decorated_net_records_its_arguments_and_reloads_from_the_checkpoint(tmp_path):
    net = WideNet(8, 3, widths=(32, 16), note="v1")
    assert net.init_args == {"features": 8, "classes": 3, "widths": [32, 16], "note": "v1"}
    module = lk.ClassificationModule(net, num_classes=3)
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), val_split=0.25))
    path = trainer.checkpoint_callback.best_model_path

    with pytest.raises(lk.UntrustedSpecError, match=r"test_recording\.WideNet"):
        lk.ClassificationModule.load_from_checkpoint(path)  # not trusted: nothing is imported
    loaded = lk.ClassificationModule.load_from_checkpoint(path, trust=["test_recording"])
    assert isinstance(loaded.net, WideNet) and loaded.net.init_args == net.init_args
    x = make_blobs(8).tensors[0]
    module.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(x), module(x))
    predictor = lk.Predictor.from_checkpoint(path, trust=["test_recording"])
    assert predictor.predict(x).shape == (8, 3)


def test_arguments_that_are_not_plain_data_are_named():
    with pytest.raises(TypeError, match=r"WideNet\(widths=\.\.\.\).*Tensor"):
        WideNet(8, 3, widths=torch.tensor([4]))
    with pytest.raises(TypeError, match=r"decorates a torch\.nn\.Module class"):
        lk.models.record_init_args(dict)


class Undecorated(WideNet):
    def __init__(self, depth: int = 2):
        super().__init__(8, 3, widths=(16,) * depth)


@lk.models.record_init_args
class Decorated(WideNet):
    def __init__(self, depth: int = 2):
        super().__init__(8, 3, widths=(16,) * depth)


class Inherits(WideNet):
    pass


def test_subclasses_record_their_own_arguments_or_none():
    assert not hasattr(Undecorated(depth=3), "init_args")  # never the parent's arguments
    assert Decorated(depth=3).init_args == {"depth": 3}
    assert Inherits(8, 2).init_args == {"features": 8, "classes": 2, "widths": [16]}
