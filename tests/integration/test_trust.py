"""The trust policy: what a checkpoint (or a config derived from one) may make lightkit import and call.

Every load path is tried with crafted checkpoints whose specs name code that would leave a marker
file behind (a shell command through ``os.system``, a module that writes the marker when it is
imported, a lightkit function that is not a model); the marker must never appear.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

import lightkit as lk
from helpers import make_blobs, no_log_trainer, resume_from, tamper_checkpoint, train_checkpoint
from lightkit._spec import from_spec, trusting
from lightkit.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real checkpoint of a ClassificationModule around a lightkit MLP."""
    return train_checkpoint(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def evil_module(tmp_path, monkeypatch) -> Path:
    """An importable module `lk_evil` that writes a marker file as soon as it is imported."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "lk_evil.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(marker)!r}).write_text("imported")
            import torch
            class Net(torch.nn.Linear):
                def __init__(self, **kwargs):
                    Path({str(marker)!r}).write_text("called")
                    super().__init__(8, 3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lk_evil", raising=False)
    return marker


def _payloads(marker: Path) -> dict:
    shell = {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}}
    return {
        "net=os.system": lambda c: c["hyper_parameters"].update(net=shell),
        "optimizer=os.system": lambda c: c["hyper_parameters"].update(
            optimizer={**shell, "partial": True}
        ),
        "scheduler=os.system": lambda c: c["hyper_parameters"].update(scheduler=shell),
        "net=module that runs on import": lambda c: c["hyper_parameters"].update(
            net={"class_path": "lk_evil.Net", "init_args": {}}
        ),
        "net=lightkit function that is not a model": lambda c: c["hyper_parameters"].update(
            net={"class_path": "lightkit.cli.main", "init_args": {"argv": ["doctor"]}}
        ),
        "net=torch function": lambda c: c["hyper_parameters"].update(
            net={"class_path": "torch.save", "init_args": {"obj": 1, "f": str(marker)}}
        ),
        "transform=os.system": lambda c: c["lightkit"].update(
            inference={"transform": shell, "image_mode": "RGB"}
        ),
        "task=module that runs on import": lambda c: c["lightkit"].update(task="lk_evil.Net"),
        "task=os.system": lambda c: c["lightkit"].update(task="os.system"),
        # What every `lightkit fit` checkpoint records: LightningCLI's instantiator, which would
        # have jsonargparse import and build the net itself, past lightkit's checks.
        "net via LightningCLI's _instantiator": lambda c: c["hyper_parameters"].update(
            _instantiator="lightning.pytorch.cli.instantiate_module",
            _class_path="lightkit.tasks.classification.ClassificationModule",
            net={"class_path": "lk_evil.Net", "init_args": {}},
        ),
    }


PAYLOADS = list(_payloads(Path("x")))


def _loaders(path: Path, out: Path):
    return {
        "ClassificationModule.load_from_checkpoint": lambda: (
            lk.ClassificationModule.load_from_checkpoint(path)
        ),
        "Predictor.from_checkpoint": lambda: lk.Predictor.from_checkpoint(path, device="cpu"),
        "lightkit export": lambda: main(
            ["export", str(path), "--format", "torchscript", "--output", str(out / "m.pt")]
        ),
        "lightkit serve": lambda: main(["serve", str(path), "--port", "8765"]),
    }


@pytest.mark.parametrize(
    "loader",
    [
        "ClassificationModule.load_from_checkpoint",
        "Predictor.from_checkpoint",
        "lightkit export",
        "lightkit serve",
    ],
)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_checkpoint_runs_nothing(
    trained, tmp_path, evil_module, payload, loader, capsys, monkeypatch
):
    marker = evil_module
    if loader == "lightkit serve":
        litserve = pytest.importorskip("litserve")

        def never_start(*args, **kwargs):
            raise RuntimeError("the server would have started with this checkpoint")

        monkeypatch.setattr(litserve.LitServer, "run", never_start)
    path = tamper_checkpoint(trained, tmp_path / "evil.ckpt", _payloads(marker)[payload])
    load = _loaders(path, tmp_path)[loader]
    if loader.startswith("lightkit"):
        if loader == "lightkit export" and payload.startswith("transform"):
            pytest.skip("export predicts no image: the recorded transform is checked, see below")
        assert load() == 1
        err = capsys.readouterr().err
        assert "refusing" in err or "was written by" in err, err
    elif payload.startswith("transform") and loader.endswith("load_from_checkpoint"):
        load()  # a task module never builds the recorded transform: only Predictor does
    else:
        refused = (
            (lk.UntrustedSpecError, TypeError)
            if payload.startswith("task")
            else lk.UntrustedSpecError
        )
        with pytest.raises(refused):
            load()
    assert not marker.exists(), f"{payload} through {loader} ran code"
    assert "lk_evil" not in sys.modules


def test_recorded_transform_is_checked_but_built_only_for_images(trained, tmp_path, evil_module):
    shell = {"class_path": "os.system", "init_args": {"command": f"touch {evil_module}"}}
    bad = tamper_checkpoint(
        trained,
        tmp_path / "t.ckpt",
        lambda c: c["lightkit"].update(inference={"transform": shell}),
    )
    with pytest.raises(lk.UntrustedSpecError, match=r"os\.system"):
        lk.Predictor.from_checkpoint(bad, device="cpu")
    huge = {
        "class_path": "lightkit.data.transforms.eval_preset",
        "init_args": {"image_size": 10**6, "mean": [0.5], "std": [0.5]},
    }
    big = tamper_checkpoint(
        trained, tmp_path / "b.ckpt", lambda c: c["lightkit"].update(inference={"transform": huge})
    )
    with pytest.raises(ValueError, match="image_size"):
        lk.Predictor.from_checkpoint(big, device="cpu")
    ok = {**huge, "init_args": {"image_size": 8, "mean": [0.5], "std": [0.5]}}
    good = tamper_checkpoint(
        trained, tmp_path / "g.ckpt", lambda c: c["lightkit"].update(inference={"transform": ok})
    )
    predictor = lk.Predictor.from_checkpoint(good, device="cpu")
    predictor.predict(torch.randn(4, 8))
    assert predictor._transform is None  # not built: no image was predicted
    assert callable(predictor.transform)
    assert not evil_module.exists()


def test_trusted_module_is_imported_and_an_untrusted_one_names_how_to_trust(tmp_path, monkeypatch):
    (tmp_path / "lk_user_nets.py").write_text(
        textwrap.dedent(
            """
            import torch
            class Net(torch.nn.Module):
                def __init__(self, width=16):
                    super().__init__()
                    self.init_args = {"width": width}
                    self.body = torch.nn.Sequential(
                        torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 3)
                    )
                def forward(self, x):
                    return self.body(x)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import lk_user_nets

    torch.manual_seed(0)
    module = lk.ClassificationModule(lk_user_nets.Net(width=12), num_classes=3)
    assert module.hparams.net["class_path"] == "lk_user_nets.Net"
    trainer = no_log_trainer(tmp_path / "runs", max_epochs=1)
    trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(64), batch_size=32))
    path = trainer.checkpoint_callback.last_model_path
    with pytest.raises(lk.UntrustedSpecError) as err:
        lk.ClassificationModule.load_from_checkpoint(path)
    assert "'lk_user_nets.Net'" in str(err.value) and "trust=['lk_user_nets']" in str(err.value)
    with pytest.raises(lk.UntrustedSpecError):
        lk.Predictor.from_checkpoint(path, device="cpu")

    loaded = lk.ClassificationModule.load_from_checkpoint(path, trust=["lk_user_nets"])
    predictor = lk.Predictor.from_checkpoint(path, device="cpu", trust="lk_user_nets.Net")
    x = torch.randn(5, 8)
    module.eval()
    torch.testing.assert_close(predictor.predict(x), module(x).softmax(-1).detach())
    assert isinstance(loaded.net, lk_user_nets.Net) and loaded.net.init_args == {"width": 12}
    # the user's own net instance needs no trust at all
    again = lk.ClassificationModule.load_from_checkpoint(path, net=lk_user_nets.Net(width=12))
    torch.testing.assert_close(again.net(x), loaded.net(x))
    assert main(["export", path, "--format", "torchscript", "--trust", "lk_user_nets"]) == 0


