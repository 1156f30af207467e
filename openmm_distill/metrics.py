"""Accuracy metrics of a student against its teacher.

Definitions (used by training logs, ``openmm-distill evaluate``, the protocols'
validation reports and the targets table, so one name means one number everywhere):

* energy MAE per atom: ``mean_s |E_pred(s) - E_teacher(s)| / n_atoms(s)``, reported in meV/atom;
* force MAE / RMSE: over all Cartesian components of all atoms, eV/Angstrom;
* force R^2: ``1 - SS_res / SS_tot`` over all components, with
  ``SS_tot = sum (F_teacher - mean(F_teacher))^2`` (one mean over all components);
* mean angular error: mean over atoms of the angle between the predicted and the
  teacher force vector, degrees, leaving out atoms whose teacher force is below
  ``min_force`` (their direction is noise).

:class:`MetricAccumulator` computes the same numbers over many batches from
running sums (float64), so a dataset never has to be held in memory.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor

from openmm_distill.units import MEV_PER_EV

DEFAULT_MIN_FORCE = 0.05  # eV/Angstrom, same default as loss.angular_min_force

METRIC_NAMES = (
    "energy_mae_mev_per_atom",
    "force_mae",
    "force_rmse",
    "force_r2",
    "angle_deg",
)
METRIC_UNITS = {
    "energy_mae_mev_per_atom": "meV/atom",
    "force_mae": "eV/Angstrom",
    "force_rmse": "eV/Angstrom",
    "force_r2": "",
    "angle_deg": "degrees",
}


def _f64(x: Tensor) -> Tensor:
    return x.detach().to(torch.float64)


def energy_mae_per_atom(pred: Tensor, target: Tensor, n_atoms: Tensor) -> float:
    """Mean absolute per-atom energy error, eV/atom (energies [B] in eV)."""
    return float((( _f64(pred) - _f64(target)).abs() / _f64(n_atoms)).mean())


def force_mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute force-component error, eV/Angstrom (forces [N, 3])."""
    return float((_f64(pred) - _f64(target)).abs().mean())


def force_rmse(pred: Tensor, target: Tensor) -> float:
    """Root mean squared force-component error, eV/Angstrom."""
    return float(torch.sqrt(((_f64(pred) - _f64(target)) ** 2).mean()))


def force_r2(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination ``1 - SS_res/SS_tot`` over all force components."""
    p, t = _f64(pred).reshape(-1), _f64(target).reshape(-1)
    ss_res = ((p - t) ** 2).sum()
    ss_tot = ((t - t.mean()) ** 2).sum()
    return float(1.0 - ss_res / ss_tot) if float(ss_tot) > 0 else float("nan")


def angles_deg(pred: Tensor, target: Tensor, min_force: float = DEFAULT_MIN_FORCE) -> Tensor:
    """Angles (degrees) between predicted and teacher force vectors of atoms with ``|F_teacher| >= min_force``."""
    p, t = _f64(pred), _f64(target)
    tn = torch.linalg.vector_norm(t, dim=-1)
    keep = tn >= min_force
    p, t, tn = p[keep], t[keep], tn[keep]
    pn = torch.linalg.vector_norm(p, dim=-1)
    cos = (p * t).sum(dim=-1) / (pn * tn).clamp_min(1e-300)
    # acos of |cos| > 1 from rounding would be NaN; a zero prediction counts as 90 degrees.
    cos = torch.where(pn > 0, cos.clamp(-1.0, 1.0), torch.zeros_like(cos))
    return torch.rad2deg(torch.acos(cos))


def mean_angular_error_deg(pred: Tensor, target: Tensor, min_force: float = DEFAULT_MIN_FORCE) -> float:
    """Mean angle between predicted and teacher forces, degrees (NaN when no atom qualifies)."""
    a = angles_deg(pred, target, min_force)
    return float(a.mean()) if a.numel() else float("nan")


class MetricAccumulator:
    """Running sums for the metrics above over many batches (float64).

    Examples
    --------
    >>> acc = MetricAccumulator()
    >>> acc.update(e_pred, e_ref, n_atoms, f_pred, f_ref)   # doctest: +SKIP
    >>> acc.compute()["force_r2"]                             # doctest: +SKIP
    """

    def __init__(self, min_force: float = DEFAULT_MIN_FORCE):
        self.min_force = float(min_force)
        self.n_structures = 0
        self.n_atoms = 0
        self.n_components = 0
        self.n_angles = 0
        self.sum_abs_e_per_atom = 0.0
        self.sum_abs_f = 0.0
        self.sum_sq_f = 0.0
        self.sum_t = 0.0
        self.sum_t2 = 0.0
        self.sum_angle = 0.0
        self._loss_sums: Dict[str, float] = {}
        self._loss_count = 0

    def update(self, pred_energy: Tensor, target_energy: Tensor, n_atoms: Tensor,
               pred_forces: Tensor, target_forces: Tensor) -> None:
        """Add a batch: energies [B] eV, atom counts [B], forces [N, 3] eV/Angstrom."""
        pe, te, na = _f64(pred_energy), _f64(target_energy), _f64(n_atoms)
        pf, tf = _f64(pred_forces), _f64(target_forces)
        self.n_structures += int(pe.numel())
        self.n_atoms += int(pf.shape[0])
        self.n_components += int(pf.numel())
        self.sum_abs_e_per_atom += float(((pe - te).abs() / na).sum())
        d = pf - tf
        self.sum_abs_f += float(d.abs().sum())
        self.sum_sq_f += float((d * d).sum())
        self.sum_t += float(tf.sum())
        self.sum_t2 += float((tf * tf).sum())
        a = angles_deg(pf, tf, self.min_force)
        self.n_angles += int(a.numel())
        self.sum_angle += float(a.sum())

    def merge(self, other: "MetricAccumulator") -> None:
        """Add another accumulator's structures (pooled metrics, e.g. over the molecules of one group)."""
        for name in ("n_structures", "n_atoms", "n_components", "n_angles", "sum_abs_e_per_atom", "sum_abs_f",
                     "sum_sq_f", "sum_t", "sum_t2", "sum_angle"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add_losses(self, losses: Dict[str, float]) -> None:
        """Add per-batch loss values (averaged per batch in :meth:`compute`)."""
        for k, v in losses.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + float(v)
        self._loss_count += 1

    def compute(self) -> Dict[str, float]:
        """Metrics (see the module docstring for names and units) plus mean batch losses."""
        nan = float("nan")
        n = self.n_components
        out: Dict[str, float] = {
            "energy_mae_mev_per_atom": (self.sum_abs_e_per_atom / self.n_structures * MEV_PER_EV)
            if self.n_structures else nan,
            "force_mae": self.sum_abs_f / n if n else nan,
            "force_rmse": math.sqrt(self.sum_sq_f / n) if n else nan,
            "force_r2": nan,
            "angle_deg": self.sum_angle / self.n_angles if self.n_angles else nan,
            "n_structures": float(self.n_structures),
        }
        if n:
            ss_tot = self.sum_t2 - self.sum_t * self.sum_t / n
            out["force_r2"] = 1.0 - self.sum_sq_f / ss_tot if ss_tot > 0 else nan
        for k, v in self._loss_sums.items():
            out[k] = v / self._loss_count
        return out
