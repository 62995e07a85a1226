"""The documentation cannot drift from the code: every snippet runs, every public name is documented.

- **Snippets.** Every ```` ```python ```` block of ``README.md`` and ``docs/**/*.md`` runs, one test
  per page (so a failure names the page; tracebacks give the Markdown file and line). A page's
  blocks run in order in one namespace, in a fresh temporary working directory. A block right
  after ``<!-- snippet: skip <reason> -->`` is skipped; the reason must say it needs a GPU, a
  cluster (several nodes) or the network. ``<!-- snippet: standalone -->`` runs a block in a
  namespace of its own. ``<!-- snippets: slow -->`` anywhere on a page marks its test ``slow``.
  Some blocks get extra checks after they run (``CHECKS``): the claims the text around them makes.
  A page whose snippets need an optional extra (``REQUIRES``) is skipped where it is missing.
- **Reference.** Every name in ``lightkit.__all__`` and in the ``__all__`` of each public module
  (``lk.data``, ``lk.serve``, ...) is rendered by a ``::: identifier`` entry of
  ``docs/reference/*.md``.
- **Commands and pictures.** Every ``lightkit <command>`` shown in a ``bash`` block is a real
  command, with options the command takes; every picture a page shows exists.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lightkit as lk

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_MARKER = re.compile(r"<!--\s*snippet:\s*(skip|standalone)\b(.*?)-->\s*\Z", re.S)
_SKIP_REASON = re.compile(
    r"\b(gpus?|cuda|cluster|multi-node|nodes?|network|internet|download\w*)\b", re.I
)


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    marker: str | None = None  # "skip" or "standalone"
    reason: str = ""


def _blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        marker = _MARKER.search(before)
        blocks.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start(2)) + 1,
                lang=match.group(1).strip(),
                code=match.group(2),
                marker=marker.group(1) if marker else None,
                reason=marker.group(2).strip() if marker else "",
            )
        )
    return blocks


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# --- checks that follow a block: (page, text in the block) -> check(namespace, stdout, path) --


def _check_bring_your_own(ns: dict, out: str, cwd: Path) -> None:
    assert ns["best"].net is ns["net"]
    assert (cwd / "runs" / "version_0" / "checkpoints" / "last.ckpt").exists()


def _check_own_task(ns: dict, out: str, cwd: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = ns["trainer"]
    # on_validation_epoch_end is overridden without super(), and still:
    assert "epoch 9 validated" in out
    assert trainer.callback_metrics["val/acc"] > 0.9  # metrics built from state set after init
    assert trainer.callback_metrics["val/loss"] < 0.5
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "val/confusion_matrix" in events.Tags()["images"]  # from task_outputs()


def _check_kfold(ns: dict, out: str, cwd: Path) -> None:
    result = ns["result"]
    assert result["oof"].shape == torch.Size([1500, 10])
    assert sorted(result["oof_fold"].unique().tolist()) == [0, 1, 2]
    accuracy = float((ns["probs"].argmax(1) == ns["y_test"]).float().mean())
    assert accuracy > 0.85
    assert f"ensemble {accuracy:.3f}" in out


def _check_mlflow(ns: dict, out: str, cwd: Path) -> None:
    assert "version_0 0.9" in out  # the run's name and its val/acc, as the comment shows
    history = ns["client"].get_metric_history(ns["run"].info.run_id, "val/loss")
    assert len(history) == 3  # one value per epoch
    assert (cwd / "runs" / "mlflow.db").is_file()


CHECKS: dict[tuple[str, str], Callable[[dict, str, Path], None]] = {
    ("README.md", "class MyDataset"): _check_bring_your_own,
    ("docs/getting-started.md", "class MyDataset"): _check_bring_your_own,
    ("docs/tasks.md", "class WeightedTask"): _check_own_task,
    ("docs/sweeps.md", "return_ensemble=True"): _check_kfold,
    ("docs/observability.md", "MlflowClient(tracking_uri"): _check_mlflow,
}


# Pages whose snippets need an optional extra (all of them are in `dev`): skipped without it.
REQUIRES: dict[str, tuple[str, ...]] = {
    "docs/observability.md": ("mlflow",),
    "docs/sweeps.md": ("optuna", "optuna_integration", "sklearn"),
    "docs/export-serve.md": ("onnx", "onnxruntime", "onnxscript"),
    "docs/streaming.md": ("litdata",),
}


def _page_param(page: Path):
    slow = "<!-- snippets: slow -->" in page.read_text(encoding="utf-8")
    return pytest.param(page, id=_name(page), marks=[pytest.mark.slow] if slow else [])


SNIPPET_PAGES = [p for p in PAGES if any(b.lang == "python" for b in _blocks(p))]


@pytest.mark.parametrize("page", [_page_param(p) for p in SNIPPET_PAGES])
def test_every_python_snippet_of_the_page_runs(page, tmp_path, monkeypatch, capsys):
    for module in REQUIRES.get(_name(page), ()):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # runs/, exports and pictures go here
    for name in ("PL_GLOBAL_SEED", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)  # as in a fresh process
    monkeypatch.setenv("MPLBACKEND", "Agg")
    threads, path, modules = torch.get_num_threads(), list(sys.path), set(sys.modules)
    torch.set_num_threads(1)  # tiny models: one thread is faster, and far cheaper on a busy CPU
    try:
        _run_page(page, tmp_path, capsys)
    finally:
        torch.set_num_threads(threads)
        sys.path[:] = path  # a page may import a module it wrote into its folder
        for name in set(sys.modules) - modules:
            if str(tmp_path) in str(getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]


def _run_page(page: Path, tmp_path: Path, capsys) -> None:
    namespace: dict = {"__name__": "__docs__"}
    skipped = []
    for block in _blocks(page):
        if block.lang != "python":
            continue
        where = f"{_name(page)}:{block.line}"
        if block.marker == "skip":
            skipped.append(f"{where}: {block.reason}")
            continue
        ns = {"__name__": "__docs__"} if block.marker == "standalone" else namespace
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, ns)
        out = capsys.readouterr().out
        print(out, end="")  # shown when the test fails
        assert not [w for w in caught if "before the seed was set" in str(w.message)], where
        for (check_page, text), check in CHECKS.items():
            if check_page == _name(page) and text in block.code:
                check(ns, out, tmp_path)
    if skipped and all(b.marker == "skip" for b in _blocks(page) if b.lang == "python"):
        pytest.skip("; ".join(skipped))


def test_every_check_finds_its_block():
    for page, text in CHECKS:
        blocks = [b for b in _blocks(ROOT / page) if b.lang == "python" and text in b.code]
        assert len(blocks) == 1, f"{page}: {len(blocks)} python blocks hold {text!r}"
        assert blocks[0].marker != "skip", f"{page}: the block with {text!r} is skipped"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_snippet_markers_are_well_formed(page):
    text = page.read_text(encoding="utf-8")
    for block in _blocks(page):
        if block.marker == "skip":
            assert _SKIP_REASON.search(block.reason), (
                f"{_name(page)}:{block.line}: a snippet may be skipped only when it needs a GPU, "
                f"a cluster or the network, and the marker must say which; got {block.reason!r}"
            )
    for line_no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("<!-- snippet") and not re.fullmatch(
            r"<!-- (snippet: (skip .+|standalone)|snippets: slow) -->", stripped
        ):
            raise AssertionError(f"{_name(page)}:{line_no}: unknown marker {stripped!r}")
        # a Python block the runner would not see: indented, or another spelling of the language
        if re.match(r"\s+```\s*py", line) or re.match(r"```\s*(py|py3|python3|pycon)\s*$", line):
            raise AssertionError(
                f"{_name(page)}:{line_no}: write Python blocks as ```python at the start of the "
                "line, so the snippet runner executes them"
            )


# --- the API reference --------------------------------------------------------------------


def _public_names() -> list[tuple[str, str, object]]:
    """(module, name, object) for every name in the __all__ of lightkit and its public modules."""
    modules = ["lightkit", *(f"lightkit.{m}" for m in (*lk._SUBPACKAGES, *lk._MODULES))]
    seen: set[str] = set()
    names = []
    while modules:
        module_name = modules.pop(0)
        if module_name in seen:
            continue
        seen.add(module_name)
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType):
                modules.append(value.__name__)
            else:
                names.append((module_name, name, value))
    return names


def _own_docstring(value: object) -> bool:
    if inspect.isclass(value):
        return bool(value.__dict__.get("__doc__"))
    if inspect.isroutine(value):
        return bool(value.__doc__)
    return False  # a constant: only an entry of its own (show_if_no_docstring) renders it


def _reference_entries() -> list[str]:
    entries = []
    for page in sorted((DOCS / "reference").glob("*.md")):
        entries += re.findall(r"^::: *([\w.]+)", page.read_text(encoding="utf-8"), re.M)
    return entries


def _resolve(identifier: str) -> object:
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(identifier)


def test_every_public_name_is_in_the_reference():
    entries = _reference_entries()
    modules = {e for e in entries if isinstance(_resolve(e), types.ModuleType)}
    # What a module entry renders: the names in its __all__ that have a docstring of their own.
    rendered = [
        value
        for module in modules
        for name in importlib.import_module(module).__all__
        if _own_docstring(value := getattr(importlib.import_module(module), name))
    ]
    rendered += [_resolve(e) for e in entries if e not in modules]
    missing = [
        f"{module}.{name}"
        for module, name, value in _public_names()
        if f"{module}.{name}" not in entries and not any(value is r for r in rendered)
    ]
    assert not missing, (
        "public names missing from the API reference (add a '::: <module>' entry for their module, "
        "or '::: <module>.<name>' with show_if_no_docstring for a constant, to docs/reference/): "
        + ", ".join(missing)
    )


def test_every_reference_entry_resolves():
    for entry in _reference_entries():
        _resolve(entry)  # an ImportError or AttributeError names the entry


# --- commands and pictures ------------------------------------------------------------------


def test_every_lightkit_command_shown_is_real(capsys):
    from lightkit.cli import main

    def help_text(argv: list[str]) -> str:
        capsys.readouterr()
        with contextlib.suppress(SystemExit):  # argparse exits after --help; `runs` returns
            main([*argv, "--help"])
        return capsys.readouterr().out

    commands = re.findall(r"^    (\w+)\s", help_text([]).split("positional arguments:")[1], re.M)
    assert "fit" in commands and "serve" in commands
    options = {c: help_text([c]) for c in ("export", "serve", "sweep", "runs", "doctor")}
    shown = 0
    for page in PAGES:
        for block in _blocks(page):
            if block.lang not in ("bash", "sh", "console", ""):
                continue
            text = block.code.replace("\\\n", " ")
            for line in text.splitlines():
                for part in re.split(r";|&&|\|", line.split(" #")[0].removeprefix("$ ")):
                    words = part.split()
                    if len(words) < 2 or words[0] != "lightkit":
                        continue
                    shown += 1
                    where = f"{_name(page)}:{block.line}: {part.strip()}"
                    assert words[1] in commands, where
                    for word in words[2:]:
                        flag = word.split("=")[0]
                        if words[1] in options and flag.startswith("--") and "." not in flag:
                            assert re.search(rf"{re.escape(flag)}\b", options[words[1]]), where
    assert shown >= 10  # the pages do show commands: the parser found them


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_picture_a_page_shows_exists(page):
    for picture in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", page.read_text(encoding="utf-8")):
        assert (page.parent / picture).is_file(), f"{_name(page)}: {picture}"


def test_every_link_of_the_readme_leads_to_a_file():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if not re.match(r"[a-z]+://", link):
            assert (ROOT / link).is_file(), link
