"""What a run shows: TensorBoard scalars, figures and hparams; torchinfo summary; progress; OOM."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import TensorDataset

import lightkit as lk
from helpers import make_blobs


def _images(n: int = 96) -> TensorDataset:
    """Three classes of 1×8×8 images: a bright row at the top, middle or bottom."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.3
    for i, label in enumerate(y.tolist()):
        x[i, 0, 1 + 3 * label] += 2.0
    return TensorDataset(x, y)


def _events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_tensorboard_gets_scalars_figures_and_hparams(tmp_path):
    trainer = lk.make_trainer(
        max_epochs=2, default_root_dir=tmp_path, log_every_n_steps=2, enable_progress_bar=False
    )
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(_images(), batch_size=16, val_split=0.25))
    events = _events(trainer.logger.log_dir)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "val/loss", "val/acc", "val/f1"} <= scalars
    assert any(tag.startswith("lr-") for tag in scalars)
    norms = [e.value for e in events.Scalars("train/grad_norm")]
    assert len(norms) == trainer.global_step // 2 == 5 and all(v > 0 for v in norms)  # every 2nd
    images = set(events.Tags()["images"])
    assert {"val/confusion_matrix", "val/predictions"} <= images
    assert len(events.Images("val/confusion_matrix")) == 2  # one per validation epoch
    assert events.Images("val/predictions")[0].width > 100
    # hyperparameters with metrics: TensorBoard's HPARAMS tab
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins


def test_segmentation_overlays(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False)
    dm = lk.data.ShapesDataModule(num_samples=40, image_size=16, batch_size=8)
    trainer.fit(lk.SegmentationModule(lk.models.UNet(3, 3, base=4, depth=2), 3), datamodule=dm)
    images = set(_events(trainer.logger.log_dir).Tags()["images"])
    assert "val/segmentation" in images and "val/predictions" not in images


def test_torchinfo_summary_is_printed_and_saved(tmp_path, capsys):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=lk.data.DataModule(_images(), batch_size=16))
    text = (tmp_path / "version_0" / "model_summary.txt").read_text()
    assert "input: (16, 1, 8, 8)" in text  # the real first batch
    assert "Total params" in text and "Total mult-adds" in text and "Conv2d" in text
    assert "model summary saved to" in capsys.readouterr().out
    # make_trainer(enable_model_summary=False) turns it off.
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                              enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(_images(), batch_size=16))
    assert not (tmp_path / "version_1" / "model_summary.txt").exists()
    assert before  # (the summary itself changes no weights: covered by the seeded-run tests)


def test_seeded_runs_are_identical_with_summary_and_figures(tmp_path):
    weights = []
    for run in range(2):
        trainer = lk.make_trainer(max_epochs=2, seed=0, default_root_dir=tmp_path / str(run),
                                  enable_progress_bar=False)  # fmt: skip
        module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
        trainer.fit(module, datamodule=lk.data.DataModule(_images(), batch_size=16))
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_plain_progress_lines_when_output_is_not_a_terminal(tmp_path, capsys):
    trainer = lk.make_trainer(max_epochs=2, default_root_dir=tmp_path, logger=False)
    bars = [c for c in trainer.callbacks if isinstance(c, lk.callbacks.PlainProgressBar)]
    assert len(bars) == 1  # pytest captures stdout: not a terminal
    bars[0].interval = 0  # a line after every batch
    data = make_blobs(n=64)
    trainer.fit(lk.ClassificationModule(lk.models.MLP(8, 3), 3),
                datamodule=lk.data.DataModule(data, batch_size=16))  # fmt: skip
    out = capsys.readouterr().out
    assert "epoch 1/2  step 1/" in out and "train/loss" in out
    assert "epoch 2/2 done in" in out and "val/loss" in out
    assert "\r" not in out  # no redraws


class OutOfMemory(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_gpu_memory_monitor_only_when_training_on_cuda(tmp_path, monkeypatch):
    def monitors(trainer):
        return [c for c in trainer.callbacks if isinstance(c, lk.callbacks.GPUMemoryMonitor)]

    cpu = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    assert monitors(cpu) == []  # on the CPU it would only cost hook calls
    monkeypatch.setattr("lightkit.trainer.presets.resolve_hardware", lambda accelerator: "cuda")
    gpu = lk.make_trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                          precision="32-true")  # fmt: skip
    assert len(monitors(gpu)) == 1


def test_oom_message_gets_advice(tmp_path):
    # make_trainer adds the monitor on CUDA only; a CUDA OOM error is simulated here on the CPU.
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, callbacks=[lk.callbacks.GPUMemoryMonitor()])  # fmt: skip
    module = lk.ClassificationModule(OutOfMemory(), 3)
    with pytest.raises(torch.cuda.OutOfMemoryError) as info:
        trainer.fit(module, datamodule=lk.data.DataModule(make_blobs(n=32), batch_size=8))
    message = str(info.value)
    assert message.startswith("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert "lightkit: CUDA ran out of memory" in message
    for advice in ("lk.fit", "accumulate_grad_batches", "bf16-mixed", "gradient_checkpointing"):
        assert advice in message


def test_rich_progress_bar_on_a_terminal(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from lightkit.trainer.presets import progress_bar as _progress_bar

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert isinstance(_progress_bar(), RichProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert isinstance(_progress_bar(), lk.callbacks.PlainProgressBar)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_gpu_memory_is_logged_per_epoch(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, default_root_dir=tmp_path, accelerator="gpu", devices=1,
                              enable_progress_bar=False)  # fmt: skip
    module = lk.ClassificationModule(lk.models.ConvNet(1, 3, widths=(4, 8)), 3)
    trainer.fit(module, datamodule=lk.data.DataModule(_images(), batch_size=16))
    assert float(trainer.callback_metrics["gpu/peak_allocated_mb"]) > 0
    assert float(trainer.callback_metrics["gpu/peak_reserved_mb"]) >= float(
        trainer.callback_metrics["gpu/peak_allocated_mb"]
    )
