"""Molecules and boxes: the catalog (``data/molecules.csv`` with its declared
train/validation/test split), ready structures (``data/structures/``), structure
readers that never lose hydrogens, periodic water boxes, and the one resolver of
molecule arguments (:mod:`.resolve`: catalog name, structure file or SMILES).

Lengths are in Angstrom, except on :class:`MolecularSystem` (nm, ready for OpenMM).
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
from openmm_distill.systems.resolve import MolecularSystem, molecule_list, resolve_system, system_specs
from openmm_distill.systems.water import water_box, water_density_g_per_cm3

__all__ = [
    "SPLITS",
    "HydrogenWarning",
    "MolecularSystem",
    "MoleculeEntry",
    "Structure",
    "embed_smiles",
    "get_molecule",
    "guess_bonds",
    "load_catalog",
    "molecule_list",
    "molecules",
    "read_structure",
    "resolve_system",
    "structure_from_rdkit",
    "structure_from_smiles",
    "structure_path",
    "structure_to_openmm_topology",
    "system_specs",
    "systems_dir",
    "water_box",
    "water_density_g_per_cm3",
    "write_pdb",
]
