"""The molecule catalog: ``systems/molecules.csv`` and ``systems/structures/``.

The CSV declares every molecule used for data generation and validation, with
its category and its split (train / validation / test, by molecule). It is
read, never written, here; ``systems/make_split.py`` regenerates the split.
"""
from __future__ import annotations

import csv
import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

SPLITS: Tuple[str, ...] = ("train", "validation", "test")
ENV_VAR = "OPENMM_DISTILL_SYSTEMS"
CATALOG_FILE = "molecules.csv"
STRUCTURES_DIR = "structures"
# Order in which structure_path() looks for a file when no suffix is given.
STRUCTURE_SUFFIXES: Tuple[str, ...] = (".sdf", ".pdb", ".mol", ".xyz")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MoleculeEntry:
    """One row of the catalog.

    Attributes
    ----------
    name : str
        Unique snake_case name.
    smiles : str
        SMILES of the neutral, closed-shell molecule (hydrogens implicit).
    category : str
        Chemical family, e.g. ``drug``, ``amino_acid``, ``solvent``.
    split : str
        ``train``, ``validation`` or ``test``.
    """

    name: str
    smiles: str
    category: str
    split: str


def systems_dir() -> Path:
    """The ``systems/`` folder: ``$OPENMM_DISTILL_SYSTEMS`` if set, else the repository's.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist (e.g. the package was installed without
        the repository checkout and the environment variable is not set).
    """
    override = os.environ.get(ENV_VAR)
    # The package is installed editable, so the repository root is two levels up.
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "systems"
    if not path.is_dir():
        origin = f"${ENV_VAR}" if override else "the repository checkout"
        raise FileNotFoundError(
            f"systems folder {path} (from {origin}) does not exist; set {ENV_VAR} "
            f"to a folder holding {CATALOG_FILE} and {STRUCTURES_DIR}/"
        )
    return path


def _check_split(split: Optional[str]) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


@functools.lru_cache(maxsize=8)
def _read_catalog(path: Path, mtime_ns: int) -> Tuple[MoleculeEntry, ...]:
    # mtime_ns is part of the cache key so an edited CSV is read again.
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "smiles", "category", "split"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        entries = []
        for line, row in enumerate(reader, start=2):
            entry = MoleculeEntry(row["name"].strip(), row["smiles"].strip(),
                                  row["category"].strip(), row["split"].strip())
            if entry.split not in SPLITS:
                raise ValueError(f"{path}:{line}: molecule {entry.name!r} has split "
                                 f"{entry.split!r}; allowed: {', '.join(SPLITS)}")
            entries.append(entry)
    return tuple(entries)


def load_catalog(path: Optional[PathLike] = None) -> List[MoleculeEntry]:
    """Read the molecule catalog.

    Parameters
    ----------
    path : path-like, optional
        A catalog CSV with columns ``name,smiles,category,split``. Default:
        ``molecules.csv`` in :func:`systems_dir`.

    Returns
    -------
    list of MoleculeEntry
        In file order.
    """
    csv_path = Path(path) if path is not None else systems_dir() / CATALOG_FILE
    if not csv_path.is_file():
        raise FileNotFoundError(f"molecule catalog {csv_path} does not exist")
    csv_path = csv_path.resolve()
    return list(_read_catalog(csv_path, csv_path.stat().st_mtime_ns))


def molecules(split: Optional[str] = None, path: Optional[PathLike] = None) -> List[MoleculeEntry]:
    """Catalog entries, optionally only those of one split.

    Parameters
    ----------
    split : {"train", "validation", "test"}, optional
        Keep only this split; ``None`` keeps all molecules.
    path : path-like, optional
        Catalog CSV (see :func:`load_catalog`).

    Raises
    ------
    ValueError
        If ``split`` is not one of the allowed names.
    """
    _check_split(split)
    entries = load_catalog(path)
    return entries if split is None else [e for e in entries if e.split == split]


def get_molecule(name: str, path: Optional[PathLike] = None) -> MoleculeEntry:
    """The catalog entry called ``name``.

    Raises
    ------
    KeyError
        If no molecule has that name; the message suggests close names.
    """
    entries = load_catalog(path)
    for entry in entries:
        if entry.name == name:
            return entry
    close = difflib.get_close_matches(name, [e.name for e in entries], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"no molecule named {name!r} in the catalog{hint}")


def structure_path(name: str, suffixes: Sequence[str] = STRUCTURE_SUFFIXES) -> Path:
    """Path of a ready-made structure in ``systems/structures/``.

    Parameters
    ----------
    name : str
        A file name (``"aspirin.pdb"``) or a stem (``"aspirin"``); for a stem,
        the first existing file among ``suffixes`` is returned (SDF first,
        because it carries bond orders).
    suffixes : sequence of str
        Suffixes tried, in order, when ``name`` has none.

    Raises
    ------
    FileNotFoundError
        If no such file exists; the message lists the available structures.
    """
    folder = systems_dir() / STRUCTURES_DIR
    candidates = [folder / name] if Path(name).suffix else [folder / f"{name}{s}" for s in suffixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    raise FileNotFoundError(
        f"no structure {name!r} in {folder} (tried {', '.join(c.name for c in candidates)}); "
        f"available: {', '.join(available) or 'none'}"
    )
