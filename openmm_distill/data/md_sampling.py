"""Langevin molecular dynamics (ASE) for thermal snapshots.

Two drivers:

* ``"teacher"`` (default): the teacher itself drives the dynamics, so the
  snapshots sample the teacher's own thermal ensemble. The teacher is
  evaluated at every step anyway, so each snapshot comes with its label
  (energy in eV, forces in eV/Angstrom) for free; the labelling job reuses it.
  Cost: ``interval_steps`` teacher calls per snapshot.
* ``"mmff"``: RDKit's MMFF94 drives the dynamics (microseconds per step) and
  the snapshots are labelled by the teacher afterwards: one teacher call per
  snapshot, but the ensemble is MMFF's, not the teacher's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from openmm_distill.errors import TeacherError
from openmm_distill.units import KCAL_PER_MOL_TO_EV


@dataclass
class Snapshot:
    """One MD frame.

    Attributes
    ----------
    positions : numpy.ndarray, shape (N, 3), Angstrom
    energy : float or None
        Teacher potential energy, eV (``None`` when the teacher did not drive the run).
    forces : numpy.ndarray, shape (N, 3), eV/Angstrom, or None
    step : int
        MD step at which the frame was taken.
    """

    positions: np.ndarray
    energy: Optional[float]
    forces: Optional[np.ndarray]
    step: int


class MMFFCalculator(Calculator):
    """ASE calculator for RDKit's MMFF94 (eV, eV/Angstrom) on one molecule's atom order.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        Molecule with explicit hydrogens and at least one conformer.
    conformer_id : int
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, mol, conformer_id: int = -1, **kwargs):
        from rdkit.Chem import AllChem

        super().__init__(**kwargs)
        if not AllChem.MMFFHasAllMoleculeParams(mol):
            raise ValueError("MMFF94 has no parameters for this molecule")
        props = AllChem.MMFFGetMoleculeProperties(mol)
        self._ff = AllChem.MMFFGetMoleculeForceField(mol, props, confId=int(conformer_id))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = self.atoms.positions.reshape(-1).tolist()
        # CalcEnergy(pos) must precede CalcGrad(pos) (see conformers.mmff_hessian).
        energy = self._ff.CalcEnergy(x) * KCAL_PER_MOL_TO_EV
        forces = -np.asarray(self._ff.CalcGrad(x)).reshape(-1, 3) * KCAL_PER_MOL_TO_EV
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


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
    calculator: Optional[Calculator] = None,
) -> List[Snapshot]:
    """Run Langevin dynamics and take evenly spaced snapshots.

    Velocities start from a Maxwell-Boltzmann distribution at ``temperature_K``
    (centre-of-mass motion and rotation removed).

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher or None
        Drives the dynamics unless ``calculator`` is given; snapshots then carry its labels.
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
    calculator : ase.calculators.calculator.Calculator, optional
        Another driver (e.g. :class:`MMFFCalculator`); snapshots then have no label.

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
    from ase import Atoms
    from ase import units as ase_units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    atoms = Atoms(numbers=np.asarray(atomic_numbers), positions=np.asarray(positions, dtype=np.float64))
    if box is not None:
        atoms.cell = box
        atoms.pbc = True
    if charge is not None:
        atoms.info["charge"] = int(charge)
    labelled = calculator is None
    atoms.calc = teacher.as_ase_calculator() if labelled else calculator
    # No centre-of-mass constraint: ASE's FixCom projects the forces (and
    # Langevin's fixcm is deprecated); an isolated molecule's energy does not
    # depend on where it drifts, and the labels must be the raw teacher forces.
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

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
            if labelled:
                # Cached by the calculator: the result of the last step, at these positions.
                energy = float(atoms.get_potential_energy())
                forces = np.array(atoms.get_forces(apply_constraint=False), dtype=np.float64)
                snapshots.append(Snapshot(atoms.get_positions().copy(), energy, forces, step))
            else:
                snapshots.append(Snapshot(atoms.get_positions().copy(), None, None, step))
    except TeacherError as exc:
        exc.snapshots = snapshots
        raise
    return snapshots
