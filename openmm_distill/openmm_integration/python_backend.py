"""Backend 2: ``openmm.PythonForce`` (OpenMM >= 8.6) calling the same compiled student.

Works with any torch version (no openmm-torch build needed); this is the path
upstream recommends now that TorchScript and TorchForce are frozen. The
computation object is picklable and carries the bound module's bytes, so a
System holding it survives XML serialisation.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from openmm_distill.errors import MissingDependencyError
from openmm_distill.export.student import CompiledStudent
from openmm_distill.export.torchscript import module_from_bytes, module_to_bytes
from openmm_distill.openmm_integration.checks import non_finite_error

import openmm
from openmm import unit


class StudentComputation:
    """``computation(state) -> (energy kJ/mol, forces kJ/mol/nm)`` for ``openmm.PythonForce``."""

    def __init__(self, module_bytes: bytes, periodic: bool, device: Optional[str] = None):
        self.module_bytes = module_bytes
        self.periodic = periodic
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._module = None

    @property
    def module(self):
        if self._module is None:
            self._module = module_from_bytes(self.module_bytes, map_location=self.device)
        return self._module

    def __call__(self, state: openmm.State):
        # float64, as OpenMM holds them: the module casts pair vectors, not coordinates, to its own dtype.
        pos = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        positions = torch.tensor(pos, dtype=torch.float64, device=self.device, requires_grad=True)
        box_nm = box = None
        if self.periodic:
            box_nm = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
            box = torch.tensor(box_nm, dtype=torch.float64, device=self.device)
        energy = self.module(positions, box)
        (grad,) = torch.autograd.grad(energy, positions)
        energy_kj = float(energy.detach())
        forces = (-grad).detach().cpu().numpy().astype(np.float64)
        if not (math.isfinite(energy_kj) and np.isfinite(forces).all()):
            # Name the cause (coincident atoms, NaN positions) instead of handing NaN to the integrator.
            indices = self.module.indices
            particles = indices.cpu().numpy() if indices.shape[0] > 0 else None
            raise non_finite_error(energy_kj, pos, box_nm, particles, "the student's PythonForce")
        return energy_kj, forces

    def __getstate__(self):
        return {"module_bytes": self.module_bytes, "periodic": self.periodic, "device": None}

    def __setstate__(self, state):
        self.__init__(state["module_bytes"], state["periodic"], state["device"])


def python_force(computation: StudentComputation, periodic: bool, label: str) -> openmm.PythonForce:
    """Wrap a student computation in an ``openmm.PythonForce`` (shared by the python and inductor backends)."""
    if not hasattr(openmm, "PythonForce"):
        raise MissingDependencyError(f"{label} needs OpenMM >= 8.6 (openmm.PythonForce); this is OpenMM {openmm.__version__}")
    force = openmm.PythonForce(computation)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    return force


def make_python_force(student: CompiledStudent, atomic_numbers: Sequence[int], indices: Optional[Sequence[int]],
                      periodic: bool, device: Optional[str] = None) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``student`` on the given particles."""
    module = student.bound_module(atomic_numbers, indices)
    return python_force(StudentComputation(module_to_bytes(module), bool(periodic), device), periodic,
                        "backend='python'")
