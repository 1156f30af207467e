"""Students compile and load after third-party packages that patch torch were imported.

torch_geometric (a SevenNet dependency) replaces ``torch.index_select`` with a Python
wrapper when it is imported. A student that called ``torch.index_select`` was then
compiled with the wrapper inside, and the written file could not be loaded again: a
pipeline that labels with SevenNet and trains in one process wrote a broken student.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import torch, torch_geometric  # noqa: F401  (patches torch.index_select)
from openmm_distill.export.torchscript import compile_student, load_compiled
from openmm_distill.models.registry import build_student
compile_student(build_student("ultra-tiny"), {path!r})
load_compiled({path!r})
print("loaded")
"""


def test_student_compiles_after_torch_geometric_import(tmp_path):
    pytest.importorskip("torch_geometric")
    path = str(tmp_path / "student.pt")
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(path=path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]
