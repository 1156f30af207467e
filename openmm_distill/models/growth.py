"""Widen a trained PaiNN student without changing what it computes.

A student at its capacity (issue #15: ``tiny``) learns more only with more parameters; training
a wider one from scratch throws away every round it was trained through. :func:`widen` instead
builds the wider network with the trained weights in place and the new feature channels added
beside them: the new channels get the usual random initialisation (so they carry signal and
learn), and every weight from a new channel into an old one is zero, so the old channels, and
with them the energy, are exactly those of the trained student until training moves those
zeros. (Net2Net, Chen et al., ICLR 2016, widens by copying units instead; zeros keep the
function exactly without the rescaling copies need.)
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from openmm_distill.errors import ConfigError
from openmm_distill.models.painn import PaiNN


def _channel_map(old_size: int, new_size: int, old_hidden: int, new_hidden: int) -> torch.Tensor:
    """For each index of a widened axis, the index it had in the narrow student (-1: a new channel).

    A feature axis is made of blocks of ``hidden`` channels (the ``s | vv | vs`` parts of a message, the
    ``u | w`` of an update, all layers' filters side by side) or is one block of ``hidden // 2`` (the
    readout's hidden layer); each block grows at its end. Axes that do not grow (elements, radial
    basis, the energy) map to themselves.
    """
    if old_size == new_size:
        return torch.arange(new_size)
    if old_size % old_hidden == 0:
        n_blocks, old_block, new_block = old_size // old_hidden, old_hidden, new_hidden
    else:
        n_blocks, old_block, new_block = 1, old_size, new_size
    if n_blocks * new_block != new_size:
        raise ValueError(f"cannot widen an axis of {old_size} channels to {new_size}")
    index = torch.full((new_size,), -1, dtype=torch.long)
    for b in range(n_blocks):
        index[b * new_block:b * new_block + old_block] = torch.arange(b * old_block, (b + 1) * old_block)
    return index


def widen(model: PaiNN, hidden: int) -> PaiNN:
    """A copy of ``model`` with ``hidden`` feature channels that computes the same energies.

    Parameters
    ----------
    model : PaiNN
        A trained student (its weights, reference energies, scale and shift are kept).
    hidden : int
        The new feature width, at least the student's.
    """
    if not isinstance(model, PaiNN):
        raise ConfigError(f"only PaiNN students can be widened, not {type(model).__name__}")
    old_hidden = model.hidden
    if hidden < old_hidden:
        raise ConfigError(f"model.hidden = {hidden}: a widened student needs at least the starting student's "
                          f"{old_hidden} channels")
    wide = PaiNN(model.elements, hidden=hidden, n_interactions=model.n_interactions, cutoff=model.cutoff,
                 n_rbf=model.n_rbf)
    if next(model.parameters()).dtype == torch.float64:
        wide = wide.double()  # a float64 student (as eager_model rebuilds one from a float64 file)
    old = model.state_dict()
    new = wide.state_dict()
    with torch.no_grad():
        for name, target in new.items():
            source = old[name]
            if source.shape == target.shape:
                target.copy_(source)
                continue
            maps: List[torch.Tensor] = [_channel_map(o, n, old_hidden, hidden)
                                        for o, n in zip(source.shape, target.shape)]
            kept = [m >= 0 for m in maps]
            target[torch.meshgrid(*[torch.nonzero(k).squeeze(1) for k in kept], indexing="ij")] = source[
                torch.meshgrid(*[m[k] for m, k in zip(maps, kept)], indexing="ij")]
            if isinstance(wide.get_submodule(name.rpartition(".")[0]), nn.Linear) and target.dim() == 2:
                # A Linear's weight is [outputs, inputs]: new inputs must not reach old outputs.
                # (An embedding's new columns keep their random values: they are the new channels' inputs.)
                target[torch.nonzero(kept[0]).squeeze(1)[:, None], torch.nonzero(~kept[1]).squeeze(1)[None, :]] = 0.0
    wide.load_state_dict(new)
    return wide
