"""Read molecular structures with every hydrogen explicit.

Lengths are in Angstrom throughout this module (OpenMM quantities are
converted at the boundary). The hydrogen rule: a structure never silently
loses hydrogens. SDF/MOL files read with implicit hydrogens get them back
(with coordinates) and a :class:`HydrogenWarning`; PDB files without any
hydrogen raise the same warning, because their bond orders are unknown and
hydrogens cannot be added reliably.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdDetermineBonds
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from openmm_distill.elements import atomic_numbers_of
from openmm_distill.elements import symbol as element_symbol
from openmm_distill.errors import InvalidPositionsError, MissingFileError, StructureError
from openmm_distill.units import ANGSTROM_TO_NM

import openmm
import openmm.app as app
import openmm.unit as unit

PathLike = Union[str, "os.PathLike[str]"]
SUPPORTED_SUFFIXES = (".sdf", ".mol", ".pdb", ".xyz")


class HydrogenWarning(UserWarning):
    """Hydrogens were missing from a structure file (and were added, or could not be)."""


@dataclass
class Structure:
    """Atoms, positions and (optionally) a periodic box and topology.

    Attributes
    ----------
    atomic_numbers : numpy.ndarray, int64, shape (N,)
    positions : numpy.ndarray, float64, shape (N, 3)
        Cartesian coordinates in Angstrom.
    box : numpy.ndarray, float64, shape (3, 3), or None
        Periodic box vectors as rows, in Angstrom; ``None`` if not periodic.
    name : str
    topology : openmm.app.Topology or None
        Residues, atom names and bonds, when known.
    bonds : numpy.ndarray, int64, shape (M, 2), or None
        Atom index pairs of covalent bonds; ``None`` if unknown.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    box: Optional[np.ndarray] = None
    name: str = ""
    topology: Optional[app.Topology] = None
    bonds: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.atomic_numbers = np.asarray(self.atomic_numbers, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.positions) != len(self.atomic_numbers):
            raise InvalidPositionsError(f"{len(self.atomic_numbers)} atomic numbers but {len(self.positions)} positions")
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(3, 3)
        if self.bonds is not None:
            self.bonds = np.asarray(self.bonds, dtype=np.int64).reshape(-1, 2)

    @property
    def n_atoms(self) -> int:
        return int(len(self.atomic_numbers))


def read_structure(path: PathLike) -> Structure:
    """Read a structure from an SDF, MOL, PDB or XYZ file.

    Parameters
    ----------
    path : path-like
        ``.sdf`` / ``.mol`` (first record; read with RDKit, explicit hydrogens
        kept, implicit ones added with coordinates and a warning), ``.pdb``
        (OpenMM; box from CRYST1) or ``.xyz`` (ASE; extended XYZ lattice read
        as the box; bonds guessed from distances).

    Returns
    -------
    Structure
        Positions and box in Angstrom.

    Warns
    -----
    HydrogenWarning
        When hydrogens were added to an SDF/MOL file, or a PDB file has none.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise MissingFileError(f"structure file {str(path)!r} does not exist")
    if suffix in (".sdf", ".mol"):
        return _read_rdkit_file(path)
    if suffix == ".pdb":
        return _read_pdb(path)
    if suffix == ".xyz":
        return _read_xyz(path)
    raise StructureError(f"unsupported structure format {suffix!r} ({path}); supported: {', '.join(SUPPORTED_SUFFIXES)}")


def _read_rdkit_file(path: Path) -> Structure:
    if path.suffix.lower() == ".sdf":
        supplier = Chem.SDMolSupplier(str(path), removeHs=False)
        mol = supplier[0] if len(supplier) else None
    else:
        mol = Chem.MolFromMolFile(str(path), removeHs=False)
    if mol is None:
        raise StructureError(f"RDKit could not read a molecule from {path}")
    if mol.GetNumConformers() == 0:
        raise StructureError(f"{path} has no coordinates")
    # The lesson of the original project: SDF files without hydrogens were read
    # as if they had none, and the students were trained on broken chemistry.
    n_missing = sum(atom.GetNumImplicitHs() for atom in mol.GetAtoms())
    if n_missing:
        mol = Chem.AddHs(mol, addCoords=True)
        warnings.warn(f"{path}: {n_missing} implicit hydrogens were added with generated coordinates; "
                      "write structures with explicit hydrogens to avoid this", HydrogenWarning, stacklevel=3)
    if not mol.GetConformer().Is3D():
        warnings.warn(f"{path}: coordinates are 2D (all z = 0)", UserWarning, stacklevel=3)
    name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    return structure_from_rdkit(mol, name=name or path.stem)


def _read_pdb(path: Path) -> Structure:
    pdb = app.PDBFile(str(path))
    topology = pdb.topology
    try:
        numbers = atomic_numbers_of(topology)
    except StructureError as exc:
        raise StructureError(f"{path}: {exc}") from None
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    vectors = topology.getPeriodicBoxVectors()
    box = None if vectors is None else np.array([v.value_in_unit(unit.angstrom) for v in vectors])
    bonds = np.array([[b.atom1.index, b.atom2.index] for b in topology.bonds()], dtype=np.int64).reshape(-1, 2)
    if topology.getNumResidues() and 1 not in numbers:
        warnings.warn(f"{path}: the PDB file has NO hydrogen atoms in {topology.getNumResidues()} residues. "
                      "Students need every hydrogen; add them (e.g. openmm.app.Modeller.addHydrogens, "
                      "or an SDF file with explicit hydrogens) before using this structure",
                      HydrogenWarning, stacklevel=3)
    return Structure(np.array(numbers), np.asarray(positions), box, path.stem, topology, bonds)


def _read_xyz(path: Path) -> Structure:
    import ase.io  # lazy: only needed for XYZ files

    atoms = ase.io.read(str(path))
    box = np.array(atoms.cell[:]) if atoms.pbc.any() else None
    numbers = atoms.get_atomic_numbers()
    positions = atoms.get_positions()
    bonds = guess_bonds(numbers, positions)
    structure = Structure(numbers, positions, box, path.stem, None, bonds)
    structure.topology = structure_to_openmm_topology(structure)
    return structure


def guess_bonds(atomic_numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Covalent bonds guessed from interatomic distances (RDKit's connectivity rule).

    Parameters
    ----------
    atomic_numbers : numpy.ndarray, int, shape (N,)
    positions : numpy.ndarray, float, shape (N, 3)
        Angstrom. Periodic images are not considered.

    Returns
    -------
    numpy.ndarray, int64, shape (M, 2)
    """
    block = f"{len(atomic_numbers)}\n\n" + "".join(
        f"{element_symbol(z)} {x:.6f} {y:.6f} {w:.6f}\n" for z, (x, y, w) in zip(atomic_numbers, positions))
    mol = Chem.MolFromXYZBlock(block)
    rdDetermineBonds.DetermineConnectivity(mol, useHueckel=False)
    return np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()], dtype=np.int64).reshape(-1, 2)


