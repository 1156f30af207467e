"""Turn a user's molecule argument (name in systems/, structure file, or SMILES) into OpenMM input."""
from __future__ import annotations

from pathlib import Path


def load_topology_and_positions(molecule: str):
    """(openmm Topology, positions Quantity) for a systems/ name, a structure file or a SMILES string."""
    from openmm import unit

    from openmm_distill import systems as sysmod

    path = Path(molecule)
    if not path.is_file():
        try:
            path = Path(sysmod.structure_path(molecule))
        except Exception:
            path = None
    if path is not None and path.is_file():
        structure = sysmod.read_structure(path)
    else:
        try:
            smiles = sysmod.get_molecule(molecule).smiles
        except Exception:
            smiles = molecule
        structure = sysmod.structure_from_smiles(smiles)
    topology = structure.topology or sysmod.structure_to_openmm_topology(structure)
    return topology, structure.positions * 0.1 * unit.nanometer
