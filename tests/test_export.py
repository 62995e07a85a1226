"""Export routes: each file reloads with its own runtime and matches the eager module."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import lightkit as lk
from lightkit.export import ExportError

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="needs the export extra (onnxruntime)"
)


class ResidualNet(nn.Module):
    """BatchNorm, Dropout and a residual connection: what eval-mode export must get right."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = h + torch.relu(self.conv2(h))  # residual
        return self.head(self.drop(h.mean(dim=(2, 3))))


def _trained_module() -> lk.ClassificationModule:
    torch.manual_seed(0)
    module = lk.ClassificationModule(ResidualNet(), 3)
    module.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        for _ in range(3):
            module(torch.randn(16, 1, 8, 8) * 2 + 1)
    return module


ROUTES = {
    "torchscript-trace": (lambda m, x, p, **k: lk.export.to_torchscript(m, x, p, **k), "pt"),
    "torchscript-script": (
        lambda m, x, p, **k: lk.export.to_torchscript(m, x, p, method="script", **k),
        "pt",
    ),
    "onnx": (lambda m, x, p, **k: lk.export.to_onnx(m, x, p, **k), "onnx"),
    "exported-program": (lambda m, x, p, **k: lk.export.to_exported_program(m, x, p, **k), "pt2"),
}


def _load(route: str, path):
    if route.startswith("torchscript"):
        return torch.jit.load(str(path))
    if route == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    return torch.export.load(str(path)).module()


@pytest.mark.parametrize(
    "route", [pytest.param(r, marks=needs_onnx) if r == "onnx" else r for r in ROUTES]
)
def test_export_matches_eager_at_several_batch_sizes(tmp_path, route):
    module = _trained_module()
    export, suffix = ROUTES[route]
    path = export(module, torch.randn(1, 1, 8, 8), tmp_path / f"model.{suffix}")
    assert path == tmp_path / f"model.{suffix}" and path.is_file()
    assert module.training  # given back in the mode it came in
    loaded = _load(route, path)
    module.eval()
    for batch in (1, 5, 32):
        x = torch.randn(batch, 1, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), module(x), atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob(".model*"))  # no temporary files left


def test_export_refuses_to_overwrite_and_replaces_when_asked(tmp_path):
    module = _trained_module()
    path = tmp_path / "model.pt2"
    path.write_text("my earlier export")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        lk.export.to_exported_program(module, torch.randn(2, 1, 8, 8), path)
    assert path.read_text() == "my earlier export"
    lk.export.to_exported_program(module, torch.randn(2, 1, 8, 8), path, overwrite=True)
    assert torch.export.load(str(path)) is not None


