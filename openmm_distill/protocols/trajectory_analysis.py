"""mdtraj analysis of a saved MD trajectory: RMSD to the start, bond-length statistics, radius of gyration.

The stability protocol runs it on each temperature's DCD. Units: Angstrom, ps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from openmm_distill.elements import symbol
from openmm_distill.md.watchdog import Watchdog
from openmm_distill.units import NM_TO_ANGSTROM


def analyse_trajectory(dcd_path: Union[str, Path], pdb_path: Union[str, Path], watchdog: Watchdog,
                       frame_times_ps: Optional[Sequence[float]] = None, periodic: bool = False) -> Dict[str, Any]:
    """mdtraj analysis of a saved trajectory.

    Parameters
    ----------
    dcd_path, pdb_path : path
        Trajectory and a PDB with its topology.
    watchdog : Watchdog
        Supplies the bonds and their reference lengths (Angstrom).
    frame_times_ps : sequence of float, optional
        Time of each frame, ps (default: frame index).
    periodic : bool
        Minimum-image bond lengths.

    Returns
    -------
    dict
        ``n_frames``; ``time_ps`` and ``rmsd_angstrom`` per frame (heavy atoms when present, after optimal
        superposition on frame 0); ``rmsd_final_angstrom``, ``rmsd_max_angstrom``;
        bond statistics over all frames: ``bond_length_max_deviation_angstrom``,
        ``bond_length_mean_std_angstrom`` (mean over bonds of each bond's std
        over time) and ``bond_types`` (per element pair: mean and std of
        length, n bonds, Angstrom); ``radius_of_gyration_angstrom`` (mean,
        non-periodic systems only).
    """
    import mdtraj as md

    try:
        traj = md.load_dcd(str(dcd_path), top=str(pdb_path))
    except Exception as exc:  # an empty or truncated DCD after an early failure
        return {"n_frames": 0, "error": f"{type(exc).__name__}: {exc}"}
    if traj.n_frames == 0:
        return {"n_frames": 0}
    heavy = [a.index for a in traj.topology.atoms if a.element is not None and a.element.symbol != "H"]
    indices = heavy if len(heavy) >= 3 else None
    rmsd = md.rmsd(traj, traj, 0, atom_indices=indices) * NM_TO_ANGSTROM
    out: Dict[str, Any] = {
        "n_frames": int(traj.n_frames),
        "time_ps": [float(x) for x in (frame_times_ps if frame_times_ps is not None and len(frame_times_ps) == traj.n_frames
                                       else range(traj.n_frames))],
        "rmsd_angstrom": rmsd.tolist(),
        "rmsd_final_angstrom": float(rmsd[-1]),
        "rmsd_max_angstrom": float(rmsd.max()),
    }
    if len(watchdog.bonds):
        lengths = md.compute_distances(traj, watchdog.bonds, periodic=periodic) * NM_TO_ANGSTROM  # (F, M) Angstrom
        deviation = np.abs(lengths - watchdog.reference_lengths[None, :])
        out["bond_length_max_deviation_angstrom"] = float(deviation.max())
        out["bond_length_mean_std_angstrom"] = float(lengths.std(axis=0).mean())
        z = watchdog.atomic_numbers
        types: Dict[str, Dict[str, float]] = {}
        labels = np.array(["-".join(sorted((symbol(int(z[i])), symbol(int(z[j]))))) for i, j in watchdog.bonds])
        for label in sorted(set(labels.tolist())):
            values = lengths[:, labels == label]
            types[label] = {"mean": float(values.mean()), "std": float(values.std()),
                            "n_bonds": int((labels == label).sum())}
        out["bond_types"] = types
    if not periodic:
        out["radius_of_gyration_angstrom"] = float(md.compute_rg(traj).mean() * NM_TO_ANGSTROM)
    return out
