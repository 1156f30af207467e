"""Starting geometries from SMILES: RDKit ETKDG conformers with explicit hydrogens.

Hydrogens are always added explicitly before embedding (``Chem.AddHs``): a
model trained on heavy atoms only is useless, and the original project lost
every hydrogen once by reading files without them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from openmm_distill.data.finite_differences import central_difference_hessian
from openmm_distill.errors import ConfigError
from openmm_distill.units import KCAL_PER_MOL_TO_EV


@dataclass
class Conformers:
    """Conformers of one molecule.

    Attributes
    ----------
    mol : rdkit.Chem.Mol
        The molecule with explicit hydrogens and its conformers.
    atomic_numbers : numpy.ndarray of int64, shape (N,)
    positions : list of numpy.ndarray, each (N, 3), Angstrom
    conformer_ids : list of int
        RDKit conformer ids, parallel to ``positions``.
    charge : int
        Formal total charge from the SMILES.
    optimizer : str
        ``"mmff"``, ``"uff"`` or ``"none"``: how the conformers were relaxed.
    """

    mol: object
    atomic_numbers: np.ndarray
    positions: List[np.ndarray]
    conformer_ids: List[int]
    charge: int
    optimizer: str


def molecule_from_smiles(smiles: str):
    """Parse a SMILES string and add explicit hydrogens.

    Raises
    ------
    ConfigError
        If RDKit cannot parse the SMILES.
    """
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ConfigError(f"RDKit could not parse SMILES {smiles!r}")
    return Chem.AddHs(mol)


def embed_conformers(
    smiles: str,
    n_conformers: int,
    seed: int,
    *,
    optimize: bool = True,
    prune_rms: float = 0.1,
    max_optimize_iterations: int = 500,
) -> Conformers:
    """Generate conformers with ETKDGv3 (explicit hydrogens, fixed seed).

    Parameters
    ----------
    smiles : str
    n_conformers : int
        Requested number; fewer may be returned when RMSD pruning
        (``prune_rms``, Angstrom, heavy atoms) removes near-identical ones.
    seed : int
        RDKit random seed; the same seed gives the same conformers.
    optimize : bool
        Relax each conformer with MMFF94 (UFF when MMFF has no parameters).
        Gives geometries close to a minimum, a sane starting point for MD and
        normal modes.
    prune_rms : float
        RMSD threshold for pruning, Angstrom.

    Raises
    ------
    ConfigError
        If the SMILES is invalid or no conformer can be embedded.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = molecule_from_smiles(smiles)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) % (2**31 - 1)
    params.pruneRmsThresh = float(prune_rms)
    params.numThreads = 1
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not ids:
        # Strained or unusual molecules: random starting coordinates usually work.
        params.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not ids:
        raise ConfigError(f"RDKit ETKDG could not embed a conformer for {smiles!r}")
    optimizer = "none"
    if optimize:
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=max_optimize_iterations)
            optimizer = "mmff"
        elif AllChem.UFFHasAllMoleculeParams(mol):
            AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=max_optimize_iterations)
            optimizer = "uff"
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    positions = [np.array(mol.GetConformer(i).GetPositions(), dtype=np.float64) for i in ids]
    return Conformers(
        mol=mol,
        atomic_numbers=numbers,
        positions=positions,
        conformer_ids=ids,
        charge=int(Chem.GetFormalCharge(mol)),
        optimizer=optimizer,
    )


def mmff_hessian(mol, conformer_id: int, step: float = 1e-3) -> Optional[np.ndarray]:
    """Cartesian Hessian of MMFF94 by central differences of its analytic gradient.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        Molecule with explicit hydrogens and conformers.
    conformer_id : int
    step : float
        Finite-difference step, Angstrom.

    Returns
    -------
    numpy.ndarray of float64, shape (3N, 3N), eV/Angstrom^2, or None
        ``None`` when MMFF has no parameters for the molecule.
    """
    from rdkit.Chem import AllChem

    if not AllChem.MMFFHasAllMoleculeParams(mol):
        return None
    props = AllChem.MMFFGetMoleculeProperties(mol)
    ff = AllChem.MMFFGetMoleculeForceField(mol, props, confId=int(conformer_id))
    x0 = np.array(ff.Positions(), dtype=np.float64)

    def gradient(x: np.ndarray) -> np.ndarray:
        # RDKit quirk: ForceField.CalcGrad(pos) reuses state from the previous
        # CalcEnergy call; without CalcEnergy(pos) first it returns a gradient
        # that is neither at pos nor at the stored positions.
        ff.CalcEnergy(x.tolist())
        return np.array(ff.CalcGrad(x.tolist()))

    return central_difference_hessian(gradient, x0, step) * KCAL_PER_MOL_TO_EV
