"""Distillation losses: energy, force and angular terms (dimensionless).

Every term is made dimensionless by dividing errors by ``scale``, the
student's ``energy_scale`` buffer, which the trainer sets to the RMS of the
training forces (eV/Angstrom). With that choice a student that predicts zero
forces has a force loss of exactly 1 and an energy error of ``scale`` eV per
atom has an energy loss of 1, so the weights in the config compare terms of
similar size whatever the teacher's energy zero or the molecules' stiffness.

Why these default weights (energy 1, force 1, angular 0.1, see
:class:`~openmm_distill.training.config.LossConfig`) rather than the original
project's 1 / 100 / 10: with per-atom, scale-normalised energies, an energy
error of 5 meV/atom and a force error of 0.1 eV/Angstrom (the targets) give
squared errors that differ by a factor of ~400 already, so forces dominate
the loss even at equal weights; a factor 10 or 100 on top leaves the
per-molecule energy offsets, which forces cannot determine, unlearned. On 12
small molecules (tiny student, 250 epochs) force weight 10 gave a 5x larger
energy MAE than force weight 1 for the same force MAE; energy weight 4 cut
the energy MAE by another 3x at a ~15% higher force MAE (table in
``training/README.md``). The angular term keeps the original ratio to the
force term (1:10): it corrects directions on atoms with small forces, where
the squared error is small but the direction may be wrong; weighted like
the force term it made both errors worse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from torch import Tensor

# Norm (eV/Angstrom) added in quadrature to the student's force norm in the
# angular loss: the gradient of F/|F| grows like 1/|F|, and early in training
# predicted forces are close to zero. 1e-3 changes cos(angle) by < 1e-6 for
# forces above 1 eV/Angstrom.
ANGULAR_EPS = 1e-3


def energy_loss(pred: Tensor, target: Tensor, n_atoms: Tensor, scale: Tensor | float) -> Tensor:
    """Mean squared per-atom energy error in units of ``scale``.

    Parameters
    ----------
    pred, target : Tensor [B]
        Total energies, eV.
    n_atoms : Tensor [B]
        Atoms per structure.
    scale : float or 0-d Tensor
        Normalisation, eV (per atom).

    Returns
    -------
    Tensor
        0-d, dimensionless: ``mean(((pred - target) / n_atoms / scale) ** 2)``.
    """
    err = (pred - target.to(pred.dtype)) / n_atoms.to(pred.dtype) / scale
    return (err * err).mean()


def force_loss(pred: Tensor, target: Tensor, scale: Tensor | float) -> Tensor:
    """Mean squared force-component error in units of ``scale``.

    Parameters
    ----------
    pred, target : Tensor [N, 3]
        Forces, eV/Angstrom.
    scale : float or 0-d Tensor
        Normalisation, eV/Angstrom.

    Returns
    -------
    Tensor
        0-d, dimensionless: ``mean(((pred - target) / scale) ** 2)`` over all components.
    """
    err = (pred - target.to(pred.dtype)) / scale
    return (err * err).mean()


def cosine_per_atom(pred: Tensor, target: Tensor, eps: float = ANGULAR_EPS) -> Tensor:
    """cos(angle) between predicted and teacher force vectors per atom, [N].

    ``eps`` (eV/Angstrom) regularises the predicted norm only; teacher forces
    below a threshold are excluded by the callers instead.
    """
    target = target.to(pred.dtype)
    dot = (pred * target).sum(dim=-1)
    pred_norm = torch.sqrt((pred * pred).sum(dim=-1) + eps * eps)
    target_norm = torch.linalg.vector_norm(target, dim=-1).clamp_min(1e-12)
    return dot / (pred_norm * target_norm)


def angular_mask(target: Tensor, min_force: float) -> Tensor:
    """Atoms whose teacher force norm (eV/Angstrom) is at least ``min_force``, [N] bool."""
    return torch.linalg.vector_norm(target, dim=-1) >= min_force


def angular_loss(pred: Tensor, target: Tensor, min_force: float = 0.05) -> Tensor:
    """Mean of ``1 - cos(angle)`` between predicted and teacher forces.

    Parameters
    ----------
    pred, target : Tensor [N, 3]
        Forces, eV/Angstrom.
    min_force : float
        Atoms with a teacher force norm below this (eV/Angstrom) are ignored:
        near-zero forces have a meaningless direction.

    Returns
    -------
    Tensor
        0-d, in [0, 2]; 0 when no atom passes the threshold.
    """
    mask = angular_mask(target, min_force)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    cos = cosine_per_atom(pred[mask], target[mask])
    return (1.0 - cos).mean()


@dataclass
class LossTerms:
    """Weighted total and the unweighted terms of one batch (0-d tensors)."""

    total: Tensor
    terms: Dict[str, Tensor] = field(default_factory=dict)

    def detached(self) -> Dict[str, float]:
        """Python floats of the total and every term, for logging."""
        out = {"loss": float(self.total.detach())}
        out.update({f"{k}_loss": float(v.detach()) for k, v in self.terms.items()})
        return out


def distillation_loss(
    pred_energy: Tensor,
    target_energy: Tensor,
    n_atoms: Tensor,
    pred_forces: Tensor,
    target_forces: Tensor,
    scale: Tensor | float,
    *,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    angular_weight: float = 0.1,
    angular_min_force: float = 0.05,
    hessian: Optional[Tensor] = None,
    hessian_weight: float = 0.0,
) -> LossTerms:
    """Weighted sum of the energy, force and angular terms (and a precomputed Hessian term).

    Units of the inputs as in :func:`energy_loss`, :func:`force_loss` and
    :func:`angular_loss`; ``hessian`` is a dimensionless 0-d tensor from
    :func:`openmm_distill.training.hessian.hessian_row_loss`. Terms with
    weight 0 are still reported (for the logs) but cost no backward pass.
    """
    terms = {
        "energy": energy_loss(pred_energy, target_energy, n_atoms, scale),
        "force": force_loss(pred_forces, target_forces, scale),
        "angular": angular_loss(pred_forces, target_forces, angular_min_force),
    }
    total = (energy_weight * terms["energy"] + force_weight * terms["force"].to(terms["energy"].dtype)
             + angular_weight * terms["angular"].to(terms["energy"].dtype))
    if hessian is not None:
        terms["hessian"] = hessian
        total = total + hessian_weight * hessian.to(total.dtype)
    return LossTerms(total=total, terms=terms)
