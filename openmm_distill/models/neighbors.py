"""Neighbour search, TorchScript-safe, in Angstrom.

Two strategies behind one function, :func:`neighbor_list`:

* all pairs, O(N^2), for small systems (and for batches of small molecules in
  training, where pairs are restricted to atoms of the same structure);
* a cell list, O(N), above ``all_pairs_max_atoms`` atoms: atoms are binned into
  cells at least one cutoff wide (in fractional coordinates, so triclinic boxes
  work) and each atom looks only at the 27 surrounding cells.

Both return a *full* list (i->j and j->i) as ``edge_index[2, E]`` plus the
Cartesian shift ``shifts[E, 3]`` to add to ``positions[j] - positions[i]`` to get
the minimum-image displacement. The search works on detached positions; the model
recomputes displacements from ``positions`` so forces flow through them.

Periodic boxes must be in OpenMM's reduced form (a along x, b in the xy plane,
``a_x >= 2|b_x|``, ...) and at least twice the cutoff wide, so that minimum image
is exact; :func:`openmm_distill.openmm_integration.checks.check_box` enforces this before any
OpenMM Context exists.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def minimum_image(displacement: Tensor, box: Tensor) -> Tensor:
    """Shift that brings each displacement [E, 3] to its minimum image in a reduced-form box [3, 3] (rows = vectors).

    The image counts go through an integer tensor so that the shift never depends on
    the positions in autograd's eyes. ``detach()`` alone is not enough: openmm-torch
    freezes the module (``torch::jit::freeze``), which drops ``detach`` calls, and the
    backward pass then ran through every candidate pair of the cell list (~50 ms per
    MD step at 1,000 atoms for the small students, for gradients that are zero).
    """
    shift = torch.zeros_like(displacement)
    d = displacement
    # OpenMM's order for reduced triclinic boxes: c, then b, then a.
    for k in [2, 1, 0]:
        n = torch.round(d[:, k] / box[k, k]).to(torch.long).to(d.dtype)
        s = -n.unsqueeze(1) * box[k].unsqueeze(0)
        d = d + s
        shift = shift + s
    return shift


def all_pairs(
    positions: Tensor, cutoff: float, box: Optional[Tensor] = None, batch: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """All pairs within ``cutoff`` (Angstrom). ``batch[N]`` restricts pairs to one structure."""
    n = positions.shape[0]
    pos = positions.detach()
    ij = torch.triu_indices(n, n, 1, device=pos.device)
    i, j = ij[0], ij[1]
    if batch is not None:
        same = batch[i] == batch[j]
        i, j = i[same], j[same]
    d = pos[j] - pos[i]
    if box is not None:
        shift = minimum_image(d, box.detach().to(pos.dtype))
    else:
        shift = torch.zeros_like(d)
    keep = ((d + shift) ** 2).sum(dim=1) < cutoff * cutoff
    i, j, shift = i[keep], j[keep], shift[keep]
    edge_index = torch.stack([torch.cat([i, j]), torch.cat([j, i])])
    shifts = torch.cat([shift, -shift])
    return edge_index, shifts


def _cell_grid(extent_widths: Tensor, cutoff: float) -> Tensor:
    return torch.clamp(torch.floor(extent_widths / cutoff), min=1).to(torch.long)


def cell_list(positions: Tensor, cutoff: float, box: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Neighbour pairs within ``cutoff`` by binning atoms into cells, O(N).

    Along a periodic axis with fewer than 3 cells, each cell is visited once
    (minimum image picks the right copy, since the box is at least 2 cutoffs wide).
    """
    n = positions.shape[0]
    device = positions.device
    pos = positions.detach()
    periodic = box is not None
    if box is not None:
        b = box.detach().to(pos.dtype)
        inv = torch.linalg.inv(b)
        frac = pos @ inv
        frac = frac - torch.floor(frac)
        # Perpendicular widths of the cell: 1 / |reciprocal vector|.
        widths = 1.0 / torch.linalg.norm(inv, dim=0)
        grid = _cell_grid(widths, cutoff)
    else:
        b = torch.eye(3, dtype=pos.dtype, device=device)
        lo = pos.min(dim=0).values
        extent = pos.max(dim=0).values - lo
        grid = _cell_grid(extent, cutoff)
        frac = (pos - lo) / (grid.to(pos.dtype) * cutoff)
    # Cell index of each atom along each axis.
    cidx = torch.minimum(torch.floor(frac * grid.to(pos.dtype)).to(torch.long), grid - 1)
    cidx = torch.clamp(cidx, min=0)
    flat = (cidx[:, 0] * grid[1] + cidx[:, 1]) * grid[2] + cidx[:, 2]
    n_cells = int(grid.prod())
    order = torch.argsort(flat)
    sorted_cells = flat[order]
    counts = torch.bincount(flat, minlength=n_cells)
    max_per_cell = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n, device=device) - starts[sorted_cells]
    # Padded table: cell -> up to max_per_cell atom indices (-1 = empty).
    table = torch.full((n_cells, max_per_cell), -1, dtype=torch.long, device=device)
    table[sorted_cells, slot] = order

    # Offsets -1, 0, 1 along each axis; with fewer than 3 periodic cells along an
    # axis, -1 and +1 would name the same cell twice, so visit each cell once.
    axes: List[Tensor] = []
    for k in range(3):
        if periodic and int(grid[k]) < 3:
            axes.append(torch.arange(0, int(grid[k]), device=device))
        else:
            axes.append(torch.arange(-1, 2, device=device))
    stencil = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1).reshape(-1, 3)
    neighbor_cells = cidx.unsqueeze(1) + stencil.unsqueeze(0)  # [N, n_stencil, 3]
    if periodic:
        neighbor_cells = torch.remainder(neighbor_cells, grid)
        valid_cell = torch.ones(neighbor_cells.shape[:2], dtype=torch.bool, device=device)
    else:
        valid_cell = ((neighbor_cells >= 0) & (neighbor_cells < grid)).all(dim=2)
        neighbor_cells = torch.clamp(neighbor_cells, min=torch.zeros_like(grid), max=grid - 1)
    nflat = (neighbor_cells[..., 0] * grid[1] + neighbor_cells[..., 1]) * grid[2] + neighbor_cells[..., 2]
    cand = table[nflat]  # [N, n_stencil, M]
    cand = torch.where(valid_cell.unsqueeze(2), cand, torch.full_like(cand, -1))
    cand = cand.reshape(n, -1)
    i = torch.arange(n, device=device).unsqueeze(1).expand_as(cand)
    keep = (cand >= 0) & (cand != i)
    i, j = i[keep], cand[keep]
    d = pos[j] - pos[i]
    if periodic:
        shift = minimum_image(d, b)
    else:
        shift = torch.zeros_like(d)
    within = ((d + shift) ** 2).sum(dim=1) < cutoff * cutoff
    edge_index = torch.stack([i[within], j[within]])
    shifts = shift[within]
    return edge_index, shifts


def neighbor_list(
    positions: Tensor,
    cutoff: float,
    box: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    all_pairs_max_atoms: int = 256,
) -> Tuple[Tensor, Tensor]:
    """Neighbour pairs (full list) and minimum-image shifts, choosing the strategy by size.

    Parameters
    ----------
    positions : Tensor [N, 3], Angstrom
    cutoff : float, Angstrom
    box : Tensor [3, 3] or None, Angstrom, rows are box vectors (reduced form)
    batch : LongTensor [N] or None; several non-periodic structures in one call
    all_pairs_max_atoms : systems up to this size use all pairs
    """
    if batch is not None or positions.shape[0] <= all_pairs_max_atoms:
        return all_pairs(positions, cutoff, box, batch)
    return cell_list(positions, cutoff, box)
