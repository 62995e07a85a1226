"""lk.data.write_streaming and StreamingDataModule: LitData shards, local and behind fsspec URLs."""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
import uuid
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs, tiny_net
from lightkit.data._splits import split_indices
from lightkit.data.datasets import find_image_folder

pytest.importorskip("litdata")
fsspec = pytest.importorskip("fsspec")

SCRIPT = Path(__file__).parents[1] / "scripts" / "streaming_training.py"
MANIFEST = "lightkit-streaming.json"


def _ids(n: int = 100) -> TensorDataset:
    """Samples whose input is their own index (as a float), labels 0..3."""
    return TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 4)


def _memory_url() -> str:
    return f"memory://lightkit-test-{uuid.uuid4().hex}"  # one process-wide store: unique names


def _read_all(dm: lk.data.StreamingDataModule, split: str) -> tuple[list[int], list[int]]:
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}
    xs, ys = [], []
    for x, y in loader[split]():
        xs += x[:, 0].long().tolist()
        ys += y.tolist()
    return xs, ys


# --- writing and reading back --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "file", "memory"])
def test_every_sample_is_read_back_once_in_its_recorded_split(tmp_path, where):
    target = {
        "local": str(tmp_path / "shards"),
        "file": f"file://{tmp_path / 'shards'}",
        "memory": _memory_url(),
    }[where]
    out = lk.data.write_streaming(
        _ids(100), target, val_split=0.2, test_split=0.1, seed=3, chunk_bytes="256B",
        class_names=["a", "b", "c", "d"],
    )  # fmt: skip
    assert out == (str(tmp_path / "shards") if where != "memory" else target)
    dm = lk.data.StreamingDataModule(out, batch_size=8, cache_dir=tmp_path / "cache")
    dm.setup()
    splits = dm.manifest["splits"]
    recorded = {s: splits[s]["source_indices"] for s in ("train", "val", "test")}
    test_idx, val_idx, train_idx = split_indices(100, [0.1, 0.2], 3)  # the seeded split
    assert recorded == {"train": train_idx, "val": val_idx, "test": test_idx}
    assert (dm.num_samples("train"), dm.num_samples("val"), dm.num_samples("test")) == (70, 20, 10)
    for split, expected in recorded.items():
        xs, ys = _read_all(dm, split)
        assert sorted(xs) == sorted(expected), split
        assert all(y == x % 4 for x, y in zip(xs, ys, strict=True))
    assert dm.class_names == ("a", "b", "c", "d") and dm.num_classes == 4
    assert dm.manifest["seed"] == 3 and dm.manifest["lightkit"] == lk.__version__


def test_training_order_is_seeded_new_each_epoch_and_evaluation_is_in_order(tmp_path):
    out = lk.data.write_streaming(_ids(64), tmp_path / "s", val_split=0.25, chunk_bytes="128B")
    first = lk.data.StreamingDataModule(out, batch_size=8, seed=5)
    second = lk.data.StreamingDataModule(out, batch_size=8, seed=5)
    loader = first.train_dataloader()
    epoch_1 = [x[:, 0].tolist() for x, _ in loader]
    epoch_2 = [x[:, 0].tolist() for x, _ in loader]
    assert epoch_1 == [x[:, 0].tolist() for x, _ in second.train_dataloader()]  # same seed
    assert epoch_1 != epoch_2 and sorted(chain(*epoch_1)) == sorted(chain(*epoch_2))
    val = _read_all(first, "val")[0]
    assert val == sorted(val)


