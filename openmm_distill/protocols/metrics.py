"""Numbers the protocols report: energy drift fits and force/energy errors against a teacher.

Force and energy error definitions are the training metrics'
(:mod:`openmm_distill.training.metrics`: R^2 over all components with one mean,
MAE/RMSE over components, angles only for atoms whose teacher force is at least
``min_force``), reused here so a validation report and a training log mean the
same thing by the same name. This module adds what validation needs on top:
percentiles, per-atom error norms, per-element errors and offset-corrected
energies.

Units: forces eV/Angstrom, energies eV (reported per atom in meV/atom),
time ps, OpenMM energies kJ/mol.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from openmm_distill.elements import symbol
from openmm_distill.protocols.common import KJ_PER_MOL_TO_MEV
from openmm_distill.training import metrics as training_metrics

PERCENTILES = (50, 90, 95)
DEFAULT_MIN_FORCE = training_metrics.DEFAULT_MIN_FORCE  # eV/Angstrom


# -- energy conservation ---------------------------------------------------------------------

@dataclass
class DriftAnalysis:
    """Energy conservation of one NVE trajectory.

    Attributes
    ----------
    drift_kj_per_mol_per_ps : float
        Slope of a least-squares line through total energy vs time.
    drift_mev_per_atom_per_ps : float
        The same slope per atom, meV/atom/ps (the ml-peg / MLIP Audit convention).
    relative_drift_percent : float
        Slope times the run length, in % of the mean kinetic energy: how much
        of the thermal energy the drift adds or removes over the run. Unlike
        % of the total energy it does not depend on the energy zero.
    total_energy_std_kj_per_mol, total_energy_std_mev_per_atom : float
        Standard deviation of the total energy (fluctuation, includes the drift).
    max_excursion_kj_per_mol, max_excursion_mev_per_atom : float
        Largest ``|E_total(t) - E_total(0)|``.
    mean_kinetic_kj_per_mol : float
    mean_temperature_k : float or None
        From the kinetic energy when the degrees of freedom are known.
    duration_ps : float
    n_samples : int
    finite : bool
        False when any energy is NaN or infinite (the run blew up).
    passed : bool
        ``|drift| <= max_abs_drift`` (and the relative criterion if given) and finite.
    reasons : list of str
        Why it failed (empty when it passed).
    """

    drift_kj_per_mol_per_ps: float
    drift_mev_per_atom_per_ps: float
    relative_drift_percent: float
    total_energy_std_kj_per_mol: float
    total_energy_std_mev_per_atom: float
    max_excursion_kj_per_mol: float
    max_excursion_mev_per_atom: float
    mean_kinetic_kj_per_mol: float
    mean_temperature_k: Optional[float]
    duration_ps: float
    n_samples: int
    finite: bool
    passed: bool
    reasons: list
    max_abs_drift_mev_per_atom_per_ps: float
    max_relative_drift_percent: Optional[float]

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def linear_fit(time_ps: np.ndarray, values: np.ndarray) -> tuple:
    """Least-squares ``values = slope * time + intercept``; returns ``(slope, intercept)``."""
    t = np.asarray(time_ps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.size < 2 or np.ptp(t) == 0:
        return float("nan"), float(y[0]) if y.size else float("nan")
    slope, intercept = np.polyfit(t, y, 1)
    return float(slope), float(intercept)


def analyse_energy_series(time_ps: Sequence[float], potential_kj_per_mol: Sequence[float],
                          kinetic_kj_per_mol: Sequence[float], n_atoms: int, *,
                          max_abs_drift_mev_per_atom_per_ps: float = 0.1,
                          max_relative_drift_percent: Optional[float] = None,
                          degrees_of_freedom: Optional[int] = None) -> DriftAnalysis:
    """Drift, fluctuation and pass/fail of an NVE energy series.

    Parameters
    ----------
    time_ps : array_like, shape (T,)
        Sample times, ps.
    potential_kj_per_mol, kinetic_kj_per_mol : array_like, shape (T,)
        Potential and kinetic energy, kJ/mol.
    n_atoms : int
        For per-atom numbers.
    max_abs_drift_mev_per_atom_per_ps : float
        Pass threshold on ``|drift|`` (default 0.1 meV/atom/ps).
    max_relative_drift_percent : float, optional
        Optional second threshold on ``|relative drift|`` (% of mean kinetic energy).
    degrees_of_freedom : int, optional
        For the mean temperature, ``T = 2 <KE> / (dof k_B)``.
    """
    from openmm_distill.protocols.common import BOLTZMANN_KJ_PER_MOL_K

    t = np.asarray(time_ps, dtype=np.float64)
    pe = np.asarray(potential_kj_per_mol, dtype=np.float64)
    ke = np.asarray(kinetic_kj_per_mol, dtype=np.float64)
    total = pe + ke
    finite = bool(np.all(np.isfinite(total))) and total.size >= 2
    per_atom = KJ_PER_MOL_TO_MEV / max(int(n_atoms), 1)
    if finite:
        slope, _ = linear_fit(t, total)
        duration = float(t[-1] - t[0])
        mean_ke = float(ke.mean())
        relative = slope * duration / mean_ke * 100.0 if mean_ke > 0 else float("nan")
        std = float(total.std())
        excursion = float(np.abs(total - total[0]).max())
    else:
        slope = relative = std = excursion = float("nan")
        duration = float(t[-1] - t[0]) if t.size else 0.0
        mean_ke = float(np.nanmean(ke)) if ke.size else float("nan")
    drift = slope * per_atom
    reasons = []
    if not finite:
        reasons.append("energy became NaN/infinite" if total.size >= 2 else "fewer than 2 energy samples")
    else:
        if not abs(drift) <= max_abs_drift_mev_per_atom_per_ps:
            reasons.append(f"|drift| {abs(drift):.3g} > {max_abs_drift_mev_per_atom_per_ps} meV/atom/ps")
        if max_relative_drift_percent is not None and not abs(relative) <= max_relative_drift_percent:
            reasons.append(f"|relative drift| {abs(relative):.3g}% > {max_relative_drift_percent}% of <KE>")
    temperature = None
    if degrees_of_freedom and np.isfinite(mean_ke):
        temperature = 2.0 * mean_ke / (degrees_of_freedom * BOLTZMANN_KJ_PER_MOL_K)
    return DriftAnalysis(
        drift_kj_per_mol_per_ps=slope, drift_mev_per_atom_per_ps=drift, relative_drift_percent=relative,
        total_energy_std_kj_per_mol=std, total_energy_std_mev_per_atom=std * per_atom,
        max_excursion_kj_per_mol=excursion, max_excursion_mev_per_atom=excursion * per_atom,
        mean_kinetic_kj_per_mol=mean_ke, mean_temperature_k=temperature, duration_ps=duration,
        n_samples=int(t.size), finite=finite, passed=not reasons, reasons=reasons,
        max_abs_drift_mev_per_atom_per_ps=float(max_abs_drift_mev_per_atom_per_ps),
        max_relative_drift_percent=max_relative_drift_percent)


# -- accuracy -----------------------------------------------------------------------------------

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
    return training_metrics.angles_deg(_t(pred).reshape(-1, 3), _t(target).reshape(-1, 3), min_force).numpy()


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
        "r2": training_metrics.force_r2(_t(p), _t(t)),
        "mae": training_metrics.force_mae(_t(p), _t(t)),
        "rmse": training_metrics.force_rmse(_t(p), _t(t)),
        "angle_deg": float(angles.mean()) if angles.size else float("nan"),
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
    per_atom = err / n * 1000.0
    corrected = np.empty_like(err)
    offsets = {}
    for name in dict.fromkeys(g.tolist()):
        mask = g == name
        shift = err[mask].mean()
        corrected[mask] = err[mask] - shift
        offsets[str(name)] = float((err[mask] / n[mask]).mean() * 1000.0)
    corrected_per_atom = corrected / n * 1000.0
    return {
        "mae_mev_per_atom": training_metrics.energy_mae_per_atom(_t(p), _t(t), _t(n)) * 1000.0,
        "rmse_mev_per_atom": float(np.sqrt((per_atom ** 2).mean())),
        "max_mev_per_atom": float(np.abs(per_atom).max()),
        "offset_corrected_mae_mev_per_atom": float(np.abs(corrected_per_atom).mean()),
        "offset_corrected_rmse_mev_per_atom": float(np.sqrt((corrected_per_atom ** 2).mean())),
        "offsets_mev_per_atom": offsets,
        "n_structures": int(len(p)),
    }


def kj_per_mol_to_mev_per_atom(value_kj_per_mol: float, n_atoms: int) -> float:
    """Convert an energy in kJ/mol to meV per atom."""
    return float(value_kj_per_mol) * KJ_PER_MOL_TO_MEV / max(int(n_atoms), 1)
