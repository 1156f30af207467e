"""The MD watchdog: is a state still the molecule it started as?

Small students fail in MD in a few typical ways: forces blow up (NaN or huge),
a bond breaks or atoms fuse, a hydrogen flies off. A :class:`Watchdog` checks
a state against the starting structure's bonds (from the topology, or guessed
from the starting geometry by covalent radii) and says what went wrong.
The stability protocol and exploration both run MD under it
(:func:`openmm_distill.md.langevin.run_watched`).

Units: Angstrom and eV/Angstrom (as the thresholds are stated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class WatchdogThresholds:
    """Limits beyond which a trajectory counts as failed.

    Attributes
    ----------
    max_force_ev_per_angstrom : float
        Largest allowed force on any atom, eV/Angstrom (default 50; thermal
        forces in organic molecules at 500 K stay below ~10).
    max_bond_deviation_angstrom : float
        Largest allowed change of a starting bond's length, Angstrom (default
        0.5). Stretching breaks the bond; a compression this large means atoms
        are fusing, which is as unphysical.
    max_hydrogen_distance_angstrom : float
        Largest allowed distance of a hydrogen from its bonded partner, Angstrom (default 2.5).
    """

    max_force_ev_per_angstrom: float = 50.0
    max_bond_deviation_angstrom: float = 0.5
    max_hydrogen_distance_angstrom: float = 2.5


@dataclass
class WatchdogCheck:
    """The outcome of one watchdog check.

    Attributes
    ----------
    ok : bool
    reasons : list of str
        Human-readable violations (empty when ``ok``).
    max_force_ev_per_angstrom : float
        NaN when forces were not given or are not finite.
    max_bond_deviation_angstrom : float
        Largest ``|r - r0|`` over the starting bonds.
    worst_bond : tuple of int or None
        Atom indices of that bond.
    max_hydrogen_distance_angstrom : float
        Largest hydrogen-partner distance (NaN without hydrogen bonds).
    """

    ok: bool
    reasons: List[str]
    max_force_ev_per_angstrom: float
    max_bond_deviation_angstrom: float
    worst_bond: Optional[Tuple[int, int]]
    max_hydrogen_distance_angstrom: float


def minimum_image(displacements: np.ndarray, box: Optional[np.ndarray]) -> np.ndarray:
    """Displacements (M, 3) brought to their minimum image in a reduced-form box (rows = vectors), any length unit."""
    d = np.array(displacements, dtype=np.float64, copy=True)
    if box is None:
        return d
    b = np.asarray(box, dtype=np.float64).reshape(3, 3)
    # OpenMM's order for reduced triclinic boxes: c, then b, then a.
    for k in (2, 1, 0):
        d -= np.round(d[:, k] / b[k, k])[:, None] * b[k][None, :]
    return d


class Watchdog:
    """Checks MD states for non-finite or huge forces, broken/fused bonds and detached hydrogens.

    Parameters
    ----------
    atomic_numbers : array_like of int, shape (N,)
    bonds : array_like of int, shape (M, 2)
        Bonds of the starting structure (atom indices).
    reference_positions_angstrom : array_like, shape (N, 3)
        Starting positions, Angstrom; reference bond lengths come from here.
    thresholds : WatchdogThresholds, optional
    box_angstrom : array_like, shape (3, 3), optional
        Periodic box (rows, Angstrom) for minimum-image bond lengths.

    Examples
    --------
    >>> dog = Watchdog([8, 1], [[0, 1]], [[0, 0, 0], [0.96, 0, 0]])
    >>> dog.check([[0, 0, 0], [1.7, 0, 0]]).ok
    False
    """

    def __init__(self, atomic_numbers, bonds, reference_positions_angstrom,
                 thresholds: Optional[WatchdogThresholds] = None, box_angstrom=None):
        self.atomic_numbers = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        self.bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        self.thresholds = thresholds or WatchdogThresholds()
        self.box = None if box_angstrom is None else np.asarray(box_angstrom, dtype=np.float64).reshape(3, 3)
        self.reference_lengths = self.bond_lengths(reference_positions_angstrom)
        is_h = self.atomic_numbers[self.bonds] == 1 if len(self.bonds) else np.zeros((0, 2), dtype=bool)
        self.hydrogen_bonds = np.where(is_h.any(axis=1))[0] if len(self.bonds) else np.zeros(0, dtype=np.int64)

    @classmethod
    def for_system(cls, molsys, thresholds: Optional[WatchdogThresholds] = None) -> "Watchdog":
        """Watchdog for a :class:`~openmm_distill.systems.resolve.MolecularSystem`'s bonds and start geometry.

        The bonds are the topology's, or guessed from the starting geometry when it has none.
        """
        return cls(molsys.atomic_numbers, molsys.bonds(), molsys.positions_angstrom, thresholds, molsys.box_angstrom)

    def bond_lengths(self, positions_angstrom, box_angstrom=None) -> np.ndarray:
        """Lengths (M,) of the watched bonds, Angstrom, minimum image in a periodic box."""
        pos = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
        if not len(self.bonds):
            return np.zeros(0)
        box = self.box if box_angstrom is None else np.asarray(box_angstrom, dtype=np.float64)
        d = minimum_image(pos[self.bonds[:, 1]] - pos[self.bonds[:, 0]], box)
        return np.linalg.norm(d, axis=1)

    def check(self, positions_angstrom, forces_ev_per_angstrom=None, box_angstrom=None) -> WatchdogCheck:
        """Check one state.

        Parameters
        ----------
        positions_angstrom : array_like, shape (N, 3)
        forces_ev_per_angstrom : array_like, shape (N, 3), optional
        box_angstrom : array_like, shape (3, 3), optional
            Current box (default: the reference box).
        """
        t = self.thresholds
        reasons: List[str] = []
        pos = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
        max_force = float("nan")
        if forces_ev_per_angstrom is not None:
            f = np.asarray(forces_ev_per_angstrom, dtype=np.float64).reshape(-1, 3)
            if not np.all(np.isfinite(f)):
                bad = np.where(~np.isfinite(f).all(axis=1))[0]
                reasons.append(f"non-finite force on {bad.size} atom(s) (first: {bad[0]})")
            else:
                norms = np.linalg.norm(f, axis=1)
                worst = int(norms.argmax()) if norms.size else 0
                max_force = float(norms.max()) if norms.size else 0.0
                if max_force > t.max_force_ev_per_angstrom:
                    reasons.append(f"force {max_force:.3g} eV/Å on atom {worst} > {t.max_force_ev_per_angstrom:g} eV/Å")
        if not np.all(np.isfinite(pos)):
            reasons.append("non-finite positions")
            return WatchdogCheck(False, reasons, max_force, float("nan"), None, float("nan"))
        lengths = self.bond_lengths(pos, box_angstrom)
        max_dev, worst_bond, max_h = 0.0, None, float("nan")
        if lengths.size:
            dev = np.abs(lengths - self.reference_lengths)
            k = int(dev.argmax())
            max_dev, worst_bond = float(dev[k]), (int(self.bonds[k, 0]), int(self.bonds[k, 1]))
            if max_dev > t.max_bond_deviation_angstrom:
                change = "stretched" if lengths[k] > self.reference_lengths[k] else "compressed"
                reasons.append(f"bond {worst_bond[0]}-{worst_bond[1]} {change} by {max_dev:.3g} Å "
                               f"({self.reference_lengths[k]:.3g} -> {lengths[k]:.3g} Å) > "
                               f"{t.max_bond_deviation_angstrom:g} Å")
            if self.hydrogen_bonds.size:
                h_lengths = lengths[self.hydrogen_bonds]
                j = int(h_lengths.argmax())
                max_h = float(h_lengths[j])
                if max_h > t.max_hydrogen_distance_angstrom:
                    a, b = self.bonds[self.hydrogen_bonds[j]]
                    h, partner = (a, b) if self.atomic_numbers[a] == 1 else (b, a)
                    reasons.append(f"hydrogen {h} is {max_h:.3g} Å from its bonded partner {partner} > "
                                   f"{t.max_hydrogen_distance_angstrom:g} Å")
        return WatchdogCheck(not reasons, reasons, max_force, max_dev, worst_bond, max_h)
