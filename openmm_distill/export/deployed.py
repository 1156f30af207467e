"""The deployed student: the module that OpenMM (TorchForce or PythonForce) calls.

``forward(positions, box_vectors)`` takes positions in nm (all particles of the
System) and optionally the periodic box vectors in nm, and returns the potential
energy in kJ/mol. Atomic numbers and the subset of particles the student covers
are buffers, set once per System with :meth:`DeployedStudent.set_atoms`; every
decision (neighbour strategy, dtype, unit factors) is made in ``__init__`` so a
call does only arithmetic.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from openmm_distill.models.casting import cast_model
from openmm_distill.models.neighbors import neighbor_list
from openmm_distill.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM


class DeployedStudent(nn.Module):
    """OpenMM-facing wrapper around a student model (nm, kJ/mol outside; Angstrom, eV inside)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32, all_pairs_max_atoms: int = 256):
        super().__init__()
        self.model = cast_model(model, dtype)
        self.dtype = dtype
        self.cutoff_angstrom: float = float(model.cutoff)
        self.all_pairs_max_atoms = all_pairs_max_atoms
        self.nm_to_angstrom = NM_TO_ANGSTROM
        self.ev_to_kj_per_mol = EV_TO_KJ_PER_MOL
        self.register_buffer("species", torch.zeros(0, dtype=torch.long))
        self.register_buffer("atomic_numbers", torch.zeros(0, dtype=torch.long))
        # Particle indices of the ML atoms in the System; empty means "all particles".
        self.register_buffer("indices", torch.zeros(0, dtype=torch.long))

    @torch.jit.export
    def set_atoms(self, atomic_numbers: Tensor, indices: Optional[Tensor] = None) -> None:
        """Bind the student to a System's atoms (atomic numbers in particle order, optional subset)."""
        z = atomic_numbers.to(torch.long).to(self.z_device())
        # The student's own check (raises on an element it does not support).
        self.species = self.model.species_of(z)
        self.atomic_numbers = z
        if indices is None:
            self.indices = torch.zeros(0, dtype=torch.long, device=z.device)
        else:
            if indices.shape[0] != z.shape[0]:
                raise ValueError("indices and atomic_numbers must have the same length")
            self.indices = indices.to(torch.long).to(z.device)

    def z_device(self) -> torch.device:
        return self.model.z_to_species.device

    def forward(self, positions: Tensor, box_vectors: Optional[Tensor] = None) -> Tensor:
        if self.species.shape[0] == 0:
            raise RuntimeError("no atoms bound: call set_atoms(atomic_numbers, indices) before computing energies")
        if self.indices.shape[0] > 0:
            positions = positions[self.indices]
        # Neighbour search and pair vectors in the caller's precision (float64 from PythonForce, ASE and
        # OpenMM's double-precision platforms): absolute coordinates of a drifting or large system need
        # more digits than float32 has, their differences do not. Only the vectors go to the network's dtype.
        pos = positions * self.nm_to_angstrom
        box: Optional[Tensor] = None
        if box_vectors is not None:
            box = box_vectors.to(pos.dtype) * self.nm_to_angstrom
        edge_index, shifts = neighbor_list(pos, self.cutoff_angstrom, box, None, self.all_pairs_max_atoms)
        vectors = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shifts
        energy_ev = self.model.atomic_energies_from_vectors(self.species, vectors.to(self.dtype), edge_index).sum()
        return energy_ev * self.ev_to_kj_per_mol
