"""Every task constructor documents exactly the arguments it takes (no promised **kwargs)."""

from __future__ import annotations

import inspect
import re

import lightning as L
import pytest

import lightkit as lk

TASKS = [
    getattr(lk.tasks, name)
    for name in lk.tasks.__all__
    if inspect.isclass(getattr(lk.tasks, name))
    and issubclass(getattr(lk.tasks, name), L.LightningModule)
]


def documented_args(cls: type) -> set[str]:
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Args:", 1)[1].split("\n\n", 1)[0] if "Args:" in doc else ""
    return set(re.findall(r"^    (\*{0,2}\w+):", section, flags=re.MULTILINE))


@pytest.mark.parametrize("cls", TASKS, ids=lambda c: c.__name__)
def test_docstring_args_match_the_signature(cls):
    params = {n for n in inspect.signature(cls.__init__).parameters if n != "self"}
    assert documented_args(cls) == params
