"""Periodic boxes of rigid TIP3P-geometry water, built in milliseconds.

Lengths are in Angstrom. Waters sit on a jittered cubic lattice (so no two
oxygens come closer than :data:`MIN_OO_DISTANCE`, across periodic images too),
with uniformly random orientations; orientations that put atoms of different
molecules closer than :data:`MIN_INTERMOLECULAR_DISTANCE` are drawn again.
The result is a sensible starting point for minimisation and MD, not an
equilibrated liquid.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from openmm_distill.elements import MASSES
from openmm_distill.errors import ConfigError
from openmm_distill.systems.io import Structure
from openmm_distill.units import ANGSTROM_TO_NM

import openmm
import openmm.app as app
import openmm.unit as unit

# TIP3P geometry (Jorgensen et al. 1983): O-H 0.9572 Angstrom, H-O-H 104.52 degrees.
TIP3P_OH_ANGSTROM = 0.9572
TIP3P_HOH_DEGREES = 104.52
WATER_MASS_DALTON = MASSES[8] + 2 * MASSES[1]
AVOGADRO = 6.02214076e23
DEFAULT_DENSITY_G_PER_CM3 = 1.0
DEFAULT_N_WATERS = 216
MIN_OO_DISTANCE = 2.5  # Angstrom, between any two oxygens, periodic images included
MIN_INTERMOLECULAR_DISTANCE = 1.4  # Angstrom, between any two atoms of different waters
_MAX_REORIENT_ROUNDS = 100


def water_volume_angstrom3(density_g_per_cm3: float = DEFAULT_DENSITY_G_PER_CM3) -> float:
    """Volume per water molecule at the given density, in cubic Angstrom (29.9 at 1 g/cm^3)."""
    return WATER_MASS_DALTON / AVOGADRO / density_g_per_cm3 * 1e24


def water_density_g_per_cm3(n_waters: int, box_edge_angstrom: float) -> float:
    """Density of ``n_waters`` waters in a cubic box of edge ``box_edge_angstrom``, in g/cm^3."""
    return n_waters * WATER_MASS_DALTON / AVOGADRO / (box_edge_angstrom ** 3 * 1e-24)


def _template() -> np.ndarray:
    # O at the origin, the two hydrogens in the xy plane, symmetric about y.
    half = math.radians(TIP3P_HOH_DEGREES) / 2
    r = TIP3P_OH_ANGSTROM
    return np.array([[0.0, 0.0, 0.0], [r * math.sin(half), r * math.cos(half), 0.0],
                     [-r * math.sin(half), r * math.cos(half), 0.0]])


def _clashing_waters(positions: np.ndarray, edge: float) -> np.ndarray:
    """Indices of waters with an atom closer than the limit to an atom of another water."""
    tree = cKDTree(np.mod(positions, edge), boxsize=edge)
    pairs = tree.query_pairs(MIN_INTERMOLECULAR_DISTANCE, output_type="ndarray")
    pairs = pairs[pairs[:, 0] // 3 != pairs[:, 1] // 3]
    return np.unique(pairs // 3)


def water_topology(n_waters: int, box_edge_angstrom: Optional[float] = None) -> app.Topology:
    """Topology of ``n_waters`` HOH residues (atoms O, H1, H2; O-H bonds), as amber14/tip3p.xml expects."""
    topology = app.Topology()
    chain = topology.addChain()
    element_o, element_h = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(n_waters):
        residue = topology.addResidue("HOH", chain)
        oxygen = topology.addAtom("O", element_o, residue)
        topology.addBond(oxygen, topology.addAtom("H1", element_h, residue))
        topology.addBond(oxygen, topology.addAtom("H2", element_h, residue))
    if box_edge_angstrom is not None:
        edge_nm = box_edge_angstrom * ANGSTROM_TO_NM
        topology.setPeriodicBoxVectors([openmm.Vec3(edge_nm, 0, 0), openmm.Vec3(0, edge_nm, 0),
                                        openmm.Vec3(0, 0, edge_nm)] * unit.nanometer)
    return topology


def water_box(n_waters: Optional[int] = None, box_edge_angstrom: Optional[float] = None,
              seed: int = 0) -> Structure:
    """A cubic periodic box of rigid TIP3P-geometry water.

    Parameters
    ----------
    n_waters : int, optional
        Number of molecules. Default: fills ``box_edge_angstrom`` at 1 g/cm^3,
        or 216 if neither argument is given.
    box_edge_angstrom : float, optional
        Box edge in Angstrom. Default: the edge giving 1 g/cm^3.
    seed : int
        Seed of the lattice sites, jitter and orientations.

    Returns
    -------
    Structure
        ``3 n_waters`` atoms ordered O, H, H per molecule, positions and box
        (cubic, rows are box vectors) in Angstrom, bonds, and a topology with
        HOH residues. Molecules are whole; oxygens lie inside the box.

    Raises
    ------
    ConfigError
        If the box is too small for that many waters on a lattice (also a ValueError).
    """
    if n_waters is None and box_edge_angstrom is None:
        n_waters = DEFAULT_N_WATERS
    if n_waters is None:
        n_waters = max(1, round(box_edge_angstrom ** 3 / water_volume_angstrom3()))
    if n_waters < 1:
        raise ConfigError(f"n_waters must be at least 1, got {n_waters}")
    edge = float(box_edge_angstrom) if box_edge_angstrom is not None else (n_waters * water_volume_angstrom3()) ** (1 / 3)

    n_side = math.ceil(round(n_waters ** (1 / 3), 9))
    spacing = edge / n_side
    if spacing < MIN_OO_DISTANCE + 0.2:
        raise ConfigError(f"{n_waters} waters do not fit on a lattice in a {edge:.2f} Angstrom box "
                         f"(site spacing {spacing:.2f} < {MIN_OO_DISTANCE + 0.2} Angstrom); use a larger box")
    # Each oxygen moves at most `jitter` along each axis, so lattice neighbours
    # stay at least spacing - 2 * jitter >= MIN_OO_DISTANCE + 0.1 apart.
    jitter = min(0.3, (spacing - MIN_OO_DISTANCE - 0.1) / 2)

    rng = np.random.default_rng(seed)
    sites = np.sort(rng.choice(n_side ** 3, size=n_waters, replace=False))
    grid = np.stack(np.unravel_index(sites, (n_side,) * 3), axis=1)
    oxygens = (grid + 0.5) * spacing + rng.uniform(-jitter, jitter, size=(n_waters, 3))

    template = _template()
    rotations = Rotation.random(n_waters, random_state=rng).as_matrix()
    positions = (oxygens[:, None, :] + np.einsum("nij,aj->nai", rotations, template)).reshape(-1, 3)
    # Redraw the orientations of waters whose hydrogens point into a neighbour.
    for _ in range(_MAX_REORIENT_ROUNDS):
        clashing = _clashing_waters(positions, edge)
        if len(clashing) == 0:
            break
        new = Rotation.random(len(clashing), random_state=rng).as_matrix()
        moved = oxygens[clashing, None, :] + np.einsum("nij,aj->nai", new, template)
        positions.reshape(-1, 3, 3)[clashing] = moved
    else:
        raise ConfigError(f"could not orient {n_waters} waters in a {edge:.2f} Angstrom box without overlaps")

    box = np.eye(3) * edge
    bonds = np.array([[3 * i, 3 * i + k] for i in range(n_waters) for k in (1, 2)], dtype=np.int64)
    numbers = np.tile(np.array([8, 1, 1], dtype=np.int64), n_waters)
    return Structure(numbers, positions, box, f"water_box_{n_waters}", water_topology(n_waters, edge), bonds)
