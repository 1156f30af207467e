"""Off-equilibrium geometries by displacing a reference structure.

Two kinds:

* random Gaussian displacements: every Cartesian coordinate moved by
  ``N(0, sigma^2)``; cheap and unbiased, but mostly compresses stiff bonds;
* normal-mode displacements (the ANI "normal mode sampling" idea): displace
  along the vibrational modes of a Hessian with Boltzmann amplitudes at a
  temperature, so soft modes (torsions, bends) move a lot and stiff bonds a
  little, as in a thermal ensemble.

* close contacts: two atoms bonded to a common neighbour (a 1-3 pair, e.g. the
  two hydrogens of an NH2 or CH2 group) pushed towards each other. Thermal
  sampling almost never brings them this close, so a student learns no wall
  there, and in long hot MD two such hydrogens can collapse onto each other
  (what broke the amine groups of the shipped ``original`` at 500-800 K).

Units: positions Angstrom, Hessian eV/Angstrom^2, masses Dalton, temperature K.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from openmm_distill.data.finite_differences import central_difference_hessian
from openmm_distill.elements import MASSES

# Boltzmann constant, eV/K (CODATA 2018, exact).
BOLTZMANN_EV_PER_K = 8.617333262e-5


def random_displacement(positions: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Positions plus isotropic Gaussian noise.

    Parameters
    ----------
    positions : numpy.ndarray, shape (N, 3), Angstrom
    sigma : float
        Standard deviation per Cartesian component, Angstrom.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (N, 3), Angstrom
    """
    return positions + rng.normal(0.0, sigma, size=positions.shape)


def one_three_pairs(bonds) -> np.ndarray:
    """Atom pairs (i < j) bonded to a common neighbour, shape (M, 2), from bonds (K, 2)."""
    neighbours: dict = {}
    for a, b in np.asarray(bonds, dtype=np.int64).reshape(-1, 2):
        neighbours.setdefault(int(a), set()).add(int(b))
        neighbours.setdefault(int(b), set()).add(int(a))
    pairs = set()
    for centre, ns in neighbours.items():
        ns = sorted(ns)
        for x in range(len(ns)):
            for y in range(x + 1, len(ns)):
                pairs.add((ns[x], ns[y]))
    bonded = {tuple(sorted((int(a), int(b)))) for a, b in np.asarray(bonds, dtype=np.int64).reshape(-1, 2)}
    return np.array(sorted(pairs - bonded), dtype=np.int64).reshape(-1, 2)


def close_contact_displacement(positions: np.ndarray, pair, scale: float, rng: np.random.Generator,
                               sigma: float = 0.01) -> np.ndarray:
    """Move the two atoms of ``pair`` symmetrically along their axis to ``scale`` times their distance.

    Parameters
    ----------
    positions : numpy.ndarray, shape (N, 3), Angstrom
    pair : (int, int)
    scale : float
        New distance / old distance (0 < scale; < 1 pushes them together).
    rng : numpy.random.Generator
        For a small Gaussian jitter of every atom (``sigma`` Angstrom), so repeated
        contacts of the same pair are not collinear copies.
    """
    i, j = int(pair[0]), int(pair[1])
    x = np.array(positions, dtype=np.float64, copy=True)
    d = x[j] - x[i]
    shift = 0.5 * (1.0 - scale) * d
    x[i] += shift
    x[j] -= shift
    return x + rng.normal(0.0, sigma, size=x.shape)


def atomic_masses(atomic_numbers: np.ndarray) -> np.ndarray:
    """Masses in Dalton (elements beyond the package table fall back to 2*Z)."""
    return np.array([MASSES[z] if z < len(MASSES) else 2.0 * z for z in atomic_numbers], dtype=np.float64)


