"""Teacher-driven Langevin molecular dynamics (ASE) for thermal snapshots.

The teacher is evaluated at every MD step anyway, so each snapshot comes with
its label (energy in eV, forces in eV/Angstrom) for free; the labelling job
reuses it instead of calling the teacher again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from openmm_distill.errors import TeacherError


@dataclass
class Snapshot:
    """One MD frame.

    Attributes
    ----------
    positions : numpy.ndarray, shape (N, 3), Angstrom
    energy : float
        Teacher potential energy, eV.
    forces : numpy.ndarray, shape (N, 3), eV/Angstrom
    step : int
        MD step at which the frame was taken.
    """

    positions: np.ndarray
    energy: float
    forces: np.ndarray
    step: int


def langevin_snapshots(
    teacher,
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    *,
    temperature_K: float,
    n_snapshots: int,
    interval_steps: int,
    equilibration_steps: int,
    timestep_fs: float,
    friction_per_fs: float,
    rng: np.random.Generator,
    charge: Optional[int] = None,
    box: Optional[np.ndarray] = None,
) -> List[Snapshot]:
    """Run Langevin dynamics with the teacher and take evenly spaced snapshots.

    Velocities start from a Maxwell-Boltzmann distribution at ``temperature_K``
    (centre-of-mass motion and rotation removed).

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher
    atomic_numbers : numpy.ndarray of int, shape (N,)
    positions : numpy.ndarray, shape (N, 3), Angstrom
        Starting geometry (ideally near a minimum).
    temperature_K : float
        Thermostat and initial-velocity temperature, Kelvin.
    n_snapshots : int
    interval_steps : int
        Steps between snapshots.
    equilibration_steps : int
        Steps before the first interval.
    timestep_fs : float
        Femtoseconds.
    friction_per_fs : float
        Langevin friction, 1/fs.
    rng : numpy.random.Generator
        Drives initial velocities and the thermostat noise (reproducible).
    charge : int, optional
    box : numpy.ndarray, shape (3, 3), Angstrom, optional

    Returns
    -------
    list of Snapshot
        ``n_snapshots`` frames, in order.

    Raises
    ------
    TeacherError
        If the teacher fails during the run. ``exc.snapshots`` holds the frames
        collected before the failure.
    """
    from ase import Atoms, units as ase_units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    atoms = Atoms(numbers=np.asarray(atomic_numbers), positions=np.asarray(positions, dtype=np.float64))
    if box is not None:
        atoms.cell = box
        atoms.pbc = True
    if charge is not None:
        atoms.info["charge"] = int(charge)
    atoms.calc = teacher.as_ase_calculator()
    # No centre-of-mass constraint: ASE's FixCom projects the forces (and
    # Langevin's fixcm is deprecated); an isolated molecule's energy does not
    # depend on where it drifts, and the labels must be the raw teacher forces.
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        MaxwellBoltzmannDistribution(atoms, temperature_K=float(temperature_K), rng=rng)
    else:
        thermalize_momenta(atoms, float(temperature_K), rng=rng)
    Stationary(atoms)
    if len(atoms) > 2 and box is None:
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=float(timestep_fs) * ase_units.fs,
        temperature_K=float(temperature_K),
        friction=float(friction_per_fs) / ase_units.fs,
        fixcm=False,
        rng=rng,
    )
    snapshots: List[Snapshot] = []
    step = 0
    try:
        if equilibration_steps > 0:
            dyn.run(int(equilibration_steps))
            step += int(equilibration_steps)
        for _ in range(int(n_snapshots)):
            dyn.run(int(interval_steps))
            step += int(interval_steps)
            # Cached by the calculator: the forces of the last step, at these positions.
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces(apply_constraint=False), dtype=np.float64)
            snapshots.append(Snapshot(atoms.get_positions().copy(), energy, forces, step))
    except TeacherError as exc:
        exc.snapshots = snapshots
        raise
    return snapshots
