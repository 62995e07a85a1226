"""The layering of src/lightkit, enforced: every lightkit import (top-level or in a function) points down.

Layers, bottom to top (shared/DESIGN.md): foundation helpers; models, losses, optim, data; tasks;
callbacks; the trainer presets; workflows (fit with retry, cross-validation, tuning, diagnose);
shipping (export, inference, serve); the CLI. Callbacks never know task classes (they read
``TaskOutputs``); data and tasks never build a trainer. The only imports that point up are
deprecated aliases, loaded on first use of the old name and marked ``# layering: deprecated alias``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

FOUNDATION = {
    "lightkit._version",
    "lightkit._run_layout",
    "lightkit._processes",
    "lightkit._validation",
    "lightkit._spec",
    "lightkit._lightning",
    "lightkit._recompute",
    "lightkit._metadata",
    "lightkit._hardware",
    "lightkit.checkpointing",
    "lightkit.outputs",
}
GROUPS = {  # the second part of a module's name -> its group
    "models": "models",
    "losses": "losses",
    "optim": "optim",
    "data": "data",
    "tasks": "tasks",
    "callbacks": "callbacks",
    "trainer": "trainer",
    "fitting": "workflows",
    "cross_validation": "shipping",  # it can return the folds as one Predictor (ensemble)
    "tuning": "workflows",
    "diagnosis": "workflows",
    "interpretation": "workflows",
    "runs": "workflows",
    "runs_report": "workflows",
    "export": "shipping",
    "inference": "shipping",
    "serve": "shipping",
    "cli": "cli",
    "_cli_config": "cli",
    "sweeps": "cli",  # config-driven like the CLI: trials are `lightkit fit` runs
}
_BELOW_TASKS = {"foundation", "models", "losses", "optim", "data"}
ALLOWED = {  # group -> the groups it may import from
    "foundation": {"foundation"},
    "models": {"foundation", "models"},
    "losses": {"foundation"},
    "optim": {"foundation"},
    "data": {"foundation", "data"},
    "tasks": {"foundation", "models", "losses", "optim", "tasks"},
    "callbacks": {"foundation", "callbacks"},
    "trainer": {"foundation", "tasks", "callbacks", "trainer"},
    "workflows": _BELOW_TASKS | {"tasks", "callbacks", "trainer", "workflows"},
    "shipping": _BELOW_TASKS | {"tasks", "callbacks", "trainer", "workflows", "shipping"},
    "cli": set(GROUPS.values()) | {"foundation", "root"},
    "root": set(GROUPS.values()) | {"foundation"},
}
ALIAS_MARK = "# layering: deprecated alias"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "lightkit").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def group_of(module: str) -> str:
    if module == "lightkit":
        return "root"
    if module in FOUNDATION:
        return "foundation"
    second = module.split(".")[1]
    if second not in GROUPS:
        raise AssertionError(
            f"{module} belongs to no layer: add it to GROUPS or FOUNDATION in {__file__}"
        )
    return GROUPS[second]


def imports(module: str) -> list[tuple[str, str, int, bool]]:
    """(imported module, imported name or '', line, is a marked deprecated alias) per lightkit import."""
    path = MODULES[module]
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [(a.name, "") for a in node.names if a.name.split(".")[0] == "lightkit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = (
                    module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
                )
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            if base.split(".")[0] != "lightkit":
                continue
            targets = [
                (f"{base}.{a.name}", "") if f"{base}.{a.name}" in MODULES else (base, a.name)
                for a in node.names
            ]
        else:
            continue
        marked = ALIAS_MARK in lines[node.lineno - 1]
        found += [(target, name, node.lineno, marked) for target, name in targets]
    return found


def test_every_module_has_a_layer():
    for module in MODULES:
        group_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    group = group_of(module)
    wrong = [
        f"{MODULES[module].relative_to(SRC)}:{line} imports {target} ({group_of(target)})"
        for target, _, line, marked in imports(module)
        if group_of(target) not in ALLOWED[group] and not marked
    ]
    assert not wrong, (
        f"{module} ({group}) may import only from {sorted(ALLOWED[group])}:\n" + "\n".join(wrong)
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module):
    private = [
        f"{MODULES[module].relative_to(SRC)}:{line} imports {name} from {target}"
        for target, name, line, _ in imports(module)
        if name.startswith("_") and target != module
    ]
    assert not private, (
        "a helper used across modules belongs in a _module with a public name:\n"
        + "\n".join(private)
    )


def test_deprecated_aliases_are_the_only_imports_pointing_up():
    marked = [(m, line) for m in MODULES for _, _, line, is_alias in imports(m) if is_alias]
    for module, line in marked:
        path = MODULES[module]
        function = next(
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) and node.lineno <= line <= node.end_lineno
        )
        assert function.name == "__getattr__", f"{path}:{line}: an alias import outside __getattr__"
    assert {m for m, _ in marked} == {"lightkit.trainer", "lightkit.data", "lightkit.data.kfold"}


def test_there_is_no_import_cycle():
    graph = {m: {t for t, _, _, marked in imports(m) if not marked and t != m} for m in MODULES}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The rules can fail: a callback importing a task class is reported."""
    fake = tmp_path / "lightkit" / "callbacks" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from lightkit.tasks import ClassificationModule\n")
    monkeypatch.setitem(MODULES, "lightkit.callbacks.bad", fake)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    with pytest.raises(AssertionError, match=r"imports lightkit\.tasks \(tasks\)"):
        test_imports_point_down_the_layers("lightkit.callbacks.bad")
