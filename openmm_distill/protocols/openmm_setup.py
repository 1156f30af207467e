"""The OpenMM side of a protocol: which model, which System, which Simulation.

Every protocol takes a *model*: a compiled student given by name, path or
:class:`~openmm_distill.export.student.CompiledStudent`, or any ready
``openmm.System``. Positions go to OpenMM in nm.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import ConfigError
from openmm_distill.export.student import CompiledStudent, load_student
from openmm_distill.openmm_integration.simulation import create_simulation
from openmm_distill.openmm_integration.system import create_system
from openmm_distill.systems.resolve import MolecularSystem

import openmm
from openmm import app, unit

ModelLike = Union[str, os.PathLike, CompiledStudent, openmm.System]


def model_label(model: ModelLike) -> str:
    """Short name of a model for tables: the student's name, or ``"openmm-system"``."""
    if isinstance(model, openmm.System):
        return "openmm-system"
    return load_student(model).name


def student_info(model: ModelLike) -> Dict[str, Any]:
    """What identifies the model in a report: name, path, preset, size, dtype, elements, cutoff."""
    if isinstance(model, openmm.System):
        return {"name": "openmm-system", "kind": "openmm.System",
                "forces": [f.getName() or type(f).__name__ for f in model.getForces()]}
    student = load_student(model)
    meta = student.metadata
    return {"name": student.name, "kind": "compiled-student", "path": str(student.path),
            "preset": meta.get("preset"), "architecture": meta.get("architecture"),
            "n_parameters": meta.get("n_parameters"), "dtype": meta.get("dtype"),
            "elements": meta.get("element_symbols"), "cutoff_angstrom": meta.get("cutoff_angstrom"),
            "teacher": meta.get("teacher"), "trained": meta.get("trained")}


def build_system(model: ModelLike, molsys: MolecularSystem, backend: str = "torch") -> openmm.System:
    """The OpenMM System a protocol simulates.

    A student gets a fresh System whose only interaction is the student
    (:func:`openmm_distill.openmm_integration.system.create_system`); an ``openmm.System`` is used as
    given (Contexts never modify it; it must match the topology's atoms).
    """
    if isinstance(model, openmm.System):
        if model.getNumParticles() != molsys.n_atoms:
            raise ConfigError(f"the System has {model.getNumParticles()} particles but {molsys.name} has "
                             f"{molsys.n_atoms} atoms")
        return model
    keep_freed_memory()  # a protocol calls the student many times: keep its freed blocks for reuse
    return create_system(molsys.topology, load_student(model), backend=backend, remove_cm_motion=False)


def make_simulation(system: openmm.System, molsys: MolecularSystem, integrator: openmm.Integrator,
                    platform: Optional[str] = None, precision: Optional[str] = None) -> app.Simulation:
    """A checked Simulation with the system's starting positions (and box)."""
    return create_simulation(molsys.topology, system, integrator, molsys.positions,
                                platform=platform, precision=precision)


def degrees_of_freedom(system: openmm.System) -> int:
    """3 N minus constraints (minus 3 with a CMMotionRemover), for temperatures from kinetic energy."""
    dof = sum(3 for i in range(system.getNumParticles()) if system.getParticleMass(i).value_in_unit(unit.dalton) > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)
