"""Golden energies and forces of the shipped students, through a real OpenMM Context.

Run from the repository root to (re)write ``tests/golden/students.npz``::

    python tests/golden/make_golden.py

Only rerun it when a change is *meant* to alter the students' numbers (a
retrained student, a new structure); ``tests/test_golden.py`` recomputes the
same values with :func:`compute` and compares them with the stored ones, so a
refactor that changes behaviour fails there.

Energies are in kJ/mol, forces in kJ/mol/nm, computed on the CPU platform
(float32 network) from the committed PDB files in ``openmm_distill/systems/data/structures``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

import openmm_distill as od  # torch before openmm
from openmm_distill.systems.catalog import structure_path

import openmm
from openmm import app, unit

HERE = Path(__file__).resolve().parent
GOLDEN_FILE = HERE / "students.npz"
STUDENTS = ("original", "original-sevennet0", "tiny", "tiny-sevennet0", "ultra-tiny")
# Two molecules in vacuum and a periodic box of 216 waters (exercises the periodic neighbour list).
STRUCTURES = ("aspirin", "alanine_dipeptide", "water_box")
BACKENDS = ("torch", "python")


def compute(student: str, structure: str, backend: str) -> Tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces ((N, 3) kJ/mol/nm) of ``student`` on a committed structure."""
    pdb = app.PDBFile(str(structure_path(f"{structure}.pdb")))
    system = od.create_system(pdb.topology, student, backend=backend)
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    if pdb.topology.getPeriodicBoxVectors() is not None:
        context.setPeriodicBoxVectors(*pdb.topology.getPeriodicBoxVectors())
    context.setPositions(pdb.positions)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return float(energy), np.asarray(forces, dtype=np.float64)


def key(student: str, structure: str, backend: str, quantity: str) -> str:
    return f"{student}/{structure}/{backend}/{quantity}"


def make() -> Dict[str, np.ndarray]:
    values = {}
    for student in STUDENTS:
        for structure in STRUCTURES:
            for backend in BACKENDS:
                energy, forces = compute(student, structure, backend)
                values[key(student, structure, backend, "energy")] = np.array(energy)
                values[key(student, structure, backend, "forces")] = forces
                print(f"{student:>10} {structure:>18} {backend:>6}: E = {energy:.6f} kJ/mol, "
                      f"max |F| = {np.abs(forces).max():.3f} kJ/mol/nm")
    return values


if __name__ == "__main__":
    np.savez_compressed(GOLDEN_FILE, **make())
    print(f"wrote {GOLDEN_FILE}", file=sys.stderr)
