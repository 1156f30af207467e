"""Moving collated batches to the device and building their neighbour lists (Angstrom)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from openmm_distill.models import neighbor_list


def to_device(batch: Dict[str, Tensor], device: torch.device, dtype: torch.dtype) -> Dict[str, Tensor]:
    """Copy a batch to ``device``; floating per-atom arrays to ``dtype``, energies stay float64."""
    out = {}
    for key, value in batch.items():
        if not isinstance(value, Tensor):
            out[key] = value
        elif key == "energy":
            out[key] = value.to(device=device, dtype=torch.float64)
        elif value.is_floating_point():
            out[key] = value.to(device=device, dtype=dtype)
        else:
            out[key] = value.to(device=device)
    return out


def batch_neighbor_list(positions: Tensor, batch: Tensor, n_atoms: Tensor, cutoff: float,
                        boxes: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Neighbour list (full, ``edge_index [2, E]``, ``shifts [E, 3]``) of a batch of structures.

    Parameters
    ----------
    positions : Tensor [N, 3], Angstrom
    batch : LongTensor [N], structure of each atom
    n_atoms : LongTensor [B]
    cutoff : float, Angstrom
    boxes : Tensor [B, 3, 3] or None, Angstrom (row vectors, reduced form)

    Isolated molecules are searched together (pairs restricted to one
    structure); periodic structures one by one, each with its own box.
    """
    if boxes is None:
        return neighbor_list(positions, cutoff, None, batch)
    edges, shifts = [], []
    start = 0
    for s, n in enumerate(n_atoms.tolist()):
        e, sh = neighbor_list(positions[start:start + n], cutoff, boxes[s])
        edges.append(e + start)
        shifts.append(sh)
        start += n
    return torch.cat(edges, dim=1), torch.cat(shifts)
