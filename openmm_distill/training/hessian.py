"""Hessian-row distillation (Amin, Raja, Krishnapriyan, ICLR 2025), optional.

Besides energies and forces, the student can match random rows of the
teacher's Hessian ``H_kj = d^2 E / dx_k dx_j`` (eV/Angstrom^2): second-order
information about the potential-energy surface that sharpens forces around
the sampled geometries. Per training step, ``n`` structures of the batch get
one random row ``k`` each (a Cartesian degree of freedom of one atom).

Teacher rows come from the dataset when it carries them (batch keys
``hessian_row_index`` LongTensor [B], the flat index ``3 * atom + component``
or -1, and ``hessian_row`` [N, 3] eV/Angstrom^2), otherwise from central
finite differences of teacher forces computed on the fly,

    H_k. = -(F(x + h e_k) - F(x - h e_k)) / (2 h),

two teacher calls per row. Student rows come from a double backward pass:
with ``g = dE/dx`` built with ``create_graph=True``, row ``k`` is
``d g_k / dx``. Structures in a batch do not interact, so one backward pass
of ``sum_s g_{k_s}(s)`` gives every selected structure's row at once.

The loss is the relative squared error ``sum (H_pred - H_teacher)^2 / sum H_teacher^2``
over the selected rows: Hessian elements span two orders of magnitude (soft
torsions to stiff X-H stretches, up to ~50 eV/Angstrom^2), so a relative
measure keeps the term O(1) whatever the molecules.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def sample_rows(n_atoms: Tensor, n_select: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """Pick structures and one Hessian row each.

    Parameters
    ----------
    n_atoms : LongTensor [B]
    n_select : int
        Structures to pick (at most B), without replacement.
    generator : torch.Generator (CPU)
        Source of randomness (seeded per epoch by the trainer for exact resume).

    Returns
    -------
    (structures, rows) : LongTensor [S], LongTensor [S]
        Structure indices within the batch and flat row indices ``3 * atom + component``.
    """
    n_atoms = n_atoms.cpu()
    b = int(n_atoms.shape[0])
    s = min(int(n_select), b)
    structures = torch.randperm(b, generator=generator)[:s].sort().values
    u = torch.rand(s, generator=generator, dtype=torch.float64)
    rows = torch.minimum((u * 3 * n_atoms[structures].to(torch.float64)).to(torch.long), 3 * n_atoms[structures] - 1)
    return structures, rows


def teacher_hessian_row(teacher, atomic_numbers: np.ndarray, positions: np.ndarray, row: int, step: float = 0.005,
                        box: Optional[np.ndarray] = None, charge: Optional[int] = None) -> np.ndarray:
    """One row of the teacher Hessian by central differences of its forces.

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher
    atomic_numbers : (N,) int
    positions : (N, 3) float, Angstrom
    row : int
        Flat degree of freedom ``3 * atom + component``.
    step : float
        Displacement, Angstrom (5e-3 balances truncation and SCF noise for GFN2-xTB).
    box : (3, 3) float, Angstrom, optional
    charge : int, optional

    Returns
    -------
    numpy.ndarray (N, 3)
        ``H[row, :]`` reshaped per atom, eV/Angstrom^2.
    """
    pos = np.asarray(positions, dtype=np.float64)
    atom, comp = divmod(int(row), 3)
    plus, minus = pos.copy(), pos.copy()
    plus[atom, comp] += step
    minus[atom, comp] -= step
    f_plus = teacher.compute(atomic_numbers, plus, box, charge=charge).forces
    f_minus = teacher.compute(atomic_numbers, minus, box, charge=charge).forces
    return -(f_plus - f_minus) / (2.0 * step)


def teacher_rows_for_batch(teacher, batch: dict, structures: Tensor, rows: Tensor, step: float) -> Tensor:
    """Teacher rows for the selected structures of a collated batch, stacked as [sum n_s, 3] (float64, CPU)."""
    z = batch["atomic_numbers"].cpu().numpy()
    pos = batch["positions"].detach().cpu().to(torch.float64).numpy()
    offsets = _offsets(batch["n_atoms"].cpu())
    boxes = batch.get("box")
    charges = batch.get("charge")
    out = []
    for s, k in zip(structures.tolist(), rows.tolist()):
        a, n = int(offsets[s]), int(batch["n_atoms"][s])
        box = None if boxes is None else boxes[s].detach().cpu().to(torch.float64).numpy()
        charge = None if charges is None else int(charges[s])
        out.append(torch.from_numpy(teacher_hessian_row(teacher, z[a:a + n], pos[a:a + n], k, step, box, charge)))
    return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.float64)


def dataset_rows_for_batch(batch: dict, structures: Tensor) -> Tuple[Tensor, Tensor]:
    """Rows stored in the dataset for the selected structures: (rows LongTensor [S], values [sum n_s, 3])."""
    idx = batch["hessian_row_index"].cpu()
    offsets = _offsets(batch["n_atoms"].cpu())
    rows = idx[structures]
    values = [batch["hessian_row"][int(offsets[s]):int(offsets[s]) + int(batch["n_atoms"][s])]
              for s in structures.tolist()]
    return rows, torch.cat(values) if values else torch.zeros(0, 3)


def _offsets(n_atoms: Tensor) -> Tensor:
    return torch.cumsum(n_atoms, 0) - n_atoms


def student_hessian_rows(grad: Tensor, positions: Tensor, n_atoms: Tensor, structures: Tensor,
                         rows: Tensor) -> Tensor:
    """Student Hessian rows by double backward.

    Parameters
    ----------
    grad : Tensor [N, 3]
        ``dE/dx`` (eV/Angstrom), computed with ``create_graph=True``.
    positions : Tensor [N, 3]
        The leaf the gradient was taken with respect to, Angstrom.
    n_atoms : LongTensor [B]
    structures, rows : LongTensor [S]
        From :func:`sample_rows`.

    Returns
    -------
    Tensor [sum n_s, 3]
        The selected rows (eV/Angstrom^2), structures in the order given,
        with a graph for training (``create_graph=True``).
    """
    offsets = _offsets(n_atoms.to(grad.device))
    structures = structures.to(grad.device)
    rows = rows.to(grad.device)
    atoms = offsets[structures] + torch.div(rows, 3, rounding_mode="floor")
    comps = torch.remainder(rows, 3)
    selected = grad[atoms, comps].sum()
    (h,) = torch.autograd.grad(selected, positions, create_graph=True)
    parts = [h[int(offsets[s]):int(offsets[s]) + int(n_atoms[s])] for s in structures.tolist()]
    return torch.cat(parts)


def hessian_row_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Relative squared error ``sum (pred - target)^2 / sum target^2`` (dimensionless, 0-d)."""
    target = target.to(device=pred.device, dtype=pred.dtype)
    denom = (target * target).sum().clamp_min(1e-12)
    return ((pred - target) ** 2).sum() / denom


def check_teacher_matches_labels(teacher, atomic_numbers: np.ndarray, positions: np.ndarray, forces: np.ndarray,
                                 box: Optional[np.ndarray] = None, charge: Optional[int] = None,
                                 tolerance: float = 1e-3) -> float:
    """Max |F_teacher - F_dataset| (eV/Angstrom) on one structure; raises if above ``tolerance``.

    Finite-difference Hessian rows from a teacher other than the one that
    labelled the data would teach the student a different surface; this
    catches a wrong teacher or wrong teacher settings before training starts.
    """
    f = teacher.compute(atomic_numbers, positions, box, charge=charge).forces
    diff = float(np.max(np.abs(f - np.asarray(forces))))
    if diff > tolerance:
        from openmm_distill.errors import ConfigError

        raise ConfigError(
            f"the Hessian teacher {teacher!r} does not reproduce the dataset's forces (max difference "
            f"{diff:.3g} eV/Angstrom > {tolerance}); set loss.hessian_teacher / loss.hessian_teacher_options "
            "to the teacher and settings that labelled the data"
        )
    return diff

