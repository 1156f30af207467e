"""Energies and forces of a compiled student on a list of structures, as OpenMM computes them.

This is the one evaluation loop of the package: the ``evaluate`` command
(:mod:`openmm_distill.training.evaluate`) and the accuracy protocol
(:mod:`openmm_distill.protocols.accuracy`) both run their structures through
:func:`predict_structures` and differ only in where the structures come from
and which metrics they compute.

The deployed module is called with positions in nm and returns kJ/mol, as
inside OpenMM; what comes back is converted to the teacher's units (eV,
eV/Angstrom), so what is measured is the deployed file, dtype and unit
conversions included, not the training checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from openmm_distill.errors import DistillError
from openmm_distill.export.student import CompiledStudent, load_student
from openmm_distill.units import ANGSTROM_TO_NM, KJ_PER_MOL_TO_EV, NM_TO_ANGSTROM


def energy_and_forces(module, positions_angstrom: np.ndarray, box_angstrom: Optional[np.ndarray] = None,
                      device: str = "cpu") -> Tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Angstrom, (N, 3)) of one structure from a module bound to its atoms.

    Parameters
    ----------
    module : deployed student (``set_atoms`` already called)
    positions_angstrom : (N, 3) array, Angstrom
    box_angstrom : (3, 3) array, Angstrom, optional
        Periodic box vectors as rows (OpenMM's reduced form); ``None`` for no periodicity.
    device : str
        Torch device the module lives on.
    """
    pos_nm = torch.tensor(np.asarray(positions_angstrom, dtype=np.float64) * ANGSTROM_TO_NM, dtype=torch.float64,
                          device=device, requires_grad=True)
    box_nm = None if box_angstrom is None else torch.tensor(
        np.asarray(box_angstrom, dtype=np.float64) * ANGSTROM_TO_NM, dtype=torch.float64, device=device)
    energy_kj = module(pos_nm, box_nm)
    (grad,) = torch.autograd.grad(energy_kj, pos_nm)
    energy_ev = float(energy_kj.detach()) * KJ_PER_MOL_TO_EV
    # -dE/dx in kJ/mol/nm -> eV/Angstrom.
    forces = -grad.detach().to(torch.float64).cpu().numpy() * (KJ_PER_MOL_TO_EV / NM_TO_ANGSTROM)
    return energy_ev, forces


class CompiledPredictor:
    """Calls a compiled student on one structure after another (rebinding only when the atoms change).

    Parameters
    ----------
    student : shipped student name, path of a compiled file, or :class:`CompiledStudent`
    device : str
    """

    def __init__(self, student: Any, device: str = "cpu"):
        self.student: CompiledStudent = load_student(student)
        self.device = device
        self._module = None
        self._numbers: Optional[np.ndarray] = None

    def __call__(self, structure: Any) -> Tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Angstrom) of an object with ``atomic_numbers``, ``positions`` (Angstrom)
        and ``box`` (Angstrom or None); :class:`~openmm_distill.errors.UnsupportedElementError` for an
        element the student does not know."""
        numbers = np.asarray(structure.atomic_numbers, dtype=np.int64)
        if self._module is None or self._numbers is None or not np.array_equal(numbers, self._numbers):
            self._module = self.student.bound_module(numbers, device=self.device)
            self._numbers = numbers.copy()
        return energy_and_forces(self._module, structure.positions, getattr(structure, "box", None), self.device)


@dataclass
class Predictions:
    """What :func:`predict_structures` returns.

    Attributes
    ----------
    energies : (S,) array, eV
        Of the structures that could be evaluated, in order.
    forces : list of (N_s, 3) arrays, eV/Angstrom
    kept : list of int
        Indices (into the input) of those structures.
    failures : list of (int, str)
        Index and reason of each structure the student could not evaluate.
    """

    energies: np.ndarray
    forces: List[np.ndarray]
    kept: List[int]
    failures: List[Tuple[int, str]] = field(default_factory=list)


def predict_structures(predict_one: Callable[[Any], Tuple[float, np.ndarray]], structures: Sequence[Any], *,
                       keep_going: bool = True, progress: bool = False, desc: str = "student") -> Predictions:
    """Run ``predict_one`` (e.g. a :class:`CompiledPredictor`) on every structure.

    Parameters
    ----------
    predict_one : callable
        ``structure -> (energy eV, forces eV/Angstrom)``.
    structures : sequence
        Objects with ``atomic_numbers``, ``positions`` (Angstrom) and ``box``.
    keep_going : bool
        Record a structure the student cannot evaluate (a :class:`DistillError`: unknown element,
        box narrower than twice the cutoff) as a failure and go on; ``False`` raises it.
    progress : bool
        Show a tqdm bar.
    """
    from tqdm.auto import tqdm

    energies: List[float] = []
    forces: List[np.ndarray] = []
    kept: List[int] = []
    failures: List[Tuple[int, str]] = []
    for i, structure in enumerate(tqdm(structures, disable=not progress, desc=desc, leave=False, unit="structure")):
        try:
            energy, force = predict_one(structure)
        except DistillError as exc:
            if not keep_going:
                raise
            failures.append((i, f"{type(exc).__name__}: {exc}"))
            continue
        energies.append(float(energy))
        forces.append(np.asarray(force, dtype=np.float64))
        kept.append(i)
    return Predictions(np.array(energies, dtype=np.float64), forces, kept, failures)

