"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_bring_your_own_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [b for b in blocks if "class MyDataset" in b]
    monkeypatch.chdir(tmp_path)  # its runs/ folder goes here
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["best"].net is namespace["net"]
    assert (tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt").exists()
