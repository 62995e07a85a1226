"""Profiling: a report and a Chrome trace in the run folder; none by default."""

from __future__ import annotations

import json

import pytest

import lightkit as lk
from helpers import make_blobs


@pytest.mark.parametrize("profiler", ["simple", "pytorch"])
def test_profiler_writes_its_report_and_trace(tmp_path, capsys, profiler):
    data = make_blobs(n=512)
    dm = lk.data.TensorDataModule(*data.tensors, batch_size=32, val_split=0.25)
    module = lk.ClassificationModule(lk.models.MLP(8, 3, hidden=(16,)), 3)
    trainer = lk.make_trainer(
        max_epochs=1, profiler=profiler, default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    folder = tmp_path / "version_0" / "profile"
    report = folder / "fit-report.txt"
    out = capsys.readouterr().out
    assert report.exists() and "Profiler Report" in report.read_text()
    assert f"lightkit: profiler report {report}" in out
    traces = sorted(folder.glob("*training_step*.pt.trace.json"))
    if profiler == "pytorch":
        assert traces, f"no Chrome trace of training steps in {list(folder.iterdir())}"
        events = json.loads(traces[0].read_text())["traceEvents"]
        assert any("training_step" in e.get("name", "") for e in events)
        assert f"lightkit: Chrome trace {traces[0]}" in out
    else:
        assert "training_step" in report.read_text()
        assert not traces


def test_no_profiler_by_default_and_no_profile_folder(tmp_path):
    from lightning.pytorch.profilers import PassThroughProfiler

    trainer = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    profiler = trainer.profiler
    assert isinstance(profiler, PassThroughProfiler)  # Lightning's "no profiler", cheaper
    with profiler.profile("a"), profiler.profile("nested"):  # reusable and re-entrant
        pass
    assert not (tmp_path / "version_0" / "profile").exists()
