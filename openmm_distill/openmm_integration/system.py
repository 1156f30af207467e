"""Put a compiled student into an OpenMM ``System``: whole system, or an ML region in an MM system."""
from __future__ import annotations

import warnings
from typing import Iterable, List, Optional, Sequence

import numpy as np
import openmm
from openmm import app, unit

from openmm_distill.export.student import CompiledStudent, load_student
from openmm_distill.openmm_integration.checks import check_box
from openmm_distill.openmm_integration.inductor_backend import make_inductor_force
from openmm_distill.openmm_integration.python_backend import make_python_force
from openmm_distill.openmm_integration.torch_backend import make_torch_force

BACKENDS = ["torch", "python", "inductor"]
# Each student force is named "openmm-distill student NAME (LABEL)"; reports read the backend back from the
# label (a Context's System hands plugin forces such as TorchForce back as plain ``Force``, so not from the type).
_FORCE_NAME = "openmm-distill student"
BACKEND_LABELS = {"torch": "TorchForce", "python": "PythonForce", "inductor": "PythonForce, TorchInductor"}


def atomic_numbers_of(topology: app.Topology, atoms: Optional[Sequence[int]] = None) -> List[int]:
    """Atomic numbers of a topology's atoms (all, or the given atom indices)."""
    all_atoms = list(topology.atoms())
    chosen = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    numbers = []
    for atom in chosen:
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name} in {atom.residue.name}) has no element; "
                             "virtual sites and extra particles cannot be part of the ML region")
        numbers.append(atom.element.atomic_number)
    return numbers


def add_student_force(
    system: openmm.System,
    student,
    topology: Optional[app.Topology] = None,
    *,
    atomic_numbers: Optional[Sequence[int]] = None,
    atoms: Optional[Iterable[int]] = None,
    backend: str = "torch",
    periodic: Optional[bool] = None,
    cuda_graphs: bool = False,
    force_group: Optional[int] = None,
) -> openmm.Force:
    """Add a student's energy for all particles or a subset of them to ``system``.

    Parameters
    ----------
    system : the System to modify (in place)
    student : shipped student name, compiled file path, or :class:`CompiledStudent`
    topology : where atomic numbers come from (or pass ``atomic_numbers``)
    atomic_numbers : atomic numbers of the ML particles, in ``atoms`` order
    atoms : particle indices of the ML region; default all particles
    backend : "torch" (openmm-torch TorchForce), "python" (openmm.PythonForce, any torch) or
        "inductor" (openmm.PythonForce running the network compiled by torch.compile: about 2x
        faster on CPU, after 20 s to 2 min of compilation on the first force call of a process)
    periodic : use periodic boundary conditions; default: whether the System has a
        periodic default box (``topology.getPeriodicBoxVectors()`` set) or other periodic forces
    cuda_graphs : TorchForce's ``useCUDAGraphs`` on the CUDA platform
    force_group : optional force group for the new force

    Returns the Force that was added. Unsupported elements and too-small boxes
    raise here, before any Context exists.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    student = load_student(student)
    indices = None if atoms is None else [int(i) for i in atoms]
    if indices is not None:
        if len(set(indices)) != len(indices):
            raise ValueError("atoms contains duplicate particle indices")
        bad = [i for i in indices if not 0 <= i < system.getNumParticles()]
        if bad:
            raise ValueError(f"atoms {bad[:5]} are outside the System's {system.getNumParticles()} particles")
    if atomic_numbers is None:
        if topology is None:
            raise ValueError("pass a topology or atomic_numbers so the student knows the elements")
        atomic_numbers = atomic_numbers_of(topology, indices)
    n_ml = len(indices) if indices is not None else system.getNumParticles()
    if len(atomic_numbers) != n_ml:
        raise ValueError(f"got {len(atomic_numbers)} atomic numbers for {n_ml} ML particles")
    if periodic is None:
        periodic = system.usesPeriodicBoundaryConditions() or (
            topology is not None and topology.getPeriodicBoxVectors() is not None)
    if periodic:
        box = topology.getPeriodicBoxVectors() if topology is not None and topology.getPeriodicBoxVectors() is not None \
            else system.getDefaultPeriodicBoxVectors()
        check_box(box, student.cutoff_nm)
    # All particles in order: no index buffer needed (saves a gather per step).
    if indices is not None and indices == list(range(system.getNumParticles())):
        indices = None
    if backend == "torch":
        force = make_torch_force(student, atomic_numbers, indices, periodic, cuda_graphs)
    elif backend == "python":
        force = make_python_force(student, atomic_numbers, indices, periodic)
    else:
        force = make_inductor_force(student, atomic_numbers, indices, periodic)
    force.setName(f"{_FORCE_NAME} {student.name} ({BACKEND_LABELS[backend]})")
    if force_group is not None:
        force.setForceGroup(force_group)
    system.addForce(force)
    return force


def student_backends(system: openmm.System) -> List[str]:
    """The backend of each student force in ``system`` (for reports), read from the label in its name.

    Forces named before labels existed (TorchForce only) count as "torch".
    """
    found = []
    for force in system.getForces():
        name = force.getName()
        if name.startswith(_FORCE_NAME):
            found.append(next((b for b, label in BACKEND_LABELS.items() if name.endswith(f"({label})")), "torch"))
    return found


def create_system(topology: app.Topology, student, *, backend: str = "torch", cuda_graphs: bool = False,
                  remove_cm_motion: bool = False) -> openmm.System:
    """A new System whose only interaction is the student (masses from the topology's elements)."""
    system = openmm.System()
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name}) has no element")
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    add_student_force(system, student, topology, backend=backend, periodic=box is not None, cuda_graphs=cuda_graphs)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


