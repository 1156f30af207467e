"""The teacher interface: one reference force field behind one method.

A teacher turns a structure (atomic numbers, positions in Angstrom, optional
periodic box in Angstrom) into a total energy in eV and forces in eV/Angstrom.
Every adapter converts its backend's units at this boundary, so nothing else in
the package ever sees Hartree, Bohr or kJ/mol from a teacher.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from openmm_distill import units
from openmm_distill.errors import TeacherError


@dataclass(frozen=True)
class TeacherResult:
    """Energy and forces of one structure.

    Attributes
    ----------
    energy : float
        Total potential energy, eV.
    forces : numpy.ndarray
        Forces, shape (N, 3), eV/Angstrom, float64.
    """

    energy: float
    forces: np.ndarray


def check_structure(
    atomic_numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray] = None
) -> tuple:
    """Validate and normalise a structure for a teacher call.

    Parameters
    ----------
    atomic_numbers : array_like of int, shape (N,)
    positions : array_like of float, shape (N, 3), Angstrom
    box : array_like of float, shape (3, 3), Angstrom, optional
        Row vectors of a fully periodic cell; ``None`` for an isolated molecule.

    Returns
    -------
    tuple
        ``(numbers int64 (N,), positions float64 (N, 3), box float64 (3, 3) or None)``.

    Raises
    ------
    TeacherError
        On a shape mismatch, non-finite positions or an invalid atomic number.
    """
    numbers = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] != numbers.shape[0]:
        raise TeacherError(
            f"positions must have shape ({numbers.shape[0]}, 3) to match atomic_numbers, got {pos.shape}"
        )
    if numbers.size == 0:
        raise TeacherError("a structure needs at least one atom")
    if np.any(numbers < 1) or np.any(numbers > 118):
        raise TeacherError(f"atomic numbers must lie in 1..118, got {sorted(set(numbers.tolist()))}")
    if not np.all(np.isfinite(pos)):
        raise TeacherError("positions contain NaN or infinite values")
    cell = None
    if box is not None:
        cell = np.asarray(box, dtype=np.float64)
        if cell.shape != (3, 3):
            raise TeacherError(f"box must have shape (3, 3) (row vectors, Angstrom), got {cell.shape}")
        if not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-8:
            raise TeacherError("box must be finite with a non-zero volume")
    return numbers, pos, cell


def check_result(energy: float, forces: np.ndarray, n_atoms: int, teacher: str) -> TeacherResult:
    """Turn raw backend output (already in eV, eV/Angstrom) into a checked :class:`TeacherResult`.

    Raises
    ------
    TeacherError
        If the energy or forces are not finite or the forces have the wrong shape.
    """
    f = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
    e = float(np.asarray(energy, dtype=np.float64).reshape(-1)[0])
    if f.shape != (n_atoms, 3):
        raise TeacherError(f"teacher {teacher!r} returned forces of shape {f.shape}, expected ({n_atoms}, 3)")
    if not np.isfinite(e) or not np.all(np.isfinite(f)):
        raise TeacherError(f"teacher {teacher!r} returned a non-finite energy or forces")
    return TeacherResult(energy=e, forces=f)


class Teacher(abc.ABC):
    """A reference force field that labels structures with energies and forces.

    Subclasses set :attr:`name`, :attr:`version` and :attr:`settings` in
    ``__init__`` and implement :meth:`_compute`. Construction may be expensive
    (loading weights); :meth:`compute` is called once per structure.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"gfn2-xtb"``.
    version : str
        Version of the backend (package version, weights file), recorded in datasets.
    settings : dict
        JSON-serialisable settings that determine the labels (accuracy,
        precision, ...), recorded in datasets so a resumed or merged job can
        check it uses the same teacher.
    energy_unit, force_unit : str
        Always ``"eV"`` and ``"eV/Angstrom"``.
    """

    name: str = "teacher"
    version: str = "unknown"
    energy_unit: str = units.ENERGY_UNIT
    force_unit: str = units.FORCE_UNIT

    def __init__(self) -> None:
        self.settings: Dict[str, Any] = {}

    def compute(
        self,
        atomic_numbers: np.ndarray,
        positions: np.ndarray,
        box: Optional[np.ndarray] = None,
        *,
        charge: Optional[int] = None,
    ) -> TeacherResult:
        """Energy and forces of one structure.

        Parameters
        ----------
        atomic_numbers : numpy.ndarray of int, shape (N,)
        positions : numpy.ndarray of float, shape (N, 3)
            Cartesian positions, Angstrom.
        box : numpy.ndarray of float, shape (3, 3), optional
            Periodic cell as row vectors, Angstrom. ``None`` (default): isolated molecule.
        charge : int, optional
            Total charge in elementary charges; ``None`` uses the teacher's
            configured default. Teachers without a notion of charge ignore it.

        Returns
        -------
        TeacherResult
            Energy in eV, forces (N, 3) in eV/Angstrom.

        Raises
        ------
        TeacherError
            If the input is invalid or the backend fails (SCF not converged,
            non-finite output, any exception from the backend).
        """
        numbers, pos, cell = check_structure(atomic_numbers, positions, box)
        try:
            energy, forces = self._compute(numbers, pos, cell, charge)
        except TeacherError:
            raise
        except Exception as exc:  # the backend's own error types vary; report them uniformly
            raise TeacherError(f"teacher {self.name!r} failed: {type(exc).__name__}: {exc}") from exc
        return check_result(energy, forces, len(numbers), self.name)

    @abc.abstractmethod
    def _compute(
        self, numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray], charge: Optional[int]
    ) -> tuple:
        """Backend call on validated input; return ``(energy eV, forces (N, 3) eV/Angstrom)``."""

    def as_ase_calculator(self):
        """An ASE calculator that evaluates this teacher (for MD sampling, optimisation).

        Returns
        -------
        TeacherCalculator
            Provides ``energy``, ``free_energy`` (eV) and ``forces`` (eV/Angstrom).
            A structure with ``atoms.pbc.all()`` is passed with its cell as box;
            partially periodic structures are rejected. ``atoms.info["charge"]``
            is passed as the total charge when present.
        """
        return TeacherCalculator(self)

    def describe(self) -> Dict[str, Any]:
        """Metadata recorded in datasets: name, version, units and settings."""
        return {
            "name": self.name,
            "version": self.version,
            "energy_unit": self.energy_unit,
            "force_unit": self.force_unit,
            "settings": dict(self.settings),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, settings={self.settings!r})"


class TeacherCalculator(Calculator):
    """ASE calculator adapter around a :class:`Teacher` (units are ASE's: eV, Angstrom)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, teacher: Teacher, **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pbc = np.asarray(self.atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise TeacherError("teachers support isolated (pbc all False) or fully periodic (pbc all True) systems")
        box = np.asarray(self.atoms.cell.array) if pbc.all() else None
        charge = self.atoms.info.get("charge")
        result = self.teacher.compute(
            self.atoms.numbers, self.atoms.positions, box, charge=None if charge is None else int(charge)
        )
        self.results = {"energy": result.energy, "free_energy": result.energy, "forces": result.forces.copy()}