def test_transforms_apply_per_split_and_images_are_decoded_once_from_an_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
    out = lk.data.write_streaming(tmp_path / "pets", tmp_path / "s", val_split=0.2, seed=1)
    _, paths, labels = find_image_folder(tmp_path / "pets")
    _, val_idx, train_idx = split_indices(20, [0.0, 0.2], 1, labels)  # stratified, as the module
    dm_images = lk.data.ImageFolderDataModule(
        tmp_path / "pets", image_size=8, val_split=0.2, seed=1
    )
    assert dm_images.split_indices["val"] == val_idx  # the same split as ImageFolderDataModule's

    dm = lk.data.StreamingDataModule(out, batch_size=4, shuffle=False)
    assert dm.class_names == ("cat", "dog")
    x, y = next(iter(dm.train_dataloader()))  # no transform: float tensors in [0, 1], decoded
    first = torch.from_numpy(np.asarray(Image.open(paths[train_idx[0]]))).permute(2, 0, 1)
    assert x.shape == (4, 3, 12, 16) and torch.equal(x[0], first.float() / 255)
    assert y.tolist() == [labels[i] for i in train_idx[:4]]

    dm = lk.data.StreamingDataModule(
        out,
        batch_size=4,
        train_transform=lambda image: torch.full((2,), float(image.size[0])),  # PIL in
        eval_transform=lambda image: torch.zeros(2),
    )
    assert next(iter(dm.train_dataloader()))[0].eq(16).all()
    assert next(iter(dm.val_dataloader()))[0].eq(0).all()


def test_trains_from_an_in_memory_url_and_checkpoints_its_position(tmp_path):
    url = _memory_url()
    lk.data.write_streaming(make_blobs(192), url, val_split=0.25, chunk_bytes="1KB")
    dm = lk.data.StreamingDataModule(url, batch_size=16, cache_dir=tmp_path / "cache")
    trainer = lk.make_trainer(
        max_epochs=4, seed=0, default_root_dir=tmp_path / "runs", logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    module = lk.ClassificationModule(tiny_net(), num_classes=3, optimizer=lk.optim.adamw(lr=1e-2))
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 4 * 9  # 144 training samples, 9 batches an epoch
    assert float(trainer.callback_metrics["val/acc"]) > 0.9
    state = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=False)
    loader = state["StreamingDataModule"]["train_loader"]
    assert loader["dataset"]["input_dir_url"] == f"{url}/train"


# --- refusals --------------------------------------------------------------------------------------


def test_nothing_is_overwritten_but_an_earlier_write_and_only_when_asked(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"already holds files; pass overwrite=True"):
        lk.data.write_streaming(_ids(10), tmp_path / "s")
    with pytest.raises(FileExistsError, match="not a folder write_streaming wrote"):
        lk.data.write_streaming(_ids(10), tmp_path / "s", overwrite=True)
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"
    lk.data.write_streaming(_ids(10), tmp_path / "shards")
    lk.data.write_streaming(_ids(12), tmp_path / "shards", overwrite=True)  # an earlier write
    assert lk.data.StreamingDataModule(tmp_path / "shards").num_samples("train") == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "shards"]  # no staging left
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "shards").stat().st_mode & 0o777 == 0o777 & ~umask  # readable by others
    url = _memory_url()
    lk.data.write_streaming(_ids(10), url)
    with pytest.raises(FileExistsError, match="already holds files"):
        lk.data.write_streaming(_ids(10), url)


def test_files_that_appear_during_the_write_are_kept(tmp_path):
    out = tmp_path / "s"

    class Slow(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 4:  # meanwhile, someone saves a file there
                out.mkdir(exist_ok=True)
                (out / "precious.txt").write_text("keep me")
            return torch.zeros(2), 0

    with pytest.raises(FileExistsError, match="already holds files"):
        lk.data.write_streaming(Slow(), out)
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_shards_never_overlap_the_image_folder_they_come_from(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "pets" / name / "0.png")
    for target in (tmp_path / "pets", tmp_path / "pets" / "shards", tmp_path):
        with pytest.raises(ValueError, match="overlap"):
            lk.data.write_streaming(tmp_path / "pets", target, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "pets").iterdir()) == ["a", "b"]


def test_a_cache_of_an_earlier_write_of_the_same_url_is_not_read(tmp_path):
    url = _memory_url()
    lk.data.write_streaming(TensorDataset(torch.zeros(8, 1), torch.zeros(8, dtype=torch.long)), url)
    first = lk.data.StreamingDataModule(url, batch_size=8, cache_dir=tmp_path / "cache")
    assert _read_all(first, "train")[1] == [0] * 8
    ones = TensorDataset(torch.zeros(8, 1), torch.ones(8, dtype=torch.long))
    lk.data.write_streaming(ones, url, overwrite=True)
    again = lk.data.StreamingDataModule(url, batch_size=8, cache_dir=tmp_path / "cache")
    assert _read_all(again, "train")[1] == [1] * 8  # the new write, not the cached old one


