"""Names of a run folder's files, shared by the trainer that writes them and the readers that list
them (``lightkit runs``), which must not import Lightning to read a folder."""

from __future__ import annotations

DEFAULT_ROOT = "runs"  # make_trainer's default_root_dir
RECORD_FILE = "run.json"  # how a run ended: see lightkit.tasks._run_record
STATUSES = ("running", "finished", "stopped early", "nan", "failed", "pruned", "interrupted")