def structure_from_rdkit(mol: Chem.Mol, name: str = "", conf_id: int = -1) -> Structure:
    """A :class:`Structure` (with topology and bonds) from an RDKit molecule with a conformer.

    The molecule is used as given: call ``Chem.AddHs(mol, addCoords=True)``
    first if its hydrogens are implicit.
    """
    conformer = mol.GetConformer(conf_id)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    positions = np.array(conformer.GetPositions(), dtype=np.float64)
    bonds = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()], dtype=np.int64)
    structure = Structure(numbers, positions, None, name, None, bonds.reshape(-1, 2))
    structure.topology = structure_to_openmm_topology(structure)
    return structure


def structure_to_openmm_topology(structure: Structure, residue_name: str = "MOL") -> app.Topology:
    """Build an OpenMM topology: one chain, one residue per molecule, bonds if known.

    Molecules are the connected components of ``structure.bonds``. OpenMM
    needs the atoms of a residue to be contiguous, so a molecule whose atoms
    are interleaved with another's is split into contiguous runs. Without
    bonds, all atoms form one residue. Atom names are element + index within
    the residue (``C1``, ``H3``, ...). The periodic box, if any, is copied.
    """
    n = structure.n_atoms
    bonds = structure.bonds if structure.bonds is not None else np.zeros((0, 2), dtype=np.int64)
    if structure.bonds is not None and n:
        graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
        _, component = connected_components(graph, directed=False)
    else:
        component = np.zeros(n, dtype=np.int64)

    topology = app.Topology()
    chain = topology.addChain()
    atoms: List[app.topology.Atom] = []
    residue, counts = None, {}
    for i, z in enumerate(structure.atomic_numbers):
        if residue is None or component[i] != component[i - 1]:
            residue, counts = topology.addResidue(residue_name, chain), {}
        sym = element_symbol(int(z))
        counts[sym] = counts.get(sym, 0) + 1
        atoms.append(topology.addAtom(f"{sym}{counts[sym]}", app.Element.getByAtomicNumber(int(z)), residue))
    for i, j in bonds:
        topology.addBond(atoms[int(i)], atoms[int(j)])
    if structure.box is not None:
        topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in structure.box * ANGSTROM_TO_NM] * unit.nanometer)
    return topology


def write_pdb(structure: Structure, path: PathLike, remark: Optional[str] = None) -> Path:
    """Write a structure as PDB (CONECT records for non-standard residues, CRYST1 if periodic).

    OpenMM's dated ``REMARK`` line is dropped (so regenerated files diff
    cleanly) and replaced by ``remark`` if given. A topology is built with
    :func:`structure_to_openmm_topology` if the structure has none.
    """
    path = Path(path)
    topology = structure.topology if structure.topology is not None else structure_to_openmm_topology(structure)
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, structure.positions * ANGSTROM_TO_NM * unit.nanometer, handle)
    lines = [line for line in path.read_text().splitlines(keepends=True) if not line.startswith("REMARK")]
    header = f"REMARK   1 {remark}\n" if remark else ""
    path.write_text(header + "".join(lines))
    return path


def embed_smiles(smiles: str, seed: int = 0, optimize: bool = True) -> Chem.Mol:
    """An RDKit molecule with explicit hydrogens and one 3D conformer.

    Parameters
    ----------
    smiles : str
    seed : int
        Random seed of the ETKDG (v3) embedding; the same seed and RDKit
        version give the same coordinates.
    optimize : bool
        Relax the conformer with MMFF94 (UFF if MMFF lacks parameters).

    Raises
    ------
    StructureError
        If the SMILES does not parse or cannot be embedded in 3D.
    """
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise StructureError(f"RDKit cannot parse SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        # Strained ring systems sometimes need random starting coordinates.
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise StructureError(f"RDKit could not embed {smiles!r} in 3D")
    if optimize:
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
        else:
            AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    return mol


def structure_from_smiles(smiles: str, seed: int = 0, name: Optional[str] = None) -> Structure:
    """A 3D structure with explicit hydrogens from a SMILES (ETKDG + MMFF94).

    Parameters
    ----------
    smiles : str
    seed : int
        Embedding seed (see :func:`embed_smiles`).
    name : str, optional
        Defaults to the SMILES.

    Returns
    -------
    Structure
        Positions in Angstrom, bonds and an OpenMM topology; no box.
    """
    return structure_from_rdkit(embed_smiles(smiles, seed=seed), name=name or smiles)