def test_a_shard_folder_whose_index_would_unpickle_is_refused(tmp_path):
    out = lk.data.write_streaming(_ids(10), tmp_path / "s")
    index = json.loads((Path(out) / "train" / "index.json").read_text())
    index["config"]["data_format"][1] = "pickle"
    (Path(out) / "train" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="a pickle runs code"):
        lk.data.StreamingDataModule(out).setup("fit")
    index["config"]["data_format"][1] = "tensor"
    index["config"]["data_spec"] = json.dumps([1, {"type": "collections.OrderedDict"}])
    (Path(out) / "train" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="not laid out as write_streaming writes them"):
        lk.data.StreamingDataModule(out).setup("fit")
    (Path(out) / "train" / "index.json").write_text("{")
    with pytest.raises(ValueError, match="is not a LitData index"):
        lk.data.StreamingDataModule(out).setup("fit")


def test_images_are_stored_without_losing_their_range_or_palette(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 1 is red
    out = lk.data.write_streaming([(palette, 0), (palette, 1)], tmp_path / "s")
    x, _ = next(iter(lk.data.StreamingDataModule(out, batch_size=2).train_dataloader()))
    assert x[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]  # red, not palette index 1
    wide = Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16))
    with pytest.raises(TypeError, match=r"train sample 0: the input is a PIL image of mode 'I;16'"):
        lk.data.write_streaming([(wide, 0)], tmp_path / "t")


def test_a_failed_write_leaves_nothing_that_reads_as_data(tmp_path):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 7:
                raise OSError("disk on fire")
            return torch.zeros(2), 0

    with pytest.raises(RuntimeError, match=r"reading train sample 7 failed: OSError: disk on fire"):
        lk.data.write_streaming(Broken(), tmp_path / "s")
    assert list(tmp_path.iterdir()) == []
    url = _memory_url()
    with pytest.raises(RuntimeError, match="sample 7"):
        lk.data.write_streaming(Broken(), url)
    with pytest.raises(FileNotFoundError, match=r"write it with lk\.data\.write_streaming"):
        lk.data.StreamingDataModule(url)


@pytest.mark.parametrize(
    ("sample", "error", "match"),
    [
        ((torch.zeros(2), 0, 1), ValueError, r"train sample 0 has 3 parts"),
        ((object(), 0), TypeError, r"train sample 0: the input is a object"),
        ((torch.zeros(2), "cat"), TypeError, r"train sample 0: the target is a str"),
        ((torch.zeros(2), True), TypeError, r"train sample 0: the target is a bool"),
    ],
)
def test_samples_that_cannot_be_stored_are_named(tmp_path, sample, error, match):
    with pytest.raises(error, match=match):
        lk.data.write_streaming([sample, sample], tmp_path / "s")


