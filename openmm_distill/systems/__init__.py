"""Molecules and boxes: the catalog (``systems/molecules.csv`` with its declared
train/validation/test split), ready structures (``systems/structures/``),
structure readers that never lose hydrogens, and periodic water boxes.

Lengths are in Angstrom throughout.
"""
from openmm_distill.systems.catalog import (
    SPLITS,
    MoleculeEntry,
    get_molecule,
    load_catalog,
    molecules,
    structure_path,
    systems_dir,
)
from openmm_distill.systems.io import (
    HydrogenWarning,
    Structure,
    embed_smiles,
    guess_bonds,
    read_structure,
    structure_from_rdkit,
    structure_from_smiles,
    structure_to_openmm_topology,
    write_pdb,
)
from openmm_distill.systems.water import water_box, water_density_g_per_cm3

__all__ = [
    "SPLITS",
    "HydrogenWarning",
    "MoleculeEntry",
    "Structure",
    "embed_smiles",
    "get_molecule",
    "guess_bonds",
    "load_catalog",
    "molecules",
    "read_structure",
    "structure_from_rdkit",
    "structure_from_smiles",
    "structure_path",
    "structure_to_openmm_topology",
    "systems_dir",
    "water_box",
    "water_density_g_per_cm3",
    "write_pdb",
]
