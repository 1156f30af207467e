"""Per-element reference energies and the energy scale, fitted on the training set.

A teacher's total energy is dominated by a sum of per-element constants
(tens to thousands of eV per molecule); the network should only learn the
small remainder. The reference energies are the least-squares solution of

    E(s) ~= sum_Z  count_Z(s) * E_ref[Z]

over the training structures (a linear regression of energy on element
counts, no intercept). Elements absent from the training data get 0; when
the count matrix is rank deficient (e.g. a single molecule), the
minimum-norm solution is used, which still reproduces the mean energy of
every composition seen.

The student's energy is ``sum_i (scale * e_i + shift + E_ref[Z_i])``. We set

* ``shift`` = mean per-atom residual after the fit (eV; ~0 by construction), and
* ``scale`` = RMS of the training force components (eV/Angstrom, used as eV).

Why the force RMS and not the standard deviation of the per-atom energy
residual: for conformers of one or a few molecules the residual spread is
tiny (a few meV/atom) while forces are O(1) eV/Angstrom, and forces (the
gradient of the energy) are what the student must mostly match. With
``scale`` = force RMS the network's raw outputs and their gradients
(length scale ~1 Angstrom) are of order 1 at initialisation, the usual
setting for a well-conditioned start (NequIP and MACE make the same choice).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from openmm_distill.errors import ConfigError, UnsupportedElementError


def element_counts(atomic_numbers: np.ndarray, n_atoms: np.ndarray, elements: Sequence[int]) -> np.ndarray:
    """Count matrix ``[B, len(elements)]`` for ragged structures.

    Parameters
    ----------
    atomic_numbers : numpy.ndarray of int, shape (total_atoms,)
        All structures concatenated.
    n_atoms : numpy.ndarray of int, shape (B,)
        Atoms per structure, in the same order.
    elements : sequence of int
        Column order (atomic numbers).

    Raises
    ------
    ValueError
        If a structure contains an element not in ``elements``.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    n_atoms = np.asarray(n_atoms, dtype=np.int64)
    if int(n_atoms.sum()) != z.shape[0]:
        raise ValueError(f"n_atoms sums to {int(n_atoms.sum())} but there are {z.shape[0]} atomic numbers")
    column = {int(e): k for k, e in enumerate(elements)}
    missing = sorted(set(np.unique(z).tolist()) - set(column))
    if missing:
        raise UnsupportedElementError(f"atomic numbers {missing} are not among the student's elements {list(elements)}")
    cols = np.array([column[int(x)] for x in z], dtype=np.int64) if z.size else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(n_atoms)), n_atoms)
    counts = np.zeros((len(n_atoms), len(elements)), dtype=np.float64)
    np.add.at(counts, (rows, cols), 1.0)
    return counts


def fit_reference_energies(counts: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Least-squares per-element energies, eV.

    Parameters
    ----------
    counts : numpy.ndarray, shape (B, n_elements)
        Element counts per structure (see :func:`element_counts`).
    energies : numpy.ndarray, shape (B,)
        Total energies, eV.

    Returns
    -------
    numpy.ndarray, shape (n_elements,)
        Minimum-norm least-squares solution; 0 for elements that never occur.
    """
    counts = np.asarray(counts, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if counts.shape[0] != energies.shape[0]:
        raise ValueError(f"{counts.shape[0]} count rows but {energies.shape[0]} energies")
    if counts.shape[0] == 0:
        raise ConfigError("cannot fit reference energies on zero structures")
    present = counts.sum(axis=0) > 0
    ref = np.zeros(counts.shape[1], dtype=np.float64)
    solution, *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    ref[present] = solution
    return ref


@dataclass
class EnergyModel:
    """The data-derived energy bookkeeping of a student.

    Attributes
    ----------
    elements : list of int
        Atomic numbers, in the student's embedding order.
    reference : numpy.ndarray (n_elements,)
        Per-element reference energies, eV.
    shift : float
        Per-atom energy shift, eV.
    scale : float
        Scale of the network's per-atom output, eV (the RMS training force, eV/Angstrom).
    residual_std : float
        Standard deviation of the per-atom energy residual after the fit, eV/atom (for the log).
    force_rms : float
        RMS of the training force components, eV/Angstrom.
    """

    elements: List[int]
    reference: np.ndarray
    shift: float
    scale: float
    residual_std: float
    force_rms: float

    def as_dict(self) -> Dict[str, object]:
        return {
            "elements": list(self.elements),
            "reference_energies_ev": [float(x) for x in self.reference],
            "energy_shift_ev": self.shift,
            "energy_scale_ev": self.scale,
            "residual_std_ev_per_atom": self.residual_std,
            "force_rms_ev_per_angstrom": self.force_rms,
        }


def energy_model_of(model: nn.Module, force_rms: float = float("nan")) -> EnergyModel:
    """The energy model already in a student's buffers (a fine-tuned student keeps its own)."""
    return EnergyModel(
        elements=[int(e) for e in model.elements],
        reference=model.atomic_reference_energy.detach().cpu().double().numpy().copy(),
        shift=float(model.energy_shift),
        scale=float(model.energy_scale),
        residual_std=float("nan"),
        force_rms=float(force_rms),
    )


def fit_energy_model(
    atomic_numbers: np.ndarray,
    n_atoms: np.ndarray,
    energies: np.ndarray,
    forces: np.ndarray,
    elements: Sequence[int],
) -> EnergyModel:
    """Fit reference energies, shift and scale on training data.

    Parameters
    ----------
    atomic_numbers : (total_atoms,) int; n_atoms : (B,) int
    energies : (B,) float, eV
    forces : (total_atoms, 3) float, eV/Angstrom
    elements : atomic numbers of the student, embedding order
    """
    counts = element_counts(atomic_numbers, n_atoms, elements)
    energies = np.asarray(energies, dtype=np.float64)
    ref = fit_reference_energies(counts, energies)
    per_atom = (energies - counts @ ref) / np.asarray(n_atoms, dtype=np.float64)
    forces = np.asarray(forces, dtype=np.float64)
    force_rms = float(np.sqrt(np.mean(forces * forces))) if forces.size else 0.0
    # A dataset of relaxed structures only (all forces ~0) still needs a usable scale.
    scale = force_rms if force_rms > 1e-6 else max(float(per_atom.std()), 1e-2)
    return EnergyModel(
        elements=[int(e) for e in elements],
        reference=ref,
        shift=float(per_atom.mean()),
        scale=scale,
        residual_std=float(per_atom.std()),
        force_rms=force_rms,
    )


def apply_energy_model(model: nn.Module, fit: EnergyModel) -> None:
    """Write ``fit`` into the student's float64 buffers (``atomic_reference_energy``, ``energy_scale``, ``energy_shift``)."""
    if list(model.elements) != list(fit.elements):
        raise UnsupportedElementError(f"energy model is for elements {fit.elements}, the student has {list(model.elements)}")
    with torch.no_grad():
        model.atomic_reference_energy.copy_(torch.as_tensor(fit.reference, dtype=torch.float64))
        model.energy_scale.fill_(float(fit.scale))
        model.energy_shift.fill_(float(fit.shift))
