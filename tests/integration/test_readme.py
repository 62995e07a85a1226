"""The README's Python example runs as written, and twice gives the same weights."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

import lightkit as lk
from helpers import make_blobs

README = Path(__file__).resolve().parents[2] / "README.md"


def _run_example(folder: Path, monkeypatch) -> dict:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [b for b in blocks if "class MyDataset" in b]
    folder.mkdir()
    monkeypatch.chdir(folder)  # its runs/ folder goes here
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # as in a fresh process
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(example, "README.md", "exec"), namespace)
    assert not [w for w in caught if "before the seed was set" in str(w.message)]
    return namespace


def test_bring_your_own_example_runs_and_is_reproducible(tmp_path, monkeypatch):
    first = _run_example(tmp_path / "a", monkeypatch)
    assert first["best"].net is first["net"]
    assert (tmp_path / "a" / "runs" / "version_0" / "checkpoints" / "last.ckpt").exists()
    torch.manual_seed(12345)  # whatever ran before, the example seeds itself
    second = _run_example(tmp_path / "b", monkeypatch)
    for (name, a), b in zip(
        first["net"].state_dict().items(), second["net"].state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"{name} differs between two runs of the README example"


def test_a_net_built_before_the_seed_warns_at_fit(tmp_path, monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    module = lk.ClassificationModule(torch.nn.Linear(8, 3), num_classes=3)  # before the seed
    trainer = lk.make_trainer(
        max_epochs=1,
        seed=0,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    dm = lk.data.DataModule(make_blobs(64), batch_size=32)
    with pytest.warns(UserWarning, match=r"built before the seed was set.*seed_everything\(0\)"):
        trainer.fit(module, datamodule=dm)


def test_the_pictures_of_the_report_are_shown_and_in_the_repository():
    readme = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert readme, "the README's quickstart shows the report's confusion matrix"
    for picture in readme:
        assert (README.parent / picture).is_file(), picture
    page = README.parent / "docs" / "diagnose.md"  # the After training section
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text())
    assert len(pictures) == 3, pictures
    for picture in pictures:
        assert (page.parent / picture).is_file(), picture  # the site serves them from docs/
