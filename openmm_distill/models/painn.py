"""PaiNN student (Schuett, Unke, Gastegger, ICML 2021), TorchScript-safe.

Rotationally equivariant message passing with scalar features ``s [N, F]`` and
vector features ``v [N, 3, F]``. Energy is a sum of atomic contributions;
forces are its negative gradient (taken by the caller with autograd), so the
student conserves energy by construction.

Units: positions and cutoff in Angstrom, energies in eV (the teacher's units).
The per-element reference energies and the energy scale/shift are buffers set
from data by the trainer; ``E = sum_i (scale * e_i + shift + E_ref[Z_i])``.

Layer layout: every interaction has a message block; every interaction but the
last also has an update block, and the last message block produces scalars
only. After the last message nothing reads the vector features, so computing
them would be wasted work. With hidden 128 and 3 interactions this gives about
430K parameters, the size of the original project's student.
"""
import math
from typing import List

import torch
from torch import Tensor, nn

from openmm_distill.errors import ConfigError


class CosineCutoff(nn.Module):
    """f(r) = (cos(pi r / rc) + 1) / 2 for r < rc, else 0: value and slope vanish at rc."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, r: Tensor) -> Tensor:
        f = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        return f * (r < self.cutoff).to(r.dtype)


class SincRadialBasis(nn.Module):
    """sin(n pi r / rc) / r, n = 1..K (PaiNN's radial basis)."""

    def __init__(self, n_rbf: int, cutoff: float):
        super().__init__()
        self.register_buffer("freqs", torch.arange(1, n_rbf + 1, dtype=torch.float32) * math.pi / cutoff)

    def forward(self, r: Tensor) -> Tensor:
        r = r.unsqueeze(-1)
        return torch.sin(self.freqs * r) / r


class MessageBlock(nn.Module):
    def __init__(self, hidden: int, with_vectors: bool, first: bool):
        super().__init__()
        self.hidden = hidden
        self.with_vectors = with_vectors
        # In the first layer v = 0, so the v_j term of the vector message vanishes; skip it.
        self.first = first
        self.n_out = 3 * hidden if with_vectors else hidden
        self.phi = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, self.n_out))

    def forward(self, s: Tensor, v: Tensor, i: Tensor, j: Tensor, g: Tensor, filter_weight: Tensor, unit: Tensor):
        # g: radial features times the cutoff function [E, K]; filter_weight: this
        # layer's rows of the shared filter matrix [n_out, K], in the order s, vv, vs.
        # Each part is filtered and gathered on its own so that no [E, n_out] tensor
        # is split (its backward would concatenate E-sized gradients: ~15 % of a call).
        # index_select gathers ~3x faster than advanced indexing on CPU. The Tensor method, not
        # torch.index_select: torch_geometric (imported by SevenNet) replaces the latter with a Python
        # wrapper that TorchScript would then compile into the student.
        h = self.hidden
        phi = self.phi(s)
        n = s.shape[0]
        ds_e = phi[:, :h].index_select(0, j) * nn.functional.linear(g, filter_weight[:h])
        if self.with_vectors:
            dvs = phi[:, 2 * h:].index_select(0, j) * nn.functional.linear(g, filter_weight[2 * h:])
            dv_e = dvs.unsqueeze(1) * unit.unsqueeze(-1)
            if not self.first:
                dvv = phi[:, h:2 * h].index_select(0, j) * nn.functional.linear(g, filter_weight[h:2 * h])
                dv_e = dv_e + dvv.unsqueeze(1) * v.index_select(0, j)
            v = v + torch.zeros_like(v).index_add_(0, i, dv_e)
        ds = torch.zeros((n, h), dtype=s.dtype, device=s.device).index_add_(0, i, ds_e)
        return s + ds, v


class UpdateBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.uv = nn.Linear(hidden, 2 * hidden, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    def forward(self, s: Tensor, v: Tensor):
        uv = self.uv(v)
        u, w = torch.split(uv, self.hidden, dim=-1)
        # Small epsilon keeps the norm's gradient finite at v = 0 (first layer).
        w_norm = torch.sqrt((w * w).sum(dim=1) + 1e-8)
        a = self.mlp(torch.cat([s, w_norm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, self.hidden, dim=-1)
        dv = a_vv.unsqueeze(1) * u
        ds = a_sv * (u * w).sum(dim=1) + a_ss
        return s + ds, v + dv


class PaiNN(nn.Module):
    """PaiNN energy model over a neighbour list.

    Parameters
    ----------
    elements : list of int
        Atomic numbers the student supports (its embedding rows, in this order).
    hidden : int
        Feature width F.
    n_interactions : int
        Number of message passing layers.
    cutoff : float
        Radial cutoff, Angstrom.
    n_rbf : int
        Number of radial basis functions.
    """

    def __init__(self, elements: List[int], hidden: int = 128, n_interactions: int = 3, cutoff: float = 5.0, n_rbf: int = 20):
        super().__init__()
        if n_interactions < 1:
            raise ConfigError(f"n_interactions must be >= 1, got {n_interactions}")
        self.elements: List[int] = [int(z) for z in elements]
        self.hidden = hidden
        self.n_interactions = n_interactions
        self.cutoff = float(cutoff)
        self.n_rbf = n_rbf
        n_el = len(self.elements)
        self.embedding = nn.Embedding(n_el, hidden)
        self.rbf = SincRadialBasis(n_rbf, cutoff)
        self.fcut = CosineCutoff(cutoff)
        self.messages = nn.ModuleList(
            [MessageBlock(hidden, with_vectors=(k < n_interactions - 1), first=(k == 0))
             for k in range(n_interactions)]
        )
        self.updates = nn.ModuleList([UpdateBlock(hidden) for _ in range(n_interactions - 1)])
        # Radial filters of all layers in one matrix product. No bias: the filter
        # acts on rbf * f_cut, so it vanishes smoothly at the cutoff by construction.
        self.filter_sizes: List[int] = [m.n_out for m in self.messages]
        self.filters = nn.Linear(n_rbf, sum(self.filter_sizes), bias=False)
        self.readout = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, 1))
        # Start from E = sum of reference energies: training then begins at the
        # least-squares energy fit instead of O(1 eV/atom) random offsets.
        nn.init.zeros_(self.readout[2].weight)
        nn.init.zeros_(self.readout[2].bias)
        # Energy model around the network output, set from data by the trainer (eV).
        self.register_buffer("atomic_reference_energy", torch.zeros(n_el, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("energy_shift", torch.zeros((), dtype=torch.float64))
        # Atomic number -> row of the embedding, -1 for unsupported elements.
        z_to_species = torch.full((max(self.elements) + 1,), -1, dtype=torch.long)
        for k, z in enumerate(self.elements):
            z_to_species[z] = k
        self.register_buffer("z_to_species", z_to_species)

    def species_of(self, atomic_numbers: Tensor) -> Tensor:
        """Embedding rows for atomic numbers; raises on elements the student does not support."""
        z = atomic_numbers.to(torch.long)
        ok = (z >= 0) & (z < self.z_to_species.shape[0])
        species = torch.full_like(z, -1)
        species[ok] = self.z_to_species[z[ok]]
        if bool((species < 0).any()):
            bad: List[int] = torch.unique(z[species < 0]).tolist()
            raise ValueError(
                "unsupported atomic numbers " + str(bad) + "; this student supports " + str(self.elements)
            )
        return species

    def atomic_energies(self, species: Tensor, positions: Tensor, edge_index: Tensor, shifts: Tensor) -> Tensor:
        """Per-atom energies [N] in eV (network term scaled and shifted, plus reference energies)."""
        i = edge_index[0]
        j = edge_index[1]
        vec = positions.index_select(0, j) - positions.index_select(0, i) + shifts
        return self.atomic_energies_from_vectors(species, vec, edge_index)

    def atomic_energies_from_vectors(self, species: Tensor, vec: Tensor, edge_index: Tensor) -> Tensor:
        """Per-atom energies [N] in eV from the pair vectors ``vec[E, 3]`` (Angstrom, atom i to its neighbour j,
        minimum image). The deployed module computes them in the caller's precision and casts only the vectors."""
        i = edge_index[0]
        j = edge_index[1]
        r = torch.sqrt((vec * vec).sum(dim=-1))
        unit = vec / r.unsqueeze(-1)
        g = self.rbf(r) * self.fcut(r).unsqueeze(-1)
        filter_weights = torch.split(self.filters.weight, self.filter_sizes, dim=0)
        n = species.shape[0]
        s = self.embedding(species)
        v = torch.zeros((n, 3, self.hidden), dtype=s.dtype, device=s.device)
        for k, message in enumerate(self.messages):
            s, v = message(s, v, i, j, g, filter_weights[k], unit)
            # TorchScript cannot index a ModuleList with a variable, so updates run inside an enumerate.
            for m, update in enumerate(self.updates):
                if m == k:
                    s, v = update(s, v)
        e = self.readout(s).squeeze(-1).to(torch.float64)
        return e * self.energy_scale + self.energy_shift + self.atomic_reference_energy[species]

    def forward(self, species: Tensor, positions: Tensor, edge_index: Tensor, shifts: Tensor, batch: Tensor, n_structures: int) -> Tensor:
        """Energies [n_structures] in eV (float64) for atoms grouped by ``batch``."""
        e = self.atomic_energies(species, positions, edge_index, shifts)
        return torch.zeros(n_structures, dtype=e.dtype, device=e.device).index_add_(0, batch, e)