@pytest.mark.parametrize(
    ("net", "edit_weights", "message"),
    [
        # 10^6 × 10^6 floats would be 4 TB: an integer larger than the file's weights
        ({"in_features": 10**6, "out_features": 10**6}, None, "has an argument 1,000,000"),
        # 100 × 100 floats: small integers, but more bytes than the file holds (meta-device probe)
        ({"in_features": 100, "out_features": 100}, None, "would hold 40,400 bytes"),
        # a zero-stride tensor declares 10^8 numbers but stores 4 bytes: counted by storage
        (
            {"in_features": 10**4, "out_features": 10**4},
            lambda sd: sd.update(big=torch.zeros(1).expand(10**4, 10**4)),
            "has an argument 10,000",
        ),
    ],
)
def test_net_larger_than_the_checkpoint_weights_is_refused_before_allocating(
    trained, tmp_path, net, edit_weights, message
):
    def edit(c):
        c["hyper_parameters"].update(net={"class_path": "torch.nn.Linear", "init_args": net})
        if edit_weights:
            edit_weights(c["state_dict"])

    path = tamper_checkpoint(trained, tmp_path / "bomb.ckpt", edit)
    with pytest.raises(ValueError, match=message):
        lk.ClassificationModule.load_from_checkpoint(path)


def test_a_huge_layer_count_is_refused_before_the_meta_probe(trained, tmp_path):
    rnn = {
        "class_path": "torch.nn.RNN",
        "init_args": {"input_size": 8, "hidden_size": 3, "num_layers": 10**9},
    }
    path = tamper_checkpoint(
        trained, tmp_path / "rnn.ckpt", lambda c: c["hyper_parameters"].update(net=rnn)
    )
    with pytest.raises(ValueError, match="has an argument 1,000,000,000"):
        lk.ClassificationModule.load_from_checkpoint(path)


