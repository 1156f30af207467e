"""Force and energy errors of a student against its teacher, as the accuracy protocol reports them.

The definitions are the package's one set (:mod:`openmm_distill.metrics`,
which training logs use too: R^2 over all components with one mean, MAE/RMSE
over components, angles only for atoms whose teacher force is at least
``min_force``), so a validation report and a training log mean the same
thing by the same name. This module adds what validation needs on top:
percentiles, per-atom error norms, per-element errors and offset-corrected
energies.

Units: forces eV/Angstrom, energies eV (reported per atom in meV/atom).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from openmm_distill.elements import symbol
from openmm_distill.metrics import (
    DEFAULT_MIN_FORCE,
    angles_deg,
    energy_mae_per_atom,
    force_mae,
    force_r2,
    force_rmse,
    mean_angular_error_deg,
)
from openmm_distill.units import MEV_PER_EV

PERCENTILES = (50, 90, 95)


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def percentile_summary(values: np.ndarray, percentiles: Sequence[int] = PERCENTILES) -> Dict[str, float]:
    """``{"mean", "p50", "p90", "p95", "max"}`` of a 1-D array (NaN entries for an empty one)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return {"mean": float("nan"), **{f"p{p}": float("nan") for p in percentiles}, "max": float("nan")}
    out = {"mean": float(v.mean())}
    out.update({f"p{p}": float(q) for p, q in zip(percentiles, np.percentile(v, percentiles))})
    out["max"] = float(v.max())
    return out


def angular_errors_deg(pred: np.ndarray, target: np.ndarray, min_force: float = DEFAULT_MIN_FORCE) -> np.ndarray:
    """Angle between predicted and reference force of each atom with ``|F_ref| >= min_force``, degrees."""
    return angles_deg(_t(pred).reshape(-1, 3), _t(target).reshape(-1, 3), min_force).numpy()


def force_metrics(pred: np.ndarray, target: np.ndarray, atomic_numbers: Optional[np.ndarray] = None,
                  min_force: float = DEFAULT_MIN_FORCE) -> Dict[str, Any]:
    """Force errors of a prediction against the teacher.

    Parameters
    ----------
    pred, target : numpy.ndarray, shape (N, 3)
        Predicted and teacher forces, eV/Angstrom (all atoms of all structures).
    atomic_numbers : numpy.ndarray, shape (N,), optional
        For per-element MAE.
    min_force : float
        Atoms with a smaller teacher force (eV/Angstrom) are left out of angular errors.

    Returns
    -------
    dict
        ``r2``, ``mae``, ``rmse`` (eV/Angstrom, over components), ``angle_deg``
        (mean angular error, degrees), ``angle`` / ``component_abs_error`` /
        ``atom_error_norm`` percentile summaries (p50/p90/p95/max),
        ``per_element_mae`` (symbol -> eV/Angstrom), counts.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    t = np.asarray(target, dtype=np.float64).reshape(-1, 3)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != reference shape {t.shape}")
    diff = p - t
    angles = angular_errors_deg(p, t, min_force)
    out: Dict[str, Any] = {
        "r2": force_r2(_t(p), _t(t)),
        "mae": force_mae(_t(p), _t(t)),
        "rmse": force_rmse(_t(p), _t(t)),
        "angle_deg": mean_angular_error_deg(_t(p), _t(t), min_force),
        "angle": percentile_summary(angles),
        "component_abs_error": percentile_summary(np.abs(diff).reshape(-1)),
        "atom_error_norm": percentile_summary(np.linalg.norm(diff, axis=1)),
        "reference_force_rms": float(np.sqrt((t ** 2).mean())) if t.size else float("nan"),
        "n_atoms": int(p.shape[0]),
        "n_components": int(p.size),
        "n_angles": int(angles.size),
        "min_force_for_angles": float(min_force),
    }
    if atomic_numbers is not None:
        z = np.asarray(atomic_numbers).reshape(-1)
        if z.shape[0] != p.shape[0]:
            raise ValueError(f"{z.shape[0]} atomic numbers for {p.shape[0]} force rows")
        out["per_element_mae"] = {symbol(int(e)): float(np.abs(diff[z == e]).mean()) for e in np.unique(z)}
        out["per_element_count"] = {symbol(int(e)): int((z == e).sum()) for e in np.unique(z)}
    return out


def energy_metrics(pred_ev: Sequence[float], target_ev: Sequence[float], n_atoms: Sequence[int],
                   groups: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Energy errors per atom, absolute and after removing a constant offset per group.

    Parameters
    ----------
    pred_ev, target_ev : array_like, shape (S,)
        Predicted and teacher total energies, eV.
    n_atoms : array_like of int, shape (S,)
    groups : sequence of str, shape (S,), optional
        Molecule of each structure. The offset-corrected error subtracts the
        mean error of each molecule (a constant shift changes no force and no
        MD), so it measures the relative energies the dynamics see.

    Returns
    -------
    dict
        ``mae_mev_per_atom`` (absolute, as trained: students learn the teacher's
        absolute energies), ``rmse_mev_per_atom``, ``max_mev_per_atom``,
        ``offset_corrected_mae_mev_per_atom``, ``offset_corrected_rmse_mev_per_atom``,
        ``offsets_mev_per_atom`` (group -> mean error per atom), ``n_structures``.
    """
    p = np.asarray(pred_ev, dtype=np.float64).reshape(-1)
    t = np.asarray(target_ev, dtype=np.float64).reshape(-1)
    n = np.asarray(n_atoms, dtype=np.float64).reshape(-1)
    g = np.asarray(groups if groups is not None else ["all"] * len(p), dtype=object)
    if not (len(p) == len(t) == len(n) == len(g)):
        raise ValueError("pred, target, n_atoms and groups must have the same length")
    if len(p) == 0:
        nan = float("nan")
        return {"mae_mev_per_atom": nan, "rmse_mev_per_atom": nan, "max_mev_per_atom": nan,
                "offset_corrected_mae_mev_per_atom": nan, "offset_corrected_rmse_mev_per_atom": nan,
                "offsets_mev_per_atom": {}, "n_structures": 0}
    err = p - t
    per_atom = err / n * MEV_PER_EV
    corrected = np.empty_like(err)
    offsets = {}
    for name in dict.fromkeys(g.tolist()):
        mask = g == name
        shift = err[mask].mean()
        corrected[mask] = err[mask] - shift
        offsets[str(name)] = float((err[mask] / n[mask]).mean() * MEV_PER_EV)
    corrected_per_atom = corrected / n * MEV_PER_EV
    return {
        "mae_mev_per_atom": energy_mae_per_atom(_t(p), _t(t), _t(n)) * MEV_PER_EV,
        "rmse_mev_per_atom": float(np.sqrt((per_atom ** 2).mean())),
        "max_mev_per_atom": float(np.abs(per_atom).max()),
        "offset_corrected_mae_mev_per_atom": float(np.abs(corrected_per_atom).mean()),
        "offset_corrected_rmse_mev_per_atom": float(np.sqrt((corrected_per_atom ** 2).mean())),
        "offsets_mev_per_atom": offsets,
        "n_structures": int(len(p)),
    }
