"""The molecule catalog: ``molecules.csv`` and ``structures/`` in ``openmm_distill/systems/data``.

The CSV declares every molecule used for data generation and validation, with
its category and its split (train / validation / test, by molecule). It is
read, never written, here; the repository's ``systems/make_split.py`` regenerates the split.
"""
from __future__ import annotations

import csv
import difflib
import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from openmm_distill.errors import ConfigError, MissingFileError, UnknownNameError

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
    """The folder holding ``molecules.csv`` and ``structures/``.

    ``$OPENMM_DISTILL_SYSTEMS`` if set, else the copy shipped inside the package
    (``openmm_distill/systems/data``, read with :mod:`importlib.resources`, so a
    wheel install has it too).

    Raises
    ------
    MissingFileError
        If ``$OPENMM_DISTILL_SYSTEMS`` names a folder that does not exist.
    """
    override = os.environ.get(ENV_VAR)
    if not override:
        return Path(str(resources.files(__package__) / "data"))
    path = Path(override)
    if not path.is_dir():
        raise MissingFileError(f"systems folder {path} (from ${ENV_VAR}) does not exist; set {ENV_VAR} "
                               f"to a folder holding {CATALOG_FILE} and {STRUCTURES_DIR}/, or unset it")
    return path


def _check_split(split: Optional[str]) -> None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


@functools.lru_cache(maxsize=8)
def _read_catalog(path: Path, mtime_ns: int) -> Tuple[MoleculeEntry, ...]:
    # mtime_ns is part of the cache key so an edited CSV is read again.
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "smiles", "category", "split"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path}: missing column(s) {sorted(missing)}")
        entries = []
        for line, row in enumerate(reader, start=2):
            entry = MoleculeEntry(row["name"].strip(), row["smiles"].strip(),
                                  row["category"].strip(), row["split"].strip())
            if entry.split not in SPLITS:
                raise ConfigError(f"{path}:{line}: molecule {entry.name!r} has split "
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
        raise MissingFileError(f"molecule catalog {csv_path} does not exist")
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
    ConfigError
        If ``split`` is not one of the allowed names (also a ValueError).
    """
    _check_split(split)
    entries = load_catalog(path)
    return entries if split is None else [e for e in entries if e.split == split]


def get_molecule(name: str, path: Optional[PathLike] = None) -> MoleculeEntry:
    """The catalog entry called ``name``.

    Raises
    ------
    UnknownNameError
        If no molecule has that name (also a KeyError); the message suggests close names.
    """
    entries = load_catalog(path)
    for entry in entries:
        if entry.name == name:
            return entry
    raise UnknownNameError(unknown_molecule_message(name, entries))


def unknown_molecule_message(name: str, entries: Sequence[MoleculeEntry], also: str = "") -> str:
    """``unknown molecule 'asprin'; did you mean aspirin?``, or where to look when nothing is close.

    ``also`` names what else ``name`` was tried as besides a SMILES (e.g. ``"a structure file"``).
    """
    close = difflib.get_close_matches(name, [e.name for e in entries], n=3)
    if close:
        options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
        return f"unknown molecule {name!r}; did you mean {options}?"
    tried = f"neither a catalog molecule, {also} nor a SMILES" if also else "not in the catalog"
    return f"unknown molecule {name!r}: {tried} (`openmm-distill systems` lists the catalog)"


def structure_path(name: str, suffixes: Sequence[str] = STRUCTURE_SUFFIXES) -> Path:
    """Path of a ready-made structure in ``structures/`` of :func:`systems_dir`.

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
    MissingFileError
        If no such file exists (also a FileNotFoundError); the message lists the available structures.
    """
    folder = systems_dir() / STRUCTURES_DIR
    candidates = [folder / name] if Path(name).suffix else [folder / f"{name}{s}" for s in suffixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    raise MissingFileError(
        f"no structure {name!r} in {folder} (tried {', '.join(c.name for c in candidates)}); "
        f"available: {', '.join(available) or 'none'}"
    )
