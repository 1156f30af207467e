"""Element symbols, atomic numbers and masses (one table for the package)."""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from openmm_distill.errors import ConfigError, StructureError, UnsupportedElementError

# Index = atomic number. Up to Kr, enough for organic chemistry and common ions.
SYMBOLS: List[str] = [
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr",
]
# Standard atomic weights (IUPAC 2013, conventional values), Dalton.
MASSES: List[float] = [
    0.0, 1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180,
    22.990, 24.305, 26.982, 28.085, 30.974, 32.06, 35.45, 39.948,
    39.098, 40.078, 44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
    69.723, 72.630, 74.922, 78.971, 79.904, 83.798,
]
_NUMBER = {s.lower(): z for z, s in enumerate(SYMBOLS)}

# Elements of organic chemistry used by the shipped students (issue 3: H C N O F P S Cl).
ORGANIC_ELEMENTS: List[int] = [1, 6, 7, 8, 9, 15, 16, 17]


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive)."""
    try:
        return _NUMBER[symbol.strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown element symbol {symbol!r}") from None


def symbol(z: int) -> str:
    """Element symbol of an atomic number."""
    if not 0 < int(z) < len(SYMBOLS):
        raise ConfigError(f"atomic number {z} is outside the supported table 1..{len(SYMBOLS) - 1}")
    return SYMBOLS[int(z)]


def symbols(numbers: Iterable[int]) -> List[str]:
    return [symbol(z) for z in numbers]


def formula(numbers: Sequence[int]) -> str:
    """Hill-order formula, e.g. C2H6O."""
    counts: dict = {}
    for z in numbers:
        counts[symbol(z)] = counts.get(symbol(z), 0) + 1
    # Hill order: C first, then H, then the rest alphabetically; without carbon, all alphabetically.
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + sorted(k for k in counts if k not in ("C", "H"))
    else:
        order = sorted(counts)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def to_atomic_number(element: Union[int, str]) -> int:
    """Atomic number of an int (checked against the element table) or a symbol such as ``"C"``."""
    if isinstance(element, str):
        return atomic_number(element)
    symbol(element)  # raises for a number outside the table
    return int(element)


def check_supported(atomic_numbers: Iterable[int], supported: Sequence[int], who: str) -> None:
    """Raise :class:`~openmm_distill.errors.UnsupportedElementError` naming every element of
    ``atomic_numbers`` that is not in ``supported``; ``who`` names the model in the message."""
    z = np.asarray(list(atomic_numbers), dtype=np.int64)
    bad = sorted(set(int(x) for x in np.unique(z)) - set(int(s) for s in supported))
    if bad:
        names = ", ".join(f"{SYMBOLS[b] if 0 < b < len(SYMBOLS) else '?'} (Z={b})" for b in bad)
        count = int(np.isin(z, bad).sum())
        raise UnsupportedElementError(f"{who} does not support element(s) {names} ({count} atom(s)); "
                                      f"it supports {', '.join(symbols(supported))}")


def atomic_numbers_of(topology, atoms: Optional[Sequence[int]] = None) -> List[int]:
    """Atomic numbers of an ``openmm.app.Topology``'s atoms (all, or the given atom indices).

    Raises
    ------
    StructureError
        For an atom without an element (a virtual site or extra particle).
    """
    all_atoms = list(topology.atoms())
    chosen = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    numbers = []
    for atom in chosen:
        if atom.element is None:
            raise StructureError(f"atom {atom.index} ({atom.name} in residue {atom.residue.name}) has no element; "
                                 "virtual sites and extra particles cannot be part of the ML region")
        numbers.append(atom.element.atomic_number)
    return numbers
