"""The examples in README.md and docs/*.md run.

Each document's ```python and ```py3 blocks run in order, in one namespace per
document, as a reader would run them top to bottom. Blocks fenced ```py are
shown but not run (they need the network, e.g. downloading MNIST).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(python|py3)\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_document_examples_run(path, tmp_path, monkeypatch):
    blocks = [m.group(2) for m in BLOCK.finditer(path.read_text())]
    if not blocks:
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHUP_HOME", str(tmp_path / "batchup_home"))
    namespace = {"__name__": "__main__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # name the failing block in the report
            raise AssertionError(f"{path.name} block {i} failed: {e!r}\n{code}") from e
