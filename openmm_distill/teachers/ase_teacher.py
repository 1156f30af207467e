"""Any ASE calculator as a teacher, named by import path ``"package.module:ClassName"``.

ASE calculators already work in eV and Angstrom, so no conversion happens here.
Examples: ``"ase.calculators.emt:EMT"``, ``"ase.calculators.lj:LennardJones"``,
``"mace.calculators:mace_off"`` (a factory function works as well as a class).
"""
from __future__ import annotations

import importlib
import json
from typing import Any, Optional

import numpy as np

from openmm_distill.errors import ConfigError, MissingDependencyError
from openmm_distill.teachers.base import Teacher


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"`` (or ``"package.module.Name"``) and return the object.

    Raises
    ------
    ConfigError
        If the path is malformed or the attribute does not exist.
    ImportError
        If the module cannot be imported (names the module, so the user knows what to install).
    """
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"calculator must be an import path like 'ase.calculators.emt:EMT', got {path!r}")
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"calculator must be an import path like 'ase.calculators.emt:EMT', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        top = module_name.split(".")[0]
        raise MissingDependencyError(
            f"cannot import {module_name!r} for the ASE teacher calculator {path!r}: {exc}. "
            f"Install the package that provides it (e.g. pip install {top})."
        ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (from calculator={path!r})")
        obj = getattr(obj, part)
    return obj


def _package_version(module_path: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    top = module_path.split(":")[0].split(".")[0]
    try:
        return f"{top} {version(top)}"
    except PackageNotFoundError:
        return f"{top} (no installed distribution)"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


class ASETeacher(Teacher):
    """Teacher backed by an ASE calculator.

    Parameters
    ----------
    calculator : str
        Import path ``"package.module:ClassName"`` of a calculator class or of a
        function returning a calculator.
    **kwargs
        Passed to the class or function.

    Notes
    -----
    One calculator instance is built in ``__init__`` and reused; ASE calculators
    recompute whenever positions, numbers or cell change. ``charge`` given to
    :meth:`compute` is stored in ``atoms.info["charge"]`` (some calculators read it).
    """

    name = "ase"

    def __init__(self, calculator: str = "", **kwargs: Any) -> None:
        super().__init__()
        if not calculator:
            raise ConfigError(
                "the 'ase' teacher needs calculator='package.module:ClassName', "
                "e.g. calculator='ase.calculators.emt:EMT'"
            )
        factory = import_object(calculator)
        if not callable(factory):
            raise ConfigError(f"calculator={calculator!r} is not a class or function")
        self._calc = factory(**kwargs)
        self.version = _package_version(calculator)
        self.settings = {"calculator": calculator, **{k: _jsonable(v) for k, v in sorted(kwargs.items())}}

    def _compute(self, numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray], charge: Optional[int]):
        from ase import Atoms

        atoms = Atoms(numbers=numbers, positions=positions)
        if box is not None:
            atoms.cell = box
            atoms.pbc = True
        if charge is not None:
            atoms.info["charge"] = int(charge)
        atoms.calc = self._calc
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        return float(energy), np.array(forces, dtype=np.float64)