def test_allow_listed_torch_classes_build(trained, tmp_path):
    linear = {"class_path": "torch.nn.Linear", "init_args": {"in_features": 8, "out_features": 3}}
    sgd = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}, "partial": True}
    step = {
        "class_path": "torch.optim.lr_scheduler.StepLR",
        "init_args": {"step_size": 2},
        "partial": True,
    }

    def edit(c):
        c["hyper_parameters"].update(net=linear, optimizer=sgd, scheduler=step)
        c["state_dict"] = {
            "net.weight": torch.zeros(3, 8),
            "net.bias": torch.zeros(3),
            **{k: v for k, v in c["state_dict"].items() if not k.startswith("net.")},
        }

    path = tamper_checkpoint(trained, tmp_path / "torch.ckpt", edit)
    module = lk.ClassificationModule.load_from_checkpoint(path)
    assert isinstance(module.net, torch.nn.Linear)
    assert module.optimizer_factory.func is torch.optim.SGD
    # a torch.optim class given as a net is the wrong kind, refused before it is called
    with pytest.raises(lk.UntrustedSpecError, match=r"torch\.optim\.SGD"):
        from_spec({"class_path": "torch.optim.SGD", "init_args": {}}, "net", kind="net")


def test_a_checkpoint_of_one_task_does_not_load_as_another(trained):
    with pytest.raises(TypeError, match=r"was written by lightkit\.tasks\.classification\.Classi"):
        lk.RegressionModule.load_from_checkpoint(trained)
    with pytest.raises(TypeError, match="was written by"):
        lk.Predictor.from_checkpoint(trained, task=lk.RegressionModule)
    assert isinstance(
        lk.ClassificationModule.load_from_checkpoint(trained), lk.ClassificationModule
    )


