"""The systems the GPU check runs: students on molecules and water boxes of fixed sizes, per backend.

The sizes are those of ``benchmarks/student_speed.py`` (same molecules, seeds and boxes), so CPU and
GPU figures compare: aspirin (21 atoms), Ace-Ala9-Nme (102), and water boxes of 333 and 1,667
molecules (999 and 5,001 atoms, periodic).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from openmm_distill.errors import ConfigError
from openmm_distill.export.eager import eager_deployed
from openmm_distill.export.student import CompiledStudent, load_student
from openmm_distill.export.torchscript import module_from_bytes, module_to_bytes
from openmm_distill.openmm_integration.inductor_backend import InductorStudentComputation, make_inductor_force
from openmm_distill.openmm_integration.platforms import choose_platform
from openmm_distill.openmm_integration.python_backend import make_python_force, python_force
from openmm_distill.openmm_integration.system import add_student_force
from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology, water_box
from openmm_distill.units import ANGSTROM_TO_NM

import openmm
from openmm import app, unit

MOLECULES = {21: ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"), 102: ("Ace-Ala9-Nme", "CC(=O)" + "NC(C)C(=O)" * 9 + "NC")}
WATERS = {999: 333, 5001: 1667}
SIZES = tuple(sorted([*MOLECULES, *WATERS]))
# Backend variants: (backend, CUDA graphs). "torch" graphs: TorchForce's useCUDAGraphs; "inductor" graphs:
# torch.compile(mode="reduce-overhead") of the network. The python backend (TorchScript) has no graph option.
VARIANTS: Tuple[Tuple[str, bool], ...] = (("torch", False), ("torch", True), ("python", False),
                                          ("inductor", False), ("inductor", True))
TIMESTEP_PS = 0.0005


@dataclass(frozen=True)
class TestSystem:
    """One system: atomic numbers, positions (nm), periodic box (nm, rows) or None, and a topology."""

    name: str
    atomic_numbers: np.ndarray
    positions_nm: np.ndarray
    box_nm: Optional[np.ndarray]
    topology: app.Topology

    @property
    def atoms(self) -> int:
        return len(self.atomic_numbers)


def parse_sizes(text: str) -> List[int]:
    """``"21,102"`` -> [21, 102]; a ConfigError names the sizes there are."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s not in SIZES for s in sizes):
        raise ConfigError(f"--sizes {text!r}: choose from {','.join(map(str, SIZES))} (atoms)")
    return sizes


@functools.lru_cache(maxsize=None)
def test_system(atoms: int) -> TestSystem:
    """The system of ``atoms`` atoms (one of :data:`SIZES`), built once per process."""
    if atoms in MOLECULES:
        name, smiles = MOLECULES[atoms]
        s = structure_from_smiles(smiles, seed=1)
        system = TestSystem(name, s.atomic_numbers, s.positions * ANGSTROM_TO_NM, None, structure_to_openmm_topology(s))
    else:
        w = water_box(n_waters=WATERS[atoms], seed=0)
        system = TestSystem(f"water x{WATERS[atoms]}", w.atomic_numbers, w.positions * ANGSTROM_TO_NM,
                            w.box * ANGSTROM_TO_NM, w.topology)
    if system.atoms != atoms:
        raise RuntimeError(f"{system.name} has {system.atoms} atoms, not {atoms}")
    return system


def allow_recompiles(limit: int = 64) -> None:
    """Let TorchDynamo compile the network for every new Force (each Context here builds its own) instead of
    falling back to eager, silently, after its default of 8 compilations of one function."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(limit, getattr(torch._dynamo.config, name)))


def variant_name(backend: str, cuda_graphs: bool) -> str:
    return f"{backend}+graphs" if cuda_graphs else backend


class GraphedInductorComputation(InductorStudentComputation):
    """The inductor backend with the network compiled in ``mode="reduce-overhead"`` (CUDA graphs).

    An experiment of this check, not a package backend: the neighbour search stays eager, and every new
    number of neighbour pairs is a new shape, which CUDA graphs record anew.
    """

    @property
    def module(self):
        if self._module is None:
            deployed = eager_deployed(module_from_bytes(self.module_bytes, map_location=self.device),
                                      self.metadata).to(self.device)
            network = deployed.model
            network.atomic_energies_from_vectors = torch.compile(network.atomic_energies_from_vectors,
                                                                 dynamic=True, mode="reduce-overhead")
            self._module = deployed
        return self._module


def graphed_inductor_force(student: CompiledStudent, atomic_numbers: Sequence[int], periodic: bool) -> openmm.Force:
    module = student.bound_module(atomic_numbers)
    computation = GraphedInductorComputation(module_to_bytes(module), periodic, dict(student.metadata), "cuda")
    return python_force(computation, periodic, "inductor with CUDA graphs")


def bare_system(ts: TestSystem) -> openmm.System:
    """A System of ``ts``'s atoms (element masses, its box) with no force yet."""
    system = openmm.System()
    for atom in ts.topology.atoms():
        system.addParticle(atom.element.mass)
    if ts.box_nm is not None:
        system.setDefaultPeriodicBoxVectors(*ts.box_nm)
    return system


def student_system(ts: TestSystem, student: str, backend: str, cuda_graphs: bool = False,
                   device: Optional[str] = None) -> openmm.System:
    """A System of ``ts`` whose only force is the student through one backend variant.

    ``device`` is torch's device for the python and inductor backends (default: CUDA when torch sees a
    GPU); a TorchForce runs where OpenMM's platform does.
    """
    compiled = load_student(student)
    system = bare_system(ts)
    periodic = ts.box_nm is not None
    if backend == "torch":
        add_student_force(system, compiled, atomic_numbers=ts.atomic_numbers, backend="torch", periodic=periodic,
                          cuda_graphs=cuda_graphs)
    elif backend == "python":
        system.addForce(make_python_force(compiled, ts.atomic_numbers, None, periodic, device))
    elif cuda_graphs:
        system.addForce(graphed_inductor_force(compiled, ts.atomic_numbers, periodic))
    else:
        system.addForce(make_inductor_force(compiled, ts.atomic_numbers, None, periodic, device))
    return system


def make_context(ts: TestSystem, system: openmm.System, platform_name: str,
                 precision: Optional[str] = None) -> openmm.Context:
    """A Verlet Context (0.5 fs) of ``system``, with ``ts``'s box and positions and velocities at 300 K."""
    platform, properties = choose_platform(platform_name, precision)
    context = openmm.Context(system, openmm.VerletIntegrator(TIMESTEP_PS), platform, properties)
    if ts.box_nm is not None:
        context.setPeriodicBoxVectors(*ts.box_nm)
    context.setPositions(ts.positions_nm)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return context


def energy_forces(context: openmm.Context) -> Tuple[float, np.ndarray]:
    """Potential energy (kJ/mol) and forces (kJ/mol/nm, (N, 3))."""
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def platform_precisions(platform_name: str) -> List[Optional[str]]:
    """The precisions to compare on a platform: mixed and single where it has the property, else its one."""
    return ["mixed", "single"] if platform_name in ("CUDA", "OpenCL") else [None]

