"""Element symbols, atomic numbers and masses (one table for the package)."""
from __future__ import annotations

from typing import Iterable, List, Sequence

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
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def symbol(z: int) -> str:
    """Element symbol of an atomic number."""
    if not 0 < int(z) < len(SYMBOLS):
        raise ValueError(f"atomic number {z} is outside the supported table 1..{len(SYMBOLS) - 1}")
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
