"""One resolver for every way a user names a molecule on the command line or in a config.

A single molecule argument (:func:`resolve_system`) is, in this order:

1. ``water:N`` - a generated periodic box of N waters;
2. a structure file (SDF, MOL, PDB, XYZ with explicit hydrogens); something that
   looks like a path (a structure-file suffix, or a slash that is not SMILES) but does
   not exist is reported as a missing file;
3. the name of a ready structure in ``structures/`` (the PDB first: it carries residue
   and atom names for amber14 and bonds);
4. a catalog name (3D structure from its SMILES);
5. a SMILES string.

Anything else gets the catalog's "unknown molecule 'asprin'; did you mean aspirin?".
Where a list is expected (:func:`molecule_list`, for labelling and exploration), CSV
(``name,smiles``) and ``.smi`` files are read as lists, and multi-record SDF files give
one molecule per record. Positions are in nm on :class:`MolecularSystem` (Angstrom
through ``positions_angstrom``); lists carry SMILES only.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill.elements import formula, symbol
from openmm_distill.errors import ConfigError, MissingFileError, StructureError, UnknownNameError
from openmm_distill.systems import catalog
from openmm_distill.systems.io import (
    SUPPORTED_SUFFIXES,
    Structure,
    guess_bonds,
    read_structure,
    structure_from_smiles,
    structure_to_openmm_topology,
)
from openmm_distill.units import ANGSTROM_TO_NM, NM_TO_ANGSTROM

from openmm import app, unit

# Systems the quick protocols run on when none are given: every ready-made
# structure of a small molecule in structures/ (all in the test split).
DEFAULT_SYSTEMS: List[str] = ["ethanol", "aspirin", "alanine_dipeptide"]
# Files read as lists of molecules: CSV with columns name,smiles; 'SMILES [name]' per line.
LIST_SUFFIXES = (".csv", ".smi", ".txt")
# A ready structure of a name: PDB first (residue and atom names, bonds), then the others.
READY_SUFFIXES = (".pdb", ".sdf", ".mol", ".xyz")
_WATER = re.compile(r"water(?:_box)?:(\d+)")


@dataclass
class MolecularSystem:
    """One system to run on.

    Attributes
    ----------
    name : str
        Short name used in tables and file names.
    topology : openmm.app.Topology
        Atoms, residues, bonds and (for periodic systems) the box.
    positions_nm : numpy.ndarray, float64, shape (N, 3)
        Starting positions, nm.
    atomic_numbers : numpy.ndarray, int64, shape (N,)
    box_nm : numpy.ndarray, float64, shape (3, 3), or None
        Periodic box vectors as rows, nm; ``None`` for an isolated molecule.
    source : str
        Where it came from (file path, SMILES, generator).
    smiles : str
        SMILES when known (catalog molecules, SMILES input), else ``""``.
    """

    name: str
    topology: app.Topology
    positions_nm: np.ndarray
    atomic_numbers: np.ndarray
    box_nm: Optional[np.ndarray] = None
    source: str = ""
    smiles: str = ""

    @classmethod
    def from_structure(cls, structure: Structure, name: str, source: str, smiles: str = "") -> "MolecularSystem":
        """From a :class:`~openmm_distill.systems.io.Structure` (Angstrom) to nm."""
        box = None if structure.box is None else structure.box * ANGSTROM_TO_NM
        topology = structure.topology or structure_to_openmm_topology(structure)
        return cls(name, topology, structure.positions * ANGSTROM_TO_NM, structure.atomic_numbers, box,
                   source=source, smiles=smiles)

    @property
    def n_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    @property
    def periodic(self) -> bool:
        return self.box_nm is not None

    @property
    def positions(self):
        """Positions as an OpenMM Quantity (nm)."""
        return self.positions_nm * unit.nanometer

    @property
    def positions_angstrom(self) -> np.ndarray:
        return self.positions_nm * NM_TO_ANGSTROM

    @property
    def box_angstrom(self) -> Optional[np.ndarray]:
        return None if self.box_nm is None else self.box_nm * NM_TO_ANGSTROM

    @property
    def file_stem(self) -> str:
        return safe_name(self.name)

    def bonds(self) -> np.ndarray:
        """Covalent bonds, shape (M, 2): from the topology, else guessed from the start geometry.

        Guessing uses covalent radii (RDKit's connectivity rule, via
        :func:`openmm_distill.systems.guess_bonds`) on the starting positions.
        """
        pairs = [(b.atom1.index, b.atom2.index) for b in self.topology.bonds()]
        if pairs:
            return np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return np.asarray(guess_bonds(self.atomic_numbers, self.positions_angstrom), dtype=np.int64).reshape(-1, 2)

    def describe(self) -> Dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {"name": self.name, "n_atoms": self.n_atoms, "formula": formula(self.atomic_numbers),
                "periodic": self.periodic, "source": self.source, "smiles": self.smiles,
                "box_nm": None if self.box_nm is None else np.round(self.box_nm, 6).tolist()}


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (SMILES and paths become underscores)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "system"
    return cleaned[:60]


def parses_as_smiles(text: str) -> bool:
    """True if RDKit reads ``text`` as a SMILES (quietly: no parse errors on stderr)."""
    from rdkit import Chem, rdBase

    if not text or any(c.isspace() for c in text):
        return False
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(text) is not None


def looks_like_path(text: str) -> bool:
    """A file suffix (``.pdb``, ``.sdf``, ``.csv``, ...) or a slash that does not belong to a SMILES."""
    if Path(text).suffix.lower() in SUPPORTED_SUFFIXES + LIST_SUFFIXES:
        return True
    return ("/" in text or os.sep in text) and not parses_as_smiles(text)


def resolve_system(spec: Union[str, "os.PathLike[str]", MolecularSystem]) -> MolecularSystem:
    """Turn a molecule argument into a :class:`MolecularSystem` (see the module docstring for the order).

    Raises
    ------
    MissingFileError
        ``spec`` looks like a file path but the file does not exist.
    UnknownNameError
        ``spec`` is neither a catalog name, a ready structure, a file nor a SMILES;
        the message suggests close catalog names.
    StructureError
        A file or SMILES that cannot be read or embedded in 3D.
    """
    if isinstance(spec, MolecularSystem):
        return spec
    text = str(spec).strip()
    match = _WATER.fullmatch(text)
    if match:
        from openmm_distill.systems.water import water_box

        n = int(match.group(1))
        return MolecularSystem.from_structure(water_box(n_waters=n), f"water_{n}",
                                              source=f"systems.water_box(n_waters={n})")
    path = Path(text)
    if path.suffix and not path.is_file() and path.name == text:
        path = _ready_structure(text) or path  # "aspirin.pdb": a file in structures/
    if path.is_file():
        return MolecularSystem.from_structure(read_structure(path), safe_name(path.stem), source=str(path))
    if looks_like_path(text):
        raise MissingFileError(f"structure file {text!r} does not exist")
    entries = catalog.load_catalog()
    entry = next((e for e in entries if e.name == text), None)
    ready = _ready_structure(text)
    if ready is not None:
        return MolecularSystem.from_structure(read_structure(ready), text, source=str(ready),
                                              smiles=entry.smiles if entry else "")
    if entry is not None:
        return MolecularSystem.from_structure(structure_from_smiles(entry.smiles, name=text), text, source=text,
                                              smiles=entry.smiles)
    if parses_as_smiles(text):
        return MolecularSystem.from_structure(structure_from_smiles(text), text, source=text, smiles=text)
    raise UnknownNameError(catalog.unknown_molecule_message(text, entries, also="a structure file"))


def _ready_structure(name: str) -> Optional[Path]:
    """``structures/<name>.pdb`` (or .sdf, .mol, .xyz; or ``structures/<name>`` with its suffix) if it exists."""
    try:
        return catalog.structure_path(name, suffixes=READY_SUFFIXES)
    except FileNotFoundError:
        return None


def split_list(value: Union[None, str, Sequence[Any]]) -> List[Any]:
    """``"a,b , c"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]``; ``None`` -> ``[]``; systems pass through."""
    if value is None:
        return []
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    out: List[Any] = []
    for item in items:
        if isinstance(item, MolecularSystem):
            out.append(item)
        else:
            out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def system_specs(systems: Union[None, str, Sequence[Any]] = None, split: Optional[str] = None,
                 max_systems: Optional[int] = None, default: Sequence[str] = DEFAULT_SYSTEMS) -> List[Any]:
    """The list of system arguments a protocol should run on.

    Parameters
    ----------
    systems : comma-separated string or sequence, optional
        Explicit systems (see :func:`resolve_system`).
    split : {"train", "validation", "test"}, optional
        All catalog molecules of this split (appended after ``systems``).
    max_systems : int, optional
        Keep only the first ``max_systems``.
    default : sequence of str
        Used when neither ``systems`` nor ``split`` is given.
    """
    specs = split_list(systems)
    if split:
        specs += [e.name for e in catalog.molecules(split)]
    if not specs:
        specs = list(default)
    if max_systems is not None:
        specs = specs[: max(0, int(max_systems))]
    return specs


# -- lists of molecules (name, SMILES) for labelling ------------------------------------------


def read_smiles_file(path: Union[str, "os.PathLike[str]"]) -> List[Tuple[str, str]]:
    """``(name, smiles)`` pairs from a CSV (column ``smiles``, ideally ``name``) or a SMILES file
    (``SMILES [name]`` per line, ``#`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"input file {str(path)!r} does not exist")
    pairs: List[Tuple[str, str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {f.lower().strip(): f for f in (reader.fieldnames or [])}
            if "smiles" not in fields:
                raise ConfigError(f"{path}: a CSV input needs a 'smiles' column (and ideally 'name'); "
                                  f"found {reader.fieldnames}")
            for k, row in enumerate(reader):
                smiles = row[fields["smiles"]].strip()
                name = row[fields["name"]].strip() if "name" in fields else f"mol{k}"
                if smiles:
                    pairs.append((name, smiles))
        return pairs
    with open(path) as fh:
        for k, line in enumerate(fh):
            # A comment starts a line or follows a space: "#" inside a SMILES is a triple bond (CC#N).
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if line:
                parts = line.split()
                pairs.append((parts[1] if len(parts) > 1 else f"{path.stem}_{k}", parts[0]))
    return pairs


def smiles_of_structure_file(path: Union[str, "os.PathLike[str]"]) -> List[Tuple[str, str]]:
    """``(name, smiles)`` of every molecule in a structure file (each SDF record; one for MOL/PDB/XYZ).

    SDF/MOL keep their bond orders; for PDB and XYZ, bonds and bond orders are
    determined from the coordinates (neutral molecule), so write SDF where you can.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".sdf":
        mols = [m for m in Chem.SDMolSupplier(str(path), removeHs=False)]
        if not mols or any(m is None for m in mols):
            raise StructureError(f"RDKit could not read every record of {path}")
    elif suffix == ".mol":
        mols = [Chem.MolFromMolFile(str(path), removeHs=False)]
        if mols[0] is None:
            raise StructureError(f"RDKit could not read a molecule from {path}")
    else:
        structure = read_structure(path)
        xyz = f"{structure.n_atoms}\n\n" + "\n".join(
            f"{symbol(int(z))} {x:.6f} {y:.6f} {w:.6f}" for z, (x, y, w) in zip(structure.atomic_numbers,
                                                                                structure.positions))
        mol = Chem.MolFromXYZBlock(xyz)
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=0)
        except ValueError as exc:
            raise StructureError(f"{path}: cannot determine bond orders ({exc}); give an SDF file") from None
        mols = [mol]
    pairs = []
    for k, mol in enumerate(mols):
        name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        pairs.append((name or (path.stem if len(mols) == 1 else f"{path.stem}_{k}"),
                      Chem.MolToSmiles(Chem.RemoveHs(mol))))
    return pairs


def molecule_list(items: Sequence[Union[str, "os.PathLike[str]"]]) -> List[Tuple[str, str]]:
    """``(name, smiles)`` for each item: a list file (CSV, .smi), a structure file, a catalog name or a SMILES.

    Raises
    ------
    MissingFileError, UnknownNameError, StructureError, ConfigError
        As :func:`resolve_system`, and for a CSV without a ``smiles`` column.
    """
    pairs: List[Tuple[str, str]] = []
    entries = None
    for item in items:
        text = str(item).strip()
        path = Path(text)
        suffix = path.suffix.lower()
        if path.is_file():
            pairs.extend(read_smiles_file(path) if suffix in LIST_SUFFIXES else smiles_of_structure_file(path))
            continue
        if looks_like_path(text):
            raise MissingFileError(f"file {text!r} does not exist")
        entries = entries if entries is not None else catalog.load_catalog()
        entry = next((e for e in entries if e.name == text), None)
        if entry is not None:
            pairs.append((entry.name, entry.smiles))
        elif parses_as_smiles(text):
            pairs.append((safe_name(text), text))
        else:
            raise UnknownNameError(catalog.unknown_molecule_message(text, entries, also="a file"))
    return pairs
