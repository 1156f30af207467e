"""Put a compiled student into an OpenMM ``System``: whole system, or an ML region in an MM system."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from openmm_distill.elements import atomic_numbers_of
from openmm_distill.errors import ConfigError
from openmm_distill.export.student import load_student
from openmm_distill.openmm_integration.checks import check_box
from openmm_distill.openmm_integration.inductor_backend import make_inductor_force
from openmm_distill.openmm_integration.python_backend import make_python_force
from openmm_distill.openmm_integration.torch_backend import make_torch_force, torch_force_unavailable

import openmm
from openmm import app

BACKENDS = ["auto", "torch", "python", "inductor"]
# Each student force is named "openmm-distill student NAME (LABEL)"; reports read the backend back from the
# label (a Context's System hands plugin forces such as TorchForce back as plain ``Force``, so not from the type).
_FORCE_NAME = "openmm-distill student"
BACKEND_LABELS = {"torch": "TorchForce", "python": "PythonForce", "inductor": "PythonForce, TorchInductor"}


_fallback_warned = False
# Frames in these folders are not the user's: a warning points at the first frame outside them.
_LIBRARY_DIRS = (str(Path(__file__).resolve().parents[1]), str(Path(openmm.__file__).resolve().parent))


def _user_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` that names the user's line, not this package's or openmm-ml's."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(_LIBRARY_DIRS)
                                 or "openmmml" in frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def resolve_backend(backend: str) -> str:
    """The backend ``backend`` names: "auto" is TorchForce where openmm-torch's kernels loaded in this process,
    else PythonForce, with one warning per process that says why."""
    global _fallback_warned
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {BACKENDS}")
    if backend != "auto":
        return backend
    reason = torch_force_unavailable()
    if reason is None:
        return "torch"
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(f"backend='auto' runs the student in openmm.PythonForce (same energies) instead of "
                      f"openmm-torch's TorchForce: {reason}", RuntimeWarning, stacklevel=_user_stacklevel())
    return "python"


def ml_particle_indices(atoms: Iterable[int], n_particles: int) -> List[int]:
    """``atoms`` as a list of particle indices, after checking it is non-empty, unique and in range."""
    indices = [int(i) for i in atoms]
    if not indices:
        raise ConfigError("the ML region (atoms) is empty")
    if len(set(indices)) != len(indices):
        raise ConfigError("the ML region (atoms) contains duplicate particle indices")
    bad = [i for i in indices if not 0 <= i < n_particles]
    if bad:
        raise ConfigError(f"atoms {bad[:5]} are outside the System's {n_particles} particles")
    return indices


def add_student_force(
    system: openmm.System,
    student,
    topology: Optional[app.Topology] = None,
    *,
    atomic_numbers: Optional[Sequence[int]] = None,
    atoms: Optional[Iterable[int]] = None,
    backend: str = "auto",
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
    backend : "auto" (default: "torch" where openmm-torch's kernels loaded in this process, else "python"
        with one warning saying why), "torch" (openmm-torch TorchForce), "python" (openmm.PythonForce,
        any torch) or "inductor" (openmm.PythonForce running the network compiled by torch.compile: about
        2x faster on CPU, after 20 s to 2 min of compilation on the first force call of a process)
    periodic : use periodic boundary conditions; default: whether the System has a
        periodic default box (``topology.getPeriodicBoxVectors()`` set) or other periodic forces
    cuda_graphs : TorchForce's ``useCUDAGraphs`` on the CUDA platform
    force_group : optional force group for the new force

    Returns the Force that was added. Unsupported elements and too-small boxes
    raise here, before any Context exists.
    """
    backend = resolve_backend(backend)
    student = load_student(student)
    # openmm-ml builds interpolated forces in an empty System (to wrap them in a CustomCVForce of the
    # real one); the topology then says how many particles there are.
    n_particles = system.getNumParticles() or (topology.getNumAtoms() if topology is not None else 0)
    indices = None if atoms is None else ml_particle_indices(atoms, n_particles)
    if atomic_numbers is None:
        if topology is None:
            raise ConfigError("pass a topology or atomic_numbers so the student knows the elements")
        atomic_numbers = atomic_numbers_of(topology, indices)
    n_ml = len(indices) if indices is not None else system.getNumParticles()
    if len(atomic_numbers) != n_ml:
        raise ConfigError(f"got {len(atomic_numbers)} atomic numbers for {n_ml} ML particles")
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


def create_system(topology: app.Topology, student, *, backend: str = "auto", cuda_graphs: bool = False,
                  remove_cm_motion: bool = True) -> openmm.System:
    """A new System whose only interaction is the student (masses from the topology's elements).

    The same System as openmm-ml's ``MLPotential('openmm-distill', student=...).createSystem(topology)``,
    including its default of a ``CMMotionRemover`` (``remove_cm_motion``).
    """
    system = openmm.System()
    for atom in topology.atoms():
        if atom.element is None:
            raise ConfigError(f"atom {atom.index} ({atom.name}) has no element; the student needs one for every "
                              "particle (virtual sites and extra particles can only be MM)")
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    add_student_force(system, student, topology, backend=backend, periodic=box is not None, cuda_graphs=cuda_graphs)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system