def is_linear(positions: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Whether atoms lie on a line (Angstrom; second principal extent below ``tolerance``)."""
    x = np.asarray(positions, dtype=np.float64)
    if len(x) <= 2:
        return True
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return bool(singular[1] < tolerance)


def normal_modes(hessian: np.ndarray, atomic_numbers: np.ndarray, linear: Optional[bool] = None):
    """Vibrational modes of a Cartesian Hessian.

    Parameters
    ----------
    hessian : numpy.ndarray, shape (3N, 3N), eV/Angstrom^2
    atomic_numbers : numpy.ndarray of int, shape (N,)
    linear : bool, optional
        Drop 5 (linear) rather than 6 rigid-body modes; ``None``: 6 for N > 2.

    Returns
    -------
    eigenvalues : numpy.ndarray, shape (M,)
        Mass-weighted eigenvalues, eV/(Angstrom^2 Dalton); may be negative at a
        non-stationary geometry.
    modes : numpy.ndarray, shape (M, N, 3)
        Cartesian displacement directions ``M^-1/2 v`` (not normalised).
    """
    n = len(atomic_numbers)
    masses = np.repeat(atomic_masses(atomic_numbers), 3)
    inv_sqrt_m = 1.0 / np.sqrt(masses)
    mw = hessian * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]
    eigenvalues, vectors = np.linalg.eigh(0.5 * (mw + mw.T))
    if n == 1:
        n_rigid = 3
    elif linear or (linear is None and n == 2):
        n_rigid = 5
    else:
        n_rigid = 6
    # The rigid-body modes have the smallest |eigenvalue|.
    order = np.argsort(np.abs(eigenvalues))
    keep = np.sort(order[n_rigid:])
    modes = (vectors[:, keep] * inv_sqrt_m[:, None]).T.reshape(-1, n, 3)
    return eigenvalues[keep], modes


def normal_mode_displacement(
    positions: np.ndarray,
    eigenvalues: np.ndarray,
    modes: np.ndarray,
    temperature_K: float,
    rng: np.random.Generator,
    *,
    min_eigenvalue: float = 0.05,
    max_displacement: float = 0.5,
) -> np.ndarray:
    """A classical Boltzmann sample of harmonic normal-mode amplitudes.

    Each mass-weighted coordinate ``q_i ~ N(0, kT / |lambda_i|)``; the
    displacement is ``sum_i q_i M^-1/2 v_i``.

    Parameters
    ----------
    positions : numpy.ndarray, shape (N, 3), Angstrom
    eigenvalues, modes
        From :func:`normal_modes`.
    temperature_K : float
    rng : numpy.random.Generator
    min_eigenvalue : float
        Floor on ``|lambda_i|``, eV/(Angstrom^2 Dalton), so that very soft or
        imaginary modes do not get unbounded amplitudes.
    max_displacement : float
        If any atom would move further than this (Angstrom), the whole
        displacement is scaled down to it.

    Returns
    -------
    numpy.ndarray, shape (N, 3), Angstrom
    """
    if len(eigenvalues) == 0:
        return positions.copy()
    kt = BOLTZMANN_EV_PER_K * float(temperature_K)
    stiffness = np.maximum(np.abs(eigenvalues), min_eigenvalue)
    q = rng.normal(0.0, 1.0, size=len(eigenvalues)) * np.sqrt(kt / stiffness)
    delta = np.tensordot(q, modes, axes=1)
    largest = float(np.linalg.norm(delta, axis=1).max())
    if largest > max_displacement:
        delta *= max_displacement / largest
    return positions + delta


def teacher_hessian(teacher, atomic_numbers: np.ndarray, positions: np.ndarray, step: float = 5e-3, charge=None) -> np.ndarray:
    """Cartesian Hessian of a teacher by central differences of its forces.

    Costs ``6 N`` teacher calls.

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher
    atomic_numbers : numpy.ndarray of int, shape (N,)
    positions : numpy.ndarray, shape (N, 3), Angstrom
    step : float
        Displacement, Angstrom.

    Returns
    -------
    numpy.ndarray, shape (3N, 3N), eV/Angstrom^2

    Raises
    ------
    TeacherError
        If any of the displaced calls fails.
    """
    def gradient(x: np.ndarray) -> np.ndarray:
        return -teacher.compute(atomic_numbers, x.reshape(-1, 3), charge=charge).forces.reshape(-1)

    return central_difference_hessian(gradient, positions, step)
