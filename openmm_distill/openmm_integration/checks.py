"""Input checks that run before any OpenMM Context exists.

A Context with bad input fails late and obscurely (NaN energies, a crash in a
kernel); these checks name the problem and the fix instead.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from openmm_distill.errors import BoxTooSmallError, DistillError, InvalidPositionsError

# Two atoms closer than this are one atom twice (a duplicated line in a structure file, a molecule placed
# on top of another): no bond, however compressed, comes near 0.1 Angstrom, and at zero distance the
# student's pair terms are 0/0.
MIN_ATOM_DISTANCE_NM = 0.01


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


def close_pairs(positions_nm, box_vectors_nm=None, min_distance_nm: float = MIN_ATOM_DISTANCE_NM) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of positions closer than ``min_distance_nm`` (minimum image in a periodic box).

    Parameters
    ----------
    positions_nm : (N, 3) array, nm
    box_vectors_nm : (3, 3) array, nm, rows are box vectors; None for no periodicity
    min_distance_nm : float, nm

    Returns an (M, 2) integer array, sorted. A k-d tree keeps this O(N log N).
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    if box_vectors_nm is None:
        pairs = cKDTree(pos).query_pairs(min_distance_nm, output_type="ndarray")
        return np.array(sorted(map(tuple, pairs)), dtype=np.int64).reshape(-1, 2)
    box = _plain(box_vectors_nm, "nanometer").reshape(3, 3)
    frac = np.mod(pos @ np.linalg.inv(box), 1.0)
    frac[frac >= 1.0] = 0.0  # np.mod(-1e-17, 1.0) rounds to 1.0
    # A Cartesian distance below r is a fractional one below r / (smallest singular value of the box):
    # search the unit cube periodically with that radius, then keep the pairs that are really close.
    radius = min_distance_nm / np.linalg.svd(box, compute_uv=False).min()
    candidates = cKDTree(frac, boxsize=1.0).query_pairs(min(radius, 0.49), output_type="ndarray")
    if len(candidates) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = frac[candidates[:, 1]] - frac[candidates[:, 0]]
    d -= np.round(d)
    close = np.linalg.norm(d @ box, axis=1) < min_distance_nm
    return np.array(sorted(map(tuple, candidates[close])), dtype=np.int64).reshape(-1, 2)


def _describe_close_pairs(pairs: np.ndarray, pos: np.ndarray, box, particles) -> str:
    i, j = (int(x) for x in pairs[0])
    d = pos[j] - pos[i]
    if box is not None:
        b = _plain(box, "nanometer").reshape(3, 3)
        f = d @ np.linalg.inv(b)
        d = (f - np.round(f)) @ b
    name = (lambda k: int(particles[k])) if particles is not None else int
    more = f" and {len(pairs) - 1} more pair(s)" if len(pairs) > 1 else ""
    return (f"particles {name(i)} and {name(j)} are {np.linalg.norm(d):.2g} nm apart{more} (closer than "
            f"{MIN_ATOM_DISTANCE_NM} nm): a duplicated atom or overlapping molecules; fix the structure")


def check_separated(positions, box_vectors=None, particles: Optional[Sequence[int]] = None) -> None:
    """Raise :class:`InvalidPositionsError` if two particles (of ``particles``, default all) nearly coincide.

    ``box_vectors`` (nm or a Quantity) applies minimum image. Run once before a Context exists; the
    python backends and the ASE calculator run it again only if the student returns a non-finite energy.
    """
    pos = positions_nm(positions)
    chosen = pos if particles is None else pos[np.asarray(particles, dtype=np.int64)]
    pairs = close_pairs(chosen, box_vectors)
    if len(pairs):
        raise InvalidPositionsError(_describe_close_pairs(pairs, chosen, box_vectors, particles))


def non_finite_error(energy: float, positions_nm, box_vectors_nm=None, particles: Optional[Sequence[int]] = None,
                     who: str = "the student") -> DistillError:
    """The error to raise when a student returned a non-finite energy (or forces): the cause if it is one
    that can be named (NaN positions, coincident atoms among ``particles``), else a plain statement, so
    that NaN never reaches an integrator silently."""
    try:
        check_positions(positions_nm)
        check_separated(positions_nm, box_vectors_nm, particles)
    except InvalidPositionsError as exc:
        return InvalidPositionsError(f"{who} returned a non-finite energy ({energy}): {exc}")
    return DistillError(f"{who} returned a non-finite energy ({energy}) or forces at finite, separated positions; "
                        "the structure is far outside what it was trained on")