@pytest.mark.parametrize(
    ("second", "match"),
    [
        ((torch.zeros(3, dtype=torch.int64), 0), r"the input is a 1-d int64 tensor, but the first"),
        ((Image.new("L", (2, 2)), 0), r"the input is a PIL image of mode 'L', but the first"),
        ((torch.zeros(2), torch.zeros(2)), r"the target is a 1-d float32 tensor, but the first"),
        (torch.zeros(2), "the target is no target, but the first"),
    ],
)
def test_a_sample_stored_unlike_the_first_is_named(tmp_path, second, match):
    samples = [(torch.zeros(2), 0), (torch.zeros(2), torch.tensor(1)), second]
    with pytest.raises(ValueError, match=r"train sample 2: " + match):
        lk.data.write_streaming(samples, tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"val_split": 1.0}, ValueError, r"val_split must be a number in \[0, 1\)"),
        ({"val_split": "0.2"}, TypeError, "val_split must be a number"),
        ({"seed": -1}, ValueError, "seed must be an integer"),
        ({"overwrite": "yes"}, TypeError, "overwrite must be True or False"),
        ({"mode": "CMYK"}, ValueError, "mode must be 'RGB' or 'L'"),
        ({"chunk_bytes": 1.5}, ValueError, "chunk_bytes must be a positive number of bytes"),
        ({"chunk_bytes": "lots"}, ValueError, "chunk_bytes must be a positive number of bytes"),
        ({"chunk_bytes": 0}, ValueError, "chunk_bytes must be"),
        (
            {
                "val": TensorDataset(torch.zeros(0, 1)),
            },
            ValueError,
            "val is empty",
        ),
        ({"val": _ids(4), "val_split": 0.5}, ValueError, "give val or val_split, not both"),
        ({"output_dir": 5}, TypeError, "output_dir must be a folder path or an fsspec URL"),
        ({"output_dir": "nope://x"}, ValueError, "fsspec has no usable filesystem for 'nope'"),
    ],
)
def test_write_streaming_arguments_are_checked(tmp_path, kwargs, error, match):
    kwargs = {"output_dir": tmp_path / "s", **kwargs}
    with pytest.raises(error, match=match):
        lk.data.write_streaming(_ids(10), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": "32"}, TypeError, "batch_size must be an integer"),
        ({"num_workers": -1}, ValueError, "num_workers must be an integer"),
        ({"shuffle": "no"}, TypeError, "shuffle must be True or False"),
        ({"train_transform": 3}, TypeError, "train_transform must be callable"),
        ({"storage_options": ["a"]}, TypeError, "storage_options must be a dict"),
        ({"max_cache_size": "huge"}, ValueError, "max_cache_size must be a positive number"),
    ],
)
def test_data_module_arguments_are_checked(tmp_path, kwargs, error, match):
    out = lk.data.write_streaming(_ids(10), tmp_path / "s")
    with pytest.raises(error, match=match):
        lk.data.StreamingDataModule(out, **kwargs)


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        (b"\xff\xfe", "is not valid JSON"),
        (b"[1, 2]", "is not a lightkit streaming manifest"),
        (json.dumps({"format": "lightkit-streaming", "version": 9}).encode(), "format version 9"),
        (
            json.dumps(
                {"format": "lightkit-streaming", "version": 1, "splits": {"val": {}}}
            ).encode(),
            "must name 'train'",
        ),
        (
            json.dumps(
                {
                    "format": "lightkit-streaming",
                    "version": 1,
                    "splits": {"train": {"num_samples": "7; rm -rf /"}},
                }
            ).encode(),
            r"num_samples'\] must be a count",
        ),
        (
            json.dumps(
                {
                    "format": "lightkit-streaming",
                    "version": 1,
                    "splits": {"train": {"num_samples": 10}},
                    "class_names": ["a", "a"],
                }
            ).encode(),
            "class_names",
        ),
    ],
)
def test_a_hostile_or_broken_manifest_is_refused_by_name(tmp_path, manifest, match):
    out = lk.data.write_streaming(_ids(10), tmp_path / "s")
    (Path(out) / MANIFEST).write_bytes(manifest)
    with pytest.raises(ValueError, match=match):
        lk.data.StreamingDataModule(out)


