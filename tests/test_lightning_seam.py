"""lightkit._lightning, the one place lightkit relies on Lightning internals: each test fails by name
when Lightning moves or changes what it relies on."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from helpers import make_blobs, quiet_trainer, tiny_task
from lightkit import _lightning


class _Probe(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # After batch i, Lightning counts i + 1 processed batches in the epoch.
        self.seen.append((batch_idx, _lightning.batches_processed(trainer)))


def test_lightning_still_counts_processed_batches_in_fit_loop_epoch_loop_batch_progress(tmp_path):
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False, callbacks=[_Probe()])
    probe = next(c for c in trainer.callbacks if isinstance(c, _Probe))
    counter = _lightning.processed_counter(trainer)
    loader = DataLoader(make_blobs(96), batch_size=32)
    trainer.fit(tiny_task(), loader)
    assert probe.seen == [(0, 1), (1, 2), (2, 3)]
    assert counter() == 3 and not _lightning.is_mid_epoch(trainer)


def test_lightning_batch_progress_fields_can_still_be_recounted(tmp_path):
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    trainer.fit(tiny_task(), DataLoader(make_blobs(64), batch_size=32))
    before = _lightning.batches_processed(trainer)
    _lightning.recount_batches(trainer, old=2, new=4)
    progress = trainer.fit_loop.epoch_loop.batch_progress
    assert _lightning.batches_processed(trainer) == before + 2
    assert progress.total.completed == progress.total.ready  # every field moved together


def test_lightning_still_skips_callback_hooks_that_are_not_callable(tmp_path):
    @_lightning.skip_unused_step_hooks
    class Counts(Callback):
        def __init__(self) -> None:
            self.ends = 0

        def on_train_batch_end(self, *args) -> None:
            self.ends += 1

    callback = Counts()
    assert callback.on_train_batch_start is None and callback.on_before_backward is None
    assert callback.on_train_batch_end is not None  # defined: kept
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False, callbacks=[callback])
    trainer.fit(tiny_task(), DataLoader(make_blobs(64), batch_size=32))
    assert callback.ends == 2


def test_has_validation_data_reads_limit_val_batches_and_the_val_dataset(tmp_path):
    trainer = L.Trainer(limit_val_batches=0, logger=False, enable_checkpointing=False)
    assert not _lightning.has_validation_data(trainer)
    trainer = L.Trainer(logger=False, enable_checkpointing=False)
    assert _lightning.has_validation_data(trainer)  # no datamodule: nothing says otherwise


def test_marked_hooks_leave_subclasses_and_mixins_their_own(tmp_path):
    class Mixin(Callback):
        def __init__(self) -> None:
            self.ends = 0

        def on_train_batch_end(self, *args) -> None:
            self.ends += 1

    @_lightning.skip_unused_step_hooks
    class Quiet(Callback):
        pass

    class Sub(Quiet):
        def on_train_batch_end(self, *args) -> None:
            super().on_train_batch_end(*args)  # Callback's default, still there
            self.ends = getattr(self, "ends", 0) + 1

    class Combined(Quiet, Mixin):
        def __init__(self) -> None:
            Mixin.__init__(self)
            Quiet.__init__(self)

    sub, combined = Sub(), Combined()
    assert Quiet().on_train_batch_end is None
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False, callbacks=[sub, combined])
    trainer.fit(tiny_task(), DataLoader(make_blobs(64), batch_size=32))
    assert sub.ends == 2 and combined.ends == 2


def test_lightning_model_checkpoint_still_has_what_the_last_ckpt_refresh_reads(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    for name in ("_should_skip_saving_checkpoint", "_should_save_on_train_epoch_end",
                 "_save_last_checkpoint", "_monitor_candidates"):  # fmt: skip
        assert callable(getattr(ModelCheckpoint, name, None)), f"ModelCheckpoint.{name} moved"
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    assert checkpoint._every_n_epochs == 1 and hasattr(checkpoint, "_last_global_step_saved")
    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False)
    trainer.fit(tiny_task(), DataLoader(make_blobs(64), batch_size=32))
    # At the end of fit nothing is due any more: this step was saved.
    assert not _lightning.epoch_save_due(trainer.checkpoint_callback, trainer, True)
    _lightning.save_last_unless_saved(trainer.checkpoint_callback, trainer)  # a no-op, no error


def test_lightning_still_counts_the_training_batch_index_in_the_epoch_loop(tmp_path):
    seen = []

    class Probe(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append((batch_idx, _lightning.training_batch_idx(trainer)))

    trainer = quiet_trainer(tmp_path, max_epochs=1, logger=False, callbacks=[Probe()])
    trainer.fit(tiny_task(), DataLoader(make_blobs(96), batch_size=32))
    assert seen == [(0, 0), (1, 1), (2, 2)]


def test_lightning_csv_logger_still_opens_its_writer_where_run_csv_logger_replaces_it(tmp_path):
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    assert callable(getattr(ExperimentWriter, "_check_log_dir_exists", None)), "moved"
    logger = CSVLogger(save_dir=tmp_path, name="", version="v")
    assert logger._experiment is None and hasattr(logger, "_fs") and logger.root_dir
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "metrics.csv").write_text("a,step\n1.0,0\n")
    run_logger = _lightning.RunCSVLogger(save_dir=tmp_path, name="", version="v")
    run_logger.log_metrics({"a": 2.0, "b": 3.0}, step=1)
    run_logger.save()
    rows = (tmp_path / "v" / "metrics.csv").read_text().splitlines()
    assert rows == ["a,b,step", "1.0,,0", "2.0,3.0,1"]  # kept, and a new column added
