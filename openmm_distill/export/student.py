"""A compiled student on disk: its metadata, and modules bound to a System's atoms."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from openmm_distill.elements import check_supported, symbols
from openmm_distill.errors import MissingFileError
from openmm_distill.export.torchscript import load_compiled

# Students shipped inside the package (trained by training/ recipes, see their model cards).
SHIPPED_DIR = Path(str(resources.files("openmm_distill") / "students"))  # package data, in the wheel too


def available_students() -> List[str]:
    """Names of the compiled students shipped with the package."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.pt"))


def shipped_accuracy() -> Dict[str, Dict[str, Dict[str, float]]]:
    """Accuracy of each shipped student against its own teacher, as ``training/ship_students.py`` recorded it.

    ``{name: {"test": metrics, "blind": metrics}}`` (force R^2, force MAE in eV/Angstrom, energy MAE in
    meV/atom, ...); a set that was not evaluated is left out.
    """
    import json

    path = SHIPPED_DIR / "test_metrics.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    accuracy = {}
    for name in available_students():
        test = recorded.get(name) or {}  # the test split's record, with the blind set's inside it
        sets = {"test": test.get("metrics"), "blind": (test.get("blind") or {}).get("metrics")}
        accuracy[name] = {split: metrics for split, metrics in sets.items() if metrics}
    return accuracy


def resolve_student_path(student: str | os.PathLike) -> Path:
    """A shipped student's name, or a path to a compiled file."""
    path = Path(student)
    if path.suffix == "" and not path.exists():
        shipped = SHIPPED_DIR / f"{student}.pt"
        if shipped.is_file():
            return shipped
        raise MissingFileError(
            f"no shipped student named {str(student)!r} (shipped: {available_students() or 'none'}) "
            "and no such file; pass the path of a compiled student (.pt)"
        )
    return path


class CompiledStudent:
    """A compiled student file plus its metadata.

    Parameters
    ----------
    path : path of a file written by :func:`openmm_distill.export.compile_student`
    """

    def __init__(self, path: str | os.PathLike):
        self.path = resolve_student_path(path)
        # Loads (and validates) the archive; the module itself is loaded again per Force in bound_module().
        _, self.metadata = load_compiled(self.path)

    @property
    def name(self) -> str:
        return self.metadata.get("name") or self.path.stem

    @property
    def elements(self) -> List[int]:
        return list(self.metadata["elements"])

    @property
    def cutoff_nm(self) -> float:
        return float(self.metadata["cutoff_nm"])

    def check_elements(self, atomic_numbers: Sequence[int]) -> None:
        """Raise :class:`UnsupportedElementError` naming any element the student does not support."""
        check_supported(atomic_numbers, self.elements, f"student {self.name!r}")

    def bound_module(self, atomic_numbers: Sequence[int], indices: Optional[Sequence[int]] = None,
                     device: str = "cpu") -> torch.jit.ScriptModule:
        """A fresh copy of the module bound to these atoms (one per Force; modules hold per-System buffers)."""
        self.check_elements(atomic_numbers)
        module, _ = load_compiled(self.path, map_location=device)
        idx = None if indices is None else torch.tensor(list(indices), dtype=torch.long)
        module.set_atoms(torch.tensor(np.asarray(atomic_numbers, dtype=np.int64)), idx)
        return module

    def __repr__(self) -> str:
        return (f"CompiledStudent({str(self.path)!r}, preset={self.metadata.get('preset')!r}, "
                f"elements={symbols(self.elements)}, cutoff={self.cutoff_nm} nm)")


def load_student(student: "str | os.PathLike | CompiledStudent") -> CompiledStudent:
    """A shipped student by name (see :func:`available_students`) or a compiled file by path."""
    return student if isinstance(student, CompiledStudent) else CompiledStudent(student)


def metadata_summary(meta: Dict[str, Any]) -> str:
    keys = ["preset", "architecture", "n_parameters", "element_symbols", "cutoff_angstrom", "dtype",
            "teacher", "training_data_hash", "package_version", "torch_version", "created"]
    return "\n".join(f"{k:>20}: {meta.get(k)}" for k in keys if k in meta)
