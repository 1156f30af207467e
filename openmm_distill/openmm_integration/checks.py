"""Input checks that run before any OpenMM Context exists.

A Context with bad input fails late and obscurely (NaN energies, a crash in a
kernel); these checks name the problem and the fix instead.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from openmm_distill.errors import BoxTooSmallError, InvalidPositionsError


def _plain(array_like, unit_name: str) -> np.ndarray:
    """Strip OpenMM units (to ``unit_name``: 'nanometer') or accept plain arrays."""
    try:
        from openmm import unit

        if unit.is_quantity(array_like):
            array_like = array_like.value_in_unit(getattr(unit, unit_name))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(array_like, (list, tuple)) and array_like and hasattr(array_like[0], "x"):
        array_like = [[v.x, v.y, v.z] for v in array_like]
    return np.asarray(array_like, dtype=np.float64)


def positions_nm(positions) -> np.ndarray:
    """Positions as an (N, 3) float array in nm, from a Quantity, a list of Vec3 or an array (nm)."""
    return _plain(positions, "nanometer")


def check_positions(positions, n_particles: Optional[int] = None) -> np.ndarray:
    """Raise :class:`InvalidPositionsError` for a wrong shape or NaN/infinite coordinates. Returns nm array."""
    pos = positions_nm(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InvalidPositionsError(f"positions must have shape (N, 3), got {pos.shape}")
    if n_particles is not None and pos.shape[0] != n_particles:
        raise InvalidPositionsError(f"got {pos.shape[0]} positions for a System of {n_particles} particles")
    bad = np.where(~np.isfinite(pos).all(axis=1))[0]
    if bad.size:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise InvalidPositionsError(
            f"{bad.size} particle(s) have NaN or infinite positions (indices {shown}); "
            "check the structure file or the previous simulation step"
        )
    return pos


def box_widths_nm(box_vectors) -> np.ndarray:
    """Perpendicular widths of a (possibly triclinic) box, nm."""
    b = _plain(box_vectors, "nanometer").reshape(3, 3)
    volume = abs(np.linalg.det(b))
    return np.array([volume / np.linalg.norm(np.cross(b[(k + 1) % 3], b[(k + 2) % 3])) for k in range(3)])


def check_box(box_vectors, cutoff_nm: float) -> None:
    """Raise :class:`BoxTooSmallError` unless every box width is at least twice the cutoff.

    Minimum image, which the student's neighbour search relies on, is only exact
    when no atom can see two images of another within the cutoff.
    """
    b = _plain(box_vectors, "nanometer").reshape(3, 3)
    if not np.isfinite(b).all() or abs(np.linalg.det(b)) < 1e-12:
        raise BoxTooSmallError(f"periodic box vectors are degenerate or not finite: {b.tolist()} nm")
    widths = box_widths_nm(b)
    if (widths < 2 * cutoff_nm).any():
        raise BoxTooSmallError(
            f"periodic box widths {np.round(widths, 4).tolist()} nm are smaller than twice the student's cutoff "
            f"(2 x {cutoff_nm} = {2 * cutoff_nm} nm); use a larger box or a student with a shorter cutoff"
        )