def test_trust_argument_is_checked(trained):
    for bad in (True, 3, ["ok", 4], [""]):
        with pytest.raises(TypeError, match="trust must be None, a module name"):
            lk.Predictor.from_checkpoint(trained, trust=bad)


def test_trusting_is_scoped():
    spec = {"class_path": "collections.OrderedDict", "init_args": {}}
    with trusting(["collections"]):
        assert from_spec(spec, "x") == {}
    with pytest.raises(lk.UntrustedSpecError):
        from_spec(spec, "x")


# --- the command line: LightningCLI merges --ckpt_path hyperparameters into the config -------------

CONFIG = Path(__file__).parents[2] / "examples" / "configs" / "digits.yaml"


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    args = [
        "fit",
        "--config",
        str(CONFIG),
        f"--trainer.default_root_dir={root}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(args) == 0
    return next(root.rglob("last.ckpt"))


def test_lightning_cli_private_hook_exists():
    """lightkit's CLI checks --ckpt_path through LightningCLI._parse_ckpt_path: fail here if it moves."""
    from lightning.pytorch.cli import LightningCLI

    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None))


@pytest.mark.slow
def test_cli_ckpt_path_refuses_hostile_hyperparameters(digits_checkpoint, tmp_path, evil_module):
    for name in ("net=os.system", "net=module that runs on import", "optimizer=os.system"):
        path = tamper_checkpoint(
            digits_checkpoint, tmp_path / "evil.ckpt", _payloads(evil_module)[name]
        )
        args = [
            "validate",
            "--config",
            str(CONFIG),
            f"--ckpt_path={path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.limit_val_batches=1",
        ]
        with pytest.raises(SystemExit, match="refusing to import and call"):
            main(args)
        assert not evil_module.exists(), name
    # the untampered checkpoint validates
    ok = [
        "validate",
        "--config",
        str(CONFIG),
        f"--ckpt_path={digits_checkpoint}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_val_batches=1",
    ]
    assert main(ok) == 0


@pytest.mark.slow
def test_cli_ckpt_path_of_another_task_is_refused(digits_checkpoint, tmp_path):
    path = tamper_checkpoint(
        digits_checkpoint,
        tmp_path / "other.ckpt",
        lambda c: c["lightkit"].update(task="lightkit.tasks.regression.RegressionModule"),
    )
    with pytest.raises(SystemExit, match=r"was written by lightkit\.tasks\.regression"):
        main(
            [
                "validate",
                "--config",
                str(CONFIG),
                f"--ckpt_path={path}",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )


def test_export_never_replaces_its_own_checkpoint(trained, tmp_path, capsys):
    copy = tmp_path / "model.ckpt"
    copy.write_bytes(trained.read_bytes())
    before = copy.read_bytes()
    code = main(
        ["export", str(copy), "--format", "torchscript", "--output", str(copy), "--overwrite"]
    )
    assert code == 1 and "is the checkpoint being exported" in capsys.readouterr().err
    assert copy.read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c["lightkit"].update(input_shape="8"), "input_shape '8'"),
        (lambda c: c["lightkit"].update(input_shape=[8, -1]), "input_shape [8, -1]"),
        (lambda c: c.update(lightkit=["task"]), "'lightkit' section is a list"),
        (lambda c: c.update(lightkit_train_loss_sum=[1.0, 3]), "lightkit_train_loss_sum"),
    ],
)
def test_malformed_lightkit_sections_are_refused_by_name(trained, tmp_path, edit, fragment):
    from lightkit.checkpointing import CheckpointError

    path = tamper_checkpoint(trained, tmp_path / "bad.ckpt", edit)
    with pytest.raises((CheckpointError, ValueError)) as err:
        lk.ClassificationModule.load_from_checkpoint(path)
    assert fragment in str(err.value)