class Drifts(nn.Module):
    """Traces fine, but its output depends on a Python-side counter the trace freezes."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x) + self.calls


def test_mismatch_raises_with_the_difference_and_writes_nothing(tmp_path):
    path = tmp_path / "drift.pt"
    with pytest.raises(
        ExportError, match=r"differ from eager outputs by up to \d.* \(atol=0\.0001\)"
    ):
        lk.export.to_torchscript(Drifts(), torch.randn(2, 4), path)
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_bad_inputs(tmp_path):
    module = _trained_module()
    with pytest.raises(ValueError, match="method must be one of 'trace', 'script', got 'jit'"):
        lk.export.to_torchscript(module, torch.randn(1, 1, 8, 8), tmp_path / "m.pt", method="jit")
    with pytest.raises(
        TypeError, match=r"example_input must be a batch tensor \(N, ...\), got list"
    ):
        lk.export.to_torchscript(module, [1, 2], tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"does not run on example_input of shape \(1, 3, 8, 8\)"):
        lk.export.to_exported_program(module, torch.randn(1, 3, 8, 8), tmp_path / "m.pt2")
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module, got str"):
        lk.export.to_onnx("model", torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 2)


def test_a_file_that_appears_during_the_export_is_never_replaced(tmp_path, monkeypatch):
    from lightkit import export as export_module

    path = tmp_path / "model.pt"
    commit = export_module._commit

    def someone_else_writes_first(owner, tmp, target, overwrite):
        target.write_text("another process's file")  # after the checks, before the commit
        return commit(owner, tmp, target, overwrite)

    monkeypatch.setattr(export_module, "_commit", someone_else_writes_first)
    with pytest.raises(FileExistsError, match=r"model\.pt' appeared while exporting"):
        lk.export.to_torchscript(_tiny(), torch.randn(2, 4), path)
    assert path.read_text() == "another process's file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left
    # With overwrite=True the same race replaces the file, as asked.
    lk.export.to_torchscript(_tiny(), torch.randn(2, 4), path, overwrite=True)
    assert torch.jit.load(str(path))(torch.ones(1, 4)).shape == (1, 2)


def test_without_hard_links_the_commit_still_never_replaces(tmp_path, monkeypatch):
    import errno
    import os

    from lightkit import export as export_module

    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "model.pt"
    lk.export.to_torchscript(_tiny(), torch.randn(2, 4), path)  # copied into an O_EXCL file
    torch.testing.assert_close(
        torch.jit.load(str(path))(torch.ones(1, 4)), _tiny()(torch.ones(1, 4))
    )
    commit = export_module._commit

    def someone_else_writes_first(owner, tmp, target, overwrite):
        target.write_text("theirs")
        return commit(owner, tmp, target, overwrite)

    monkeypatch.setattr(export_module, "_commit", someone_else_writes_first)
    other = tmp_path / "other.pt"
    with pytest.raises(FileExistsError, match="appeared while exporting"):
        lk.export.to_torchscript(_tiny(), torch.randn(2, 4), other)
    assert other.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "other.pt"]


def test_an_export_never_writes_onto_its_source(tmp_path):
    source = tmp_path / "model.pt"
    source.write_text("the checkpoint")
    alias = tmp_path / "alias.pt"
    alias.symlink_to(source)
    hard = tmp_path / "hard.pt"
    hard.hardlink_to(source)
    for path in (source, alias, hard, tmp_path / "." / "model.pt"):
        with pytest.raises(ValueError, match=r"is the file being exported \(source="):
            lk.export.to_torchscript(
                _tiny(), torch.randn(2, 4), path, overwrite=True, source=source
            )
    assert source.read_text() == "the checkpoint"
    out = lk.export.to_torchscript(_tiny(), torch.randn(2, 4), tmp_path / "out.pt", source=source)
    assert out.is_file()


def test_exported_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = lk.export.to_torchscript(_tiny(), torch.randn(2, 4), tmp_path / "model.pt")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a serving user, not 0600


@pytest.mark.parametrize("batch_sizes", [[], (), [0], [1, -8], [2.0], "8", None])
def test_every_export_is_verified(tmp_path, batch_sizes):
    with pytest.raises((TypeError, ValueError), match="batch_sizes"):
        lk.export.to_torchscript(
            _tiny(), torch.randn(2, 4), tmp_path / "m.pt", batch_sizes=batch_sizes
        )
    assert not list(tmp_path.iterdir())


@needs_onnx
def test_onnx_opset_beyond_what_onnx_knows_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"opset must be an integer in \[7, \d+\], got 99"):
        lk.export.to_onnx(_tiny(), torch.randn(2, 4), tmp_path / "m.onnx", opset=99)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@needs_onnx
def test_onnx_opset_is_the_one_asked_for(tmp_path):
    import onnx

    newest = onnx.defs.onnx_opset_version()
    path = lk.export.to_onnx(_tiny(), torch.randn(2, 4), tmp_path / "m.onnx", opset=newest)
    assert lk.export._onnx_opset(onnx.load(str(path))) == newest
    # PyTorch's exporter writes its default opset for ones it cannot target: refused, unwritten.
    with pytest.raises(ExportError, match=r"opset=7 was asked for, but .* wrote opset \d+"):
        lk.export.to_onnx(_tiny(), torch.randn(2, 4), tmp_path / "old.onnx", opset=7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


CPP = Path(__file__).resolve().parents[1] / "examples" / "cpp"


@pytest.mark.slow
def test_cpp_example_loads_the_torchscript_export_and_matches_python(tmp_path):
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the C++ example needs {' and '.join(missing)}, not found on PATH")
    module = _trained_module()
    model = lk.export.to_torchscript(module, torch.randn(2, 1, 8, 8), tmp_path / "model.pt")
    build = tmp_path / "build"
    prefix = torch.utils.cmake_prefix_path
    for cmd in (
        ["cmake", "-S", str(CPP), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}"],
        ["cmake", "--build", str(build), "-j2"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    x = torch.randn(3, 1, 8, 8)
    done = subprocess.run(
        [str(build / "lightkit_infer"), str(model), "3,1,8,8"],
        input=" ".join(f"{v:.9g}" for v in x.flatten().tolist()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from_cpp = torch.tensor([[float(v) for v in line.split()] for line in done.stdout.splitlines()])
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(from_cpp, module(x), atol=1e-4, rtol=1e-4)
    # Bad input is reported, not crashed on.
    done = subprocess.run(
        [str(build / "lightkit_infer"), str(model), "3,1,8,8"], input="1 2 3",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "needs 192 values, got 3" in done.stderr
