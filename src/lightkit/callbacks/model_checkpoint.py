"""ModelCheckpoint: Lightning's, with last.ckpt written at every epoch end, and safe restored paths."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lightkit._lightning import (
    epoch_save_due,
    is_mid_epoch,
    save_last_unless_saved,
    skip_unused_step_hooks,
)


@skip_unused_step_hooks
class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that trusts no path it reads back from a checkpoint.

    On resume, Lightning restores ``best_model_path``, ``kth_best_model_path``, ``best_k_models``
    and ``last_model_path`` from the checkpoint's callback state, and later deletes some of those
    files when newer checkpoints replace them (with ``fs.rm(..., recursive=True)``, so a folder
    goes too). A crafted ``last.ckpt`` could thereby name any file or folder on the machine. This
    class keeps only paths that are ``.ckpt`` files inside its own ``dirpath`` (after resolving
    ``..`` and symbolic links) and warns naming every path it drops; the best and k-th best
    entries are then recomputed from what is left. (State from another run's folder, as when a
    checkpoint is evaluated or predicted from elsewhere, is dropped without a warning.)

    ``last.ckpt`` (``save_last=True``) is written at every completed epoch's end and every
    validation, as its name says: Lightning 2.6 writes it only when a top-k checkpoint is saved
    at the same step, so a run whose monitored metric stopped improving kept the ``last.ckpt``
    of its best epoch (and resumed, or predicted, from there).

    The class keeps Lightning's name, so its ``state_key`` is Lightning's: checkpoints written
    with either class resume into the other. ``lk.make_trainer`` uses it; it works with a plain
    ``lightning.Trainer`` too.

    Example:
        >>> import os
        >>> checkpoints = lk.callbacks.ModelCheckpoint(
        ...     dirpath="checkpoints", filename="best", monitor="val/loss", save_last=True
        ... )
        >>> trainer = L.Trainer(
        ...     max_epochs=2, callbacks=[checkpoints], logger=False,
        ...     enable_progress_bar=False, enable_model_summary=False,
        ... )
        >>> trainer.fit(module, datamodule=dm)
        >>> sorted(os.listdir("checkpoints"))
        ['best.ckpt', 'last.ckpt']
        >>> lk.checkpointing.load_checkpoint("checkpoints/last.ckpt")["epoch"]  # the last epoch's
        1
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # An epoch cut short by max_steps keeps Lightning's behaviour: its mid-epoch state (the
        # task's epoch loss sum included) is in the step-refresh last.ckpt, when there is one.
        due = (
            self.save_last is True
            and epoch_save_due(self, trainer, at_train_epoch_end=True)
            and not is_mid_epoch(trainer)
        )
        super().on_train_epoch_end(trainer, pl_module)
        if due:
            save_last_unless_saved(self, trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = self.save_last is True and epoch_save_due(self, trainer, at_train_epoch_end=False)
        super().on_validation_end(trainer, pl_module)
        if due:
            save_last_unless_saved(self, trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Another run's state (evaluating or predicting from a checkpoint, in a folder of its
        # own): its paths are dropped without a word, as Lightning itself does not reload them.
        same_run = state_dict.get("dirpath", self.dirpath) == self.dirpath
        super().load_state_dict(state_dict)
        dropped: list[str] = []

        def keep(field: str, path: Any) -> bool:
            if path in (None, "") or self._inside(path):
                return True
            dropped.append(f"{field}={path!r}")
            return False

        best_k = {p: v for p, v in dict(self.best_k_models).items() if keep("best_k_models", p)}
        keep_best = keep("best_model_path", self.best_model_path)
        keep_kth = keep("kth_best_model_path", self.kth_best_model_path)
        keep_last = keep("last_model_path", self.last_model_path)
        if not dropped:
            return
        self.best_k_models = best_k
        if not keep_last:
            self.last_model_path = ""
        if not keep_kth or self.kth_best_model_path not in best_k:
            self._recompute_kth()
        if not keep_best:
            self.best_model_path = ""
            self.best_model_score = None
        if best_k and self.best_model_path not in best_k:
            pick = min if self.mode == "min" else max
            self.best_model_path = pick(best_k, key=best_k.get)  # type: ignore[arg-type]
            self.best_model_score = best_k[self.best_model_path]
        if not same_run:
            return
        rank_zero_warn(
            f"lightkit: the checkpoint's ModelCheckpoint state names paths outside this run's "
            f"checkpoint folder {os.fspath(self.dirpath or '')!r} (or that are not .ckpt files); "
            f"they are ignored and will never be read or deleted: {', '.join(dropped)}"
        )

    def _recompute_kth(self) -> None:
        """The k-th best entry (the one replaced next) from what is left in ``best_k_models``."""
        best_k = self.best_k_models
        if best_k and (self.save_top_k == -1 or len(best_k) >= self.save_top_k):
            worst = max if self.mode == "min" else min
            self.kth_best_model_path = worst(best_k, key=best_k.get)  # type: ignore[arg-type]
            self.kth_value = best_k[self.kth_best_model_path]
        else:
            self.kth_best_model_path = ""
            self.kth_value = torch.tensor(math.inf if self.mode == "min" else -math.inf)

    def _inside(self, path: Any) -> bool:
        """Whether ``path`` is a ``.ckpt`` file (or a not yet existing one) inside ``dirpath``."""
        if not isinstance(path, (str, os.PathLike)) or self.dirpath is None:
            return False
        text, folder = os.fspath(path), os.fspath(self.dirpath)
        if not text.endswith(".ckpt"):
            return False
        if "://" in folder or "://" in text:  # a folder in a store: compare the names only
            prefix = folder.rstrip("/") + "/"
            parts = text[len(prefix) :].split("/")
            return text.startswith(prefix) and not any(p in ("", ".", "..") for p in parts)
        try:
            resolved, root = Path(text).resolve(), Path(folder).resolve()
        except (OSError, RuntimeError):  # a symlink loop, a name the OS refuses
            return False
        if resolved == root or not resolved.is_relative_to(root):
            return False
        return not os.path.lexists(text) or (resolved.is_file() and not Path(text).is_symlink())
