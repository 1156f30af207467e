"""The deployed student: the module that OpenMM (TorchForce or PythonForce) calls.

``forward(positions, box_vectors)`` takes positions in nm (all particles of the
System) and optionally the periodic box vectors in nm, and returns the potential
energy in kJ/mol. Atomic numbers and the subset of particles the student covers
are buffers, set once per System with :meth:`DeployedStudent.set_atoms`; every
decision (neighbour strategy, dtype, unit factors) is made in ``__init__`` so a
call does only arithmetic.
"""
from typing import List, Optional

import torch
from torch import Tensor, nn

from openmm_distill.models.neighbors import neighbor_list
from openmm_distill.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

# Energy bookkeeping buffers stay float64 whatever the network dtype: total
# energies of molecules are ~1e4-1e5 kJ/mol and float32 would round them.
_FLOAT64_BUFFERS = ("atomic_reference_energy", "energy_scale", "energy_shift")


def cast_model(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast parameters and floating buffers to ``dtype``, keeping the energy buffers float64."""
    # Keep the originals: casting them to float32 and back would round the reference energies.
    kept = {name: getattr(model, name).detach().clone().to(torch.float64) for name in _FLOAT64_BUFFERS}
    model = model.to(dtype)
    for name, value in kept.items():
        setattr(model, name, value)
    return model


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
        table = self.model.z_to_species
        inside = (z >= 0) & (z < table.shape[0])
        species = torch.full_like(z, -1)
        species[inside] = table[z[inside]]
        if bool((species < 0).any()):
            bad: List[int] = torch.unique(z[species < 0]).tolist()
            raise ValueError("atomic numbers " + str(bad) + " are not supported by this student; it supports "
                             + str(self.model.elements))
        self.species = species
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
        pos = positions.to(self.dtype) * self.nm_to_angstrom
        box: Optional[Tensor] = None
        if box_vectors is not None:
            box = box_vectors.to(self.dtype) * self.nm_to_angstrom
        edge_index, shifts = neighbor_list(pos, self.cutoff_angstrom, box, None, self.all_pairs_max_atoms)
        energy_ev = self.model.atomic_energies(self.species, pos, edge_index, shifts).sum()
        return energy_ev * self.ev_to_kj_per_mol