def _zero_internal_terms(system: openmm.System, ml: set) -> None:
    """Switch off MM bonded terms whose atoms all lie in the ML region (the student replaces them)."""
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, _ = force.getBondParameters(k)
                if i in ml and j in ml:
                    force.setBondParameters(k, i, j, r0, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                i, j, l, a0, _ = force.getAngleParameters(k)
                if {i, j, l} <= ml:
                    force.setAngleParameters(k, i, j, l, a0, 0.0)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for k in range(force.getNumTorsions()):
                i, j, l, m, n, ph, _ = force.getTorsionParameters(k)
                if {i, j, l, m} <= ml:
                    force.setTorsionParameters(k, i, j, l, m, n, ph, 0.0)
        elif isinstance(force, openmm.RBTorsionForce):
            for k in range(force.getNumTorsions()):
                i, j, l, m, *_ = force.getTorsionParameters(k)
                if {i, j, l, m} <= ml:
                    force.setTorsionParameters(k, i, j, l, m, 0, 0, 0, 0, 0, 0)
        elif isinstance(force, openmm.NonbondedForce):
            members = sorted(ml)
            for a, i in enumerate(members):
                for j in members[a + 1:]:
                    force.addException(i, j, 0.0, 1.0, 0.0, True)
        elif isinstance(force, (openmm.CMAPTorsionForce, openmm.CustomTorsionForce, openmm.CustomBondForce,
                                openmm.CustomAngleForce, openmm.CustomNonbondedForce)):
            warnings.warn(f"{type(force).__name__} is kept unchanged inside the ML region; remove ML-ML terms "
                          "yourself if they should not be double counted", stacklevel=3)


def create_mixed_system(mm_system: openmm.System, topology: app.Topology, ml_atoms: Iterable[int], student, *,
                        backend: str = "torch", cuda_graphs: bool = False) -> openmm.System:
    """ML/MM: a copy of ``mm_system`` where the student describes the ``ml_atoms`` region.

    As openmm-ml's ``createMixedSystem``: MM bonds, angles and torsions among ML
    atoms are switched off, nonbonded interactions between ML atoms become
    exclusions, and everything between the ML and MM regions stays MM.
    """
    ml = [int(i) for i in ml_atoms]
    if not ml:
        raise ValueError("ml_atoms is empty")
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(mm_system))
    _zero_internal_terms(system, set(ml))
    add_student_force(system, student, topology, atoms=ml, backend=backend,
                      periodic=mm_system.usesPeriodicBoundaryConditions(), cuda_graphs=cuda_graphs)
    return system