def test_missing_folders_and_changed_data_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.data.StreamingDataModule(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match=f"has no {MANIFEST}"):
        lk.data.StreamingDataModule(tmp_path / "half")
    out = lk.data.write_streaming(_ids(10), tmp_path / "s")
    manifest = json.loads((Path(out) / MANIFEST).read_text())
    manifest["splits"]["train"]["num_samples"] = 11
    (Path(out) / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds 10 samples; its manifest says 11"):
        lk.data.StreamingDataModule(out).setup("fit")
    with pytest.raises(ValueError, match="has no test split"):
        lk.data.StreamingDataModule(out).test_dataloader()


def test_a_checkpointed_position_from_other_data_or_batch_size_is_refused(tmp_path):
    a = lk.data.write_streaming(_ids(64), tmp_path / "a", chunk_bytes="128B")
    b = lk.data.write_streaming(_ids(64), tmp_path / "b", chunk_bytes="128B")
    loader = lk.data.StreamingDataModule(a, batch_size=8).train_dataloader()
    batches = iter(loader)
    next(batches)
    state = loader.state_dict()
    other = lk.data.StreamingDataModule(b, batch_size=8)
    other.load_state_dict({"train_loader": state})
    with pytest.raises(ValueError, match="resume with the data it was trained on"):
        other.train_dataloader()
    resized = lk.data.StreamingDataModule(a, batch_size=16)
    resized.load_state_dict({"train_loader": state})
    with pytest.raises(ValueError, match="only with the same batch_size"):
        resized.train_dataloader()
    for bad, match in [
        ({**state, "num_samples_yielded": -5}, r"streaming num_samples_yielded is -5"),
        ({**state, "num_samples_yielded": 10**9}, r"expected an integer in \[0, 64\]"),
        ({**state, "latest_worker_idx": 7}, r"latest_worker_idx is 7; expected an integer in \[0, 0\]"),
        ({**state, "dataset": {k: v for k, v in state["dataset"].items() if k != "seed"}}, "keys"),
        ({**state, "dataset": {**state["dataset"], "num_samples_yielded": "x"}}, "is 'x'"),
        ({**state, "dataset": {**state["dataset"], "region_of_interest": [[0, 10**9]]}},
         "region_of_interest"),
        ({**state, "dataset": {**state["dataset"], "cache_dir_path": "/etc"}}, "cache_dir_path"),
    ]:  # fmt: skip
        hostile = lk.data.StreamingDataModule(a, batch_size=8)
        hostile.load_state_dict({"train_loader": bad})
        with pytest.raises(ValueError, match=match):
            hostile.train_dataloader()
    with pytest.raises(TypeError, match="must be a dict"):
        hostile.load_state_dict({"train_loader": "x"})


# --- processes: a SIGKILLed run resumes exactly; DDP sees every sample once -----------------------


def _script(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    data = tmp_path_factory.mktemp("streaming") / "data"
    script = runpy.run_path(str(SCRIPT))  # the script's own data, written here (no process)
    return lk.data.write_streaming(script["dataset"](), data, val_split=0.25, chunk_bytes="4KB")


@pytest.mark.slow
def test_a_sigkilled_streaming_run_resumes_with_the_uninterrupted_runs_weights(tmp_path, shards):
    reference = _script(shards, str(tmp_path / "ref"), str(tmp_path / "ref.pt"))
    _finish(reference)
    killed = _script(shards, str(tmp_path / "run"), str(tmp_path / "run.pt"), "--delay", "0.1")
    deadline = time.monotonic() + 300
    while True:  # mid-epoch 0 (12 steps an epoch), after the checkpoint at step 6
        progress = tmp_path / "run" / "progress"
        step = re.fullmatch(r"step (\d+)", progress.read_text() if progress.exists() else "")
        if step and int(step[1]) >= 7:  # (a file caught mid-write does not match)
            break
        assert killed.poll() is None, killed.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached step 7"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "run.pt").exists()
    out = _finish(_script(shards, str(tmp_path / "run"), str(tmp_path / "run.pt"), "--resume"))
    assert "done at step 24" in out  # 2 epochs of 12 steps
    expected = torch.load(tmp_path / "ref.pt", weights_only=True)
    resumed = torch.load(tmp_path / "run.pt", weights_only=True)
    for key, value in expected.items():
        assert torch.equal(value, resumed[key]), f"{key} differs after the resume"


@pytest.mark.slow
def test_under_two_process_ddp_every_sample_is_trained_on_once_per_epoch(tmp_path, shards):
    _finish(_script(shards, str(tmp_path), str(tmp_path / "w.pt"), "--devices", "2", "--ids"))
    train = set(
        json.loads((Path(shards) / MANIFEST).read_text())["splits"]["train"]["source_indices"]
    )
    ranks = [
        [line.split() for line in (tmp_path / f"ids-rank{r}.txt").read_text().splitlines()]
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) == 2  # epochs
    for epoch, (a, b) in enumerate(zip(*ranks, strict=True)):
        assert len(a) == len(b) == len(train) // 2, epoch  # 384 samples, 192 each
        seen = [int(i) for i in a + b]
        assert sorted(seen) == sorted(train), f"epoch {epoch}: a sample missing or seen twice"
    assert ranks[0][0] != ranks[0][1]  # a new order each epoch
