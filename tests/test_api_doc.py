"""docs/api.md's example runs as written (in a temporary folder) and the public API resolves."""
import os
import re
from pathlib import Path

import teakit

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_public_name_resolves():
    for name in teakit.__all__:
        assert getattr(teakit, name) is not None, name
    assert callable(teakit.explain) and teakit.explain.__module__ == "teakit.explain"


def test_the_documented_example_runs(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, f"no python example in {DOC}"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in blocks:
            exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert re.search(r"\{'id': [0-9.]+, 'ood': [0-9.]+, 'swapped': [0-9.]+\}", printed), printed
    assert (tmp_path / "runs/api/tea/best.safetensors").exists() or any((tmp_path / "runs/api/tea").glob("best*"))
