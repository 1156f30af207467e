"""Plain records passed between sampling, labelling and the HDF5 store.

Units everywhere: positions and box in Angstrom, energy in eV, forces in eV/Angstrom.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np


@dataclass
class Geometry:
    """One unlabelled structure produced by sampling (or given by the user).

    Attributes
    ----------
    key : str
        Stable, unique identifier, e.g. ``"ethanol/c0/md/500K/1"``; the same
        inputs and configuration always produce the same key. Resuming a job
        relies on it.
    molecule : str
        Molecule name (groups structures for splits and duplicate checks).
    atomic_numbers : numpy.ndarray of int, shape (N,)
    positions : numpy.ndarray of float64, shape (N, 3), Angstrom
    box : numpy.ndarray of float64, shape (3, 3), Angstrom, optional
        Periodic cell (row vectors); ``None`` for an isolated molecule.
    charge : int
        Total charge, elementary charges.
    smiles : str
        SMILES of the molecule, ``""`` when unknown.
    provenance : dict
        How the geometry was made: method, temperature, seed, conformer id, ...
        Stored as JSON per structure.
    energy, forces : optional
        A label already computed by the teacher while sampling (Langevin MD
        evaluates the teacher at every snapshot), reused instead of recomputed.
        eV and eV/Angstrom.
    """

    key: str
    molecule: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    box: Optional[np.ndarray] = None
    charge: int = 0
    smiles: str = ""
    provenance: Dict[str, Any] = field(default_factory=dict)
    energy: Optional[float] = None
    forces: Optional[np.ndarray] = None


@dataclass
class LabelledStructure:
    """One structure with its teacher label, as stored in a dataset.

    Attributes
    ----------
    key, molecule, smiles, charge, provenance
        As in :class:`Geometry`.
    atomic_numbers : numpy.ndarray of int, shape (N,)
    positions : numpy.ndarray of float64, shape (N, 3), Angstrom
    energy : float
        Total energy, eV.
    forces : numpy.ndarray of float64, shape (N, 3), eV/Angstrom
    box : numpy.ndarray of float64, shape (3, 3), Angstrom, optional
    index : int
        Position in the file (``-1`` before it is written).
    """

    key: str
    molecule: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    box: Optional[np.ndarray] = None
    charge: int = 0
    smiles: str = ""
    provenance: Dict[str, Any] = field(default_factory=dict)
    index: int = -1

    @property
    def n_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    def provenance_json(self) -> str:
        return json.dumps(self.provenance, sort_keys=True)


@dataclass(frozen=True)
class Failure:
    """A work item or structure that could not be labelled.

    Attributes
    ----------
    key : str
        The structure key, or the molecule name when sampling itself failed.
    reason : str
        Human-readable cause (the :class:`~openmm_distill.errors.TeacherError` message, ...).
    """

    key: str
    reason: str