def test_export_never_replaces_a_hard_link_to_its_checkpoint(trained, tmp_path, capsys):
    import os

    copy = tmp_path / "model.ckpt"
    copy.write_bytes(trained.read_bytes())
    os.link(copy, tmp_path / "alias.pt")
    code = main(
        [
            "export",
            str(copy),
            "--format",
            "torchscript",
            "--output",
            str(tmp_path / "alias.pt"),
            "--overwrite",
        ]
    )
    assert code == 1
    assert copy.read_bytes() == trained.read_bytes()


@pytest.mark.parametrize("size", ["0", "-3"])
def test_export_batch_size_is_checked(trained, tmp_path, capsys, size):
    code = main(
        [
            "export",
            str(trained),
            "--format",
            "torchscript",
            "--output",
            str(tmp_path / "m.pt"),
            "--batch-size",
            size,
        ]
    )
    assert code == 1 and "--batch-size" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "value",
    [
        "lk_evil.Net",  # jsonargparse turns a bare class path string into the class
        "{class_path: lk_evil.Net}",  # ... a YAML string into a spec
        "EVIL_YAML",  # ... and a path into the file's contents
    ],
)
@pytest.mark.slow
def test_cli_ckpt_path_strings_that_name_code_are_not_merged(
    digits_checkpoint, tmp_path, evil_module, value
):
    if value == "EVIL_YAML":
        (tmp_path / "evil_net.yaml").write_text("class_path: lk_evil.Net\n")
        value = str(tmp_path / "evil_net.yaml")

    def edit(c):
        c["hyper_parameters"].update(net=value, scheduler="lk_evil.Net")
        c["hyper_parameters"]["class_path"] = "torch.nn.Linear"
        c["hyper_parameters"]["_class_path"] = "lk_evil.Net"

    path = tamper_checkpoint(digits_checkpoint, tmp_path / "strings.ckpt", edit)
    args = [
        "validate",
        "--config",
        str(CONFIG),
        f"--ckpt_path={path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_val_batches=1",
    ]
    with pytest.warns(UserWarning, match=r"are not merged into the config"):
        assert main(args) == 0  # validated with the config's own net
    assert not evil_module.exists()
    assert "lk_evil" not in sys.modules


def test_trust_covers_what_a_module_defines_not_what_it_imports(tmp_path, monkeypatch, trained):
    (tmp_path / "lk_user_mod.py").write_text("import os\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "RAN"
    shell = {"class_path": "lk_user_mod.os.system", "init_args": {"command": f"touch {marker}"}}
    path = tamper_checkpoint(
        trained, tmp_path / "t.ckpt", lambda c: c["hyper_parameters"].update(net=shell)
    )
    with pytest.raises(lk.UntrustedSpecError, match=r"lk_user_mod\.os\.system"):
        lk.Predictor.from_checkpoint(path, device="cpu", trust=["lk_user_mod"])
    assert not marker.exists()


def test_a_checkpoint_is_read_once(trained, monkeypatch):
    """What lightkit checks is what it builds: there is no second read a swapped file could feed."""
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a) or real(*a, **k))
    lk.ClassificationModule.load_from_checkpoint(trained)
    assert len(reads) == 1


