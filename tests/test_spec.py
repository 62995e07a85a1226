"""lightkit._spec's allow-list: what a checkpoint may name without the user's trust."""

from __future__ import annotations

import inspect

import lightning as L

import lightkit as lk
from lightkit._spec import LIGHTKIT_ALLOWED, import_object


def test_every_task_class_is_allow_listed_and_nothing_else():
    tasks = {
        f"lightkit.tasks.{name}"
        for name in lk.tasks.__all__
        if inspect.isclass(getattr(lk.tasks, name))
        and issubclass(getattr(lk.tasks, name), L.LightningModule)
    }
    assert set(LIGHTKIT_ALLOWED["task"]) == tasks, "a new task must be added to LIGHTKIT_ALLOWED"


def test_every_allow_listed_path_names_a_lightkit_object():
    for kind, paths in LIGHTKIT_ALLOWED.items():
        for path in paths:
            obj = import_object(path, kind)
            assert callable(obj) and obj.__module__.startswith("lightkit."), path
