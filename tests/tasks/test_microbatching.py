"""OOMMicrobatching (lk.fit(oom_retry=True)): an out-of-memory step is retried in microbatches in
place, with the whole batch's gradient, and no step is computed twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import lightkit as lk
from helpers import flat_weights, make_blobs
from lightkit.tasks import MicrobatchError, OOMMicrobatching

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


class OutOfMemoryAfter(nn.Module):
    """Raises CUDA's OOM error in ``phase`` ("forward" or "backward") for training batches of
    more than ``limit`` rows once ``after`` training forward passes have run; ``rows`` lists the
    rows of every training forward pass (negative for one that failed)."""

    def __init__(self, after: int, limit: int = 16, phase: str = "forward", error=None):
        super().__init__()
        torch.manual_seed(0)  # every run starts from the same weights
        self.layers = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
        self.after, self.limit, self.phase = after, limit, phase
        self.error = error or torch.cuda.OutOfMemoryError(OOM)
        self.rows: list[int] = []
        self.eval_limit: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            if self.eval_limit is not None and x.shape[0] > self.eval_limit:
                raise torch.cuda.OutOfMemoryError(OOM)
            return self.layers(x)
        big = len(self.rows) >= self.after and x.shape[0] > self.limit
        if big and self.phase == "forward":
            self.rows.append(-x.shape[0])
            raise self.error
        self.rows.append(x.shape[0])
        out = self.layers(x)
        if big:  # the backward pass runs out of memory halfway through
            out = _FailInBackward.apply(out, self.error)
        return out


class _FailInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, error):
        ctx.error = error
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise ctx.error


def _run(tmp_path, name, net, **kwargs):
    module = lk.ClassificationModule(net, 3, optimizer=lk.optim.adamw(lr=1e-2))
    batch_size = kwargs.pop("batch_size", 64)
    dm = lk.data.TensorDataModule(*make_blobs(512).tensors, batch_size=batch_size,
                                  val_split=0.25, seed=0)  # fmt: skip
    options = dict(max_epochs=8, seed=0, default_root_dir=tmp_path / name, logger=False,
                   enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer = lk.fit(module, dm, **{**options, **kwargs})
    return module, trainer


def _clean(tmp_path, **kwargs):
    return _run(tmp_path, "clean", OutOfMemoryAfter(after=10**9), **kwargs)


@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_an_oom_is_retried_in_microbatches_with_the_same_steps_and_weights(tmp_path, phase):
    clean, clean_trainer = _clean(tmp_path)
    net = OutOfMemoryAfter(after=30, phase=phase)
    with pytest.warns(UserWarning) as record:
        module, trainer = _run(tmp_path, "oom", net)
    said = [str(w.message) for w in record if "out of memory" in str(w.message)]
    assert said == [
        "lightkit: out of memory in a training step of 64 rows; continuing in microbatches of "
        "32 rows (kept for the rest of the run and in its checkpoints)",
        "lightkit: out of memory in a training step of 32 rows; continuing in microbatches of "
        "16 rows (kept for the rest of the run and in its checkpoints)",
    ]
    assert trainer.global_step == clean_trainer.global_step == 48
    torch.testing.assert_close(flat_weights(module), flat_weights(clean), rtol=1e-5, atol=1e-6)
    # No training step computed twice: every row is seen as often as in the clean run, and the
    # only extra forward passes are the ones that failed (forward) or whose backward failed.
    done = [r for r in net.rows if r > 0]
    assert sum(clean.net.rows) == 48 * 64
    assert sum(done) == 48 * 64 + (0 if phase == "forward" else 64 + 32)
    if phase == "forward":
        assert net.rows[30:33] == [-64, -32, 16] and len([r for r in net.rows if r < 0]) == 2
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(
        float(clean_trainer.callback_metrics["train/loss"]), rel=1e-5
    )
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert checkpoint["callbacks"]["OOMMicrobatching"]["train_microbatch"] == 16


def test_a_resumed_run_starts_at_the_microbatch_that_fit(tmp_path):
    net = OutOfMemoryAfter(after=30)
    with pytest.warns(UserWarning, match="microbatches of 16 rows"):
        _run(tmp_path, "run", net, max_epochs=6)
    again = OutOfMemoryAfter(after=0)  # out of memory above 16 rows from the first batch
    _, trainer = _run(tmp_path, "run", again, max_epochs=8, resume=True)
    assert trainer.global_step == 48
    assert again.rows and max(again.rows) == 16 and min(again.rows) > 0  # no OOM again


def test_gradient_accumulation_and_a_forward_oom_keep_the_effective_batch(tmp_path):
    clean, _ = _clean(tmp_path, batch_size=32, accumulate_grad_batches=2)
    net = OutOfMemoryAfter(after=30)
    with pytest.warns(UserWarning, match="microbatches of 16 rows"):
        module, trainer = _run(tmp_path, "oom", net, batch_size=32, accumulate_grad_batches=2)
    assert trainer.global_step == 48
    torch.testing.assert_close(flat_weights(module), flat_weights(clean), rtol=1e-5, atol=1e-6)


def test_validation_is_split_too_and_logs_the_same_loss(tmp_path):
    _, clean_trainer = _clean(tmp_path, max_epochs=2)
    net = OutOfMemoryAfter(after=10**9)
    net.eval_limit = 40
    with pytest.warns(UserWarning, match=r"out of memory in a validation step of 64 rows; "
                      r"continuing in microbatches of 32 rows"):  # fmt: skip
        _, trainer = _run(tmp_path, "oom", net, max_epochs=2)
    for key in ("val/loss", "val/acc"):
        assert float(trainer.callback_metrics[key]) == pytest.approx(
            float(clean_trainer.callback_metrics[key]), rel=1e-5
        )


@pytest.mark.slow
def test_an_oom_at_one_row_and_other_errors_are_raised(tmp_path):
    with (
        pytest.raises(MicrobatchError, match=r"even at a microbatch of one row; use a smaller "
                      r"model, mixed precision .* CUDA out of memory"),
        pytest.warns(UserWarning),
    ):  # fmt: skip
        _run(tmp_path, "one", OutOfMemoryAfter(after=0, limit=0), max_epochs=1)
    # A CPU allocator failure is an out-of-memory error too.
    cpu = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")
    with pytest.warns(UserWarning, match="microbatches of 32 rows"):
        _run(tmp_path, "cpu", OutOfMemoryAfter(after=0, limit=32, error=cpu), max_epochs=1)
    # Anything else goes through untouched, as does an OOM with oom_retry=False.
    with pytest.raises(ValueError, match="not memory"):
        _run(tmp_path, "other", OutOfMemoryAfter(after=0, error=ValueError("not memory")),
             max_epochs=1)  # fmt: skip
    with pytest.raises(torch.cuda.OutOfMemoryError, match="Tried to allocate"):
        _run(tmp_path, "off", OutOfMemoryAfter(after=0), max_epochs=1, oom_retry=False)


def test_a_plain_trainer_gets_it_from_make_trainer_and_the_hooks_are_given_back(tmp_path):
    trainer = lk.make_trainer(max_epochs=1, oom_retry=True, default_root_dir=tmp_path,
                              logger=False, enable_progress_bar=False)  # fmt: skip
    (callback,) = [c for c in trainer.callbacks if isinstance(c, OOMMicrobatching)]
    torch.manual_seed(0)
    module = lk.ClassificationModule(OutOfMemoryAfter(after=2), 3)
    dm = lk.data.TensorDataModule(*make_blobs(256).tensors, batch_size=64, val_split=0.25)
    with pytest.warns(UserWarning, match="microbatches of 32 rows"):
        trainer.fit(module, datamodule=dm)
    assert callback.train_microbatch == 16
    assert "training_step" not in vars(module) and "backward" not in vars(module)
    with pytest.raises(TypeError, match=r"make_trainer: oom_retry must be True or False"):
        lk.make_trainer(oom_retry="yes", default_root_dir=tmp_path)
    assert not any(isinstance(c, OOMMicrobatching) for c in lk.make_trainer(
        default_root_dir=tmp_path, logger=False).callbacks)  # fmt: skip


def test_a_checkpoint_cannot_plant_a_bad_size():
    callback = OOMMicrobatching()
    callback.load_state_dict({"train_microbatch": -3, "eval_microbatch": "8"})
    assert callback.train_microbatch is None and callback.eval_microbatch is None
    callback.load_state_dict({"train_microbatch": 8, "eval_microbatch": None})
    assert callback.train_microbatch == 8


@pytest.mark.slow
def test_an_oom_on_one_ddp_rank_neither_hangs_nor_diverges(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "oom_microbatching.py"
    for name, extra in (("clean", []), ("oom", ["--oom-rank", "1"])):
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / name), "--devices", "2", *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        if name == "oom":
            assert "out of memory in a training step of 32 rows on rank 1" in done.stderr
    ranks = {
        (name, r): torch.load(tmp_path / name / f"rank{r}.pt", weights_only=True)
        for name in ("clean", "oom")
        for r in (0, 1)
    }

    def flat(result):
        return torch.cat([v.flatten().float() for v in result["weights"].values()])

    assert {result["steps"] for result in ranks.values()} == {32}
    torch.testing.assert_close(flat(ranks["oom", 0]), flat(ranks["oom", 1]), rtol=0, atol=0)
    torch.testing.assert_close(flat(ranks["oom", 0]), flat(ranks["clean", 0]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    rows = ranks["oom", 1]["rows"]
    assert rows[30:33] == [-32, 16, 16] and sum(r for r in rows if r > 0) == sum(
        ranks["clean", 1]["rows"]
    )
    assert min(ranks["oom", 0]["rows"]) == 32  # rank 0 never split


class BatchOnlyStep(lk.ClassificationModule):
    """A task whose training_step takes the batch alone (Lightning allows it)."""

    def training_step(self, batch):
        return self.shared_step(batch, "train")


def test_steps_declared_without_batch_idx_and_unused_parameters(tmp_path):
    clean = BatchOnlyStep(OutOfMemoryAfter(after=10**9), 3, optimizer=lk.optim.adamw(lr=1e-2))
    clean.unused = nn.Parameter(torch.ones(3))  # trained on by nothing
    options = dict(max_epochs=2, seed=0, logger=False, enable_progress_bar=False,
                   enable_model_summary=False)  # fmt: skip
    dm = lambda: lk.data.TensorDataModule(*make_blobs(512).tensors, batch_size=64,  # noqa: E731
                                          val_split=0.25, seed=0)  # fmt: skip
    lk.fit(clean, dm(), default_root_dir=tmp_path / "clean", **options)
    net = OutOfMemoryAfter(after=3)
    module = BatchOnlyStep(net, 3, optimizer=lk.optim.adamw(lr=1e-2))
    module.unused = nn.Parameter(torch.ones(3))
    with pytest.warns(UserWarning, match="microbatches of 16 rows"):
        lk.fit(module, dm(), default_root_dir=tmp_path / "oom", **options)
    torch.testing.assert_close(flat_weights(module.net), flat_weights(clean.net),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    # No gradient reached it, so AdamW's weight decay left it alone, as in the clean run.
    assert torch.equal(module.unused.detach(), torch.ones(3))
    assert torch.equal(clean.unused.detach(), torch.ones(3))


def test_a_failed_fit_leaves_no_wrapper_behind(tmp_path):
    module = lk.ClassificationModule(OutOfMemoryAfter(after=10**9, error=ValueError("bad")), 3)
    module.net.after = 0  # every training batch raises the user's error
    dm = lk.data.TensorDataModule(*make_blobs(128).tensors, batch_size=32, val_split=0.25)
    with pytest.raises(ValueError, match="bad"):
        lk.fit(module, dm, max_epochs=1, default_root_dir=tmp_path, logger=False,
               enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    assert not {"training_step", "backward", "optimizer_zero_grad"} & set(vars(module))


def test_per_sample_lists_are_cut_with_the_tensors():
    from lightkit.tasks._microbatching import _rows, _slice

    batch = {"image": torch.zeros(8, 3), "path": [f"{i}.png" for i in range(8)], "k": 3}
    assert _rows(batch) == 8
    piece = _slice(batch, 2, 6, 8)
    assert piece["image"].shape == (4, 3) and piece["path"] == ["2.png", "3.png", "4.png", "5.png"]
    assert piece["k"] == 3