def test_a_long_thin_image_does_not_blow_up_the_resize(tmp_path):
    """A 50000×1 PNG (a few hundred bytes) resized by its shorter side would need gigabytes."""
    from PIL import Image

    from lightkit.data.datasets import BadImageError, ImageFileDataset

    path = tmp_path / "strip.png"
    Image.new("RGB", (50000, 1)).save(path)
    preset = lk.data.transforms.eval_preset(224)
    with pytest.raises(BadImageError, match=r"strip\.png.*sample 0.*50000×1"):
        ImageFileDataset([path], transform=preset)[0]
    module = lk.ClassificationModule(torch.nn.Flatten(), num_classes=3)
    predictor = lk.Predictor(module, device="cpu", transform=preset)
    with pytest.raises(ValueError, match=r"strip\.png"):
        predictor.predict([path])
    wide = tmp_path / "wide.png"
    Image.new("RGB", (3000, 200)).save(wide)  # 15:1: the longer side is bounded, still 224×224
    assert ImageFileDataset([wide], transform=preset)[0].shape == (3, 224, 224)


def _first_key(mapping, prefix):
    return next(k for k in mapping if k.startswith(prefix))


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c.update(global_step="abc"), "global_step is malformed"),
        (lambda c: c["optimizer_states"][0].update(param_groups=[]), "param_groups"),
        (lambda c: c["optimizer_states"][0]["param_groups"][0].update(lr="abc"), "['lr']"),
        (lambda c: c.update(optimizer_states="adam"), "optimizer_states is malformed"),
        (
            lambda c: c["callbacks"][_first_key(c["callbacks"], "EarlyStopping")].update(
                best_score="abc"
            ),
            "best_score",
        ),
        (
            lambda c: c["loops"]["fit_loop"]["epoch_progress"]["total"].update(completed="2"),
            "['completed']",
        ),
        (lambda c: c.update(callbacks=["x"]), "callbacks is malformed"),
        (lambda c: c.update({"pytorch-lightning_version": "0.9.0"}), "pytorch-lightning_version"),
    ],
)
def test_malformed_training_state_is_named_on_resume(trained, tmp_path, edit, fragment):
    from lightkit.checkpointing import CheckpointError

    path = tamper_checkpoint(trained, tmp_path / "state.ckpt", edit)
    with pytest.raises(CheckpointError) as err:
        resume_from(path, tmp_path)
    assert fragment in str(err.value) and "state.ckpt" in str(err.value)


def test_deeply_nested_arguments_and_mismatched_weights_are_named(trained, tmp_path):
    from lightkit.checkpointing import CheckpointError

    deep: list = [8]
    for _ in range(100):
        deep = [deep]
    path = tamper_checkpoint(
        trained,
        tmp_path / "deep.ckpt",
        lambda c: c["hyper_parameters"]["net"]["init_args"].update(hidden=deep),
    )
    with pytest.raises(ValueError, match="nested more than 8 deep"):
        lk.ClassificationModule.load_from_checkpoint(path)
    extra = tamper_checkpoint(
        trained, tmp_path / "extra.ckpt", lambda c: c["state_dict"].update(pad=torch.ones(2))
    )
    with pytest.raises(CheckpointError, match=r"(?s)extra\.ckpt.*do not fit.*pad"):
        lk.ClassificationModule.load_from_checkpoint(extra)


def test_hparams_file_is_untrusted_input_too(trained, tmp_path, evil_module):
    import yaml

    hparams = dict(torch.load(trained, weights_only=True)["hyper_parameters"])
    good = tmp_path / "hparams.yaml"
    good.write_text(yaml.safe_dump(hparams))
    module = lk.ClassificationModule.load_from_checkpoint(trained, hparams_file=good)
    assert module.hparams.num_classes == 3
    evil = tmp_path / "evil.yaml"
    evil.write_text(yaml.safe_dump({**hparams, "net": {"class_path": "lk_evil.Net"}}))
    with pytest.raises(lk.UntrustedSpecError, match="lk_evil"):
        lk.ClassificationModule.load_from_checkpoint(trained, hparams_file=evil)
    python_tag = tmp_path / "tag.yaml"
    python_tag.write_text("net: !!python/object/apply:os.system ['touch x']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        lk.ClassificationModule.load_from_checkpoint(trained, hparams_file=python_tag)
    assert not evil_module.exists()
