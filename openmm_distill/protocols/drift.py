"""Energy conservation of an NVE run: the drift of the total energy, fitted, per atom, and judged.

The drift is the slope of a least-squares line through the total energy, in
meV/atom/ps (the ml-peg / MLIP Audit convention), with its size relative to
the mean kinetic energy (unlike % of the total energy, it does not depend on
the energy zero). Units: time ps, OpenMM energies kJ/mol, reported per atom in meV/atom.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

from openmm_distill.units import BOLTZMANN_KJ_PER_MOL_K, KJ_PER_MOL_TO_MEV


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
