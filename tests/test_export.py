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
    with pytest.raises(ValueError, match="method must be 'trace' or 'script', got 'jit'"):
        lk.export.to_torchscript(module, torch.randn(1, 1, 8, 8), tmp_path / "m.pt", method="jit")
    with pytest.raises(
        TypeError, match=r"example_input must be a batch tensor \(N, ...\), got list"
    ):
        lk.export.to_torchscript(module, [1, 2], tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"does not run on example_input of shape \(1, 3, 8, 8\)"):
        lk.export.to_exported_program(module, torch.randn(1, 3, 8, 8), tmp_path / "m.pt2")
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module, got str"):
        lk.export.to_onnx("model", torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")


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
