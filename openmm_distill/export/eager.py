"""The eager twin of a compiled student: same weights, same bound atoms, plain PyTorch.

A TorchScript file carries its weights but runs only through TorchScript. Two users need
the module as ordinary Python instead: :func:`openmm_distill.export.rebuild.rebuild_compiled`
(recompile with this version's code) and the ``inductor`` backend (``torch.compile``,
which traces Python, not TorchScript).
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn

from openmm_distill.export.deployed import DeployedStudent

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def eager_model(module: torch.jit.ScriptModule, meta: Dict[str, Any]) -> nn.Module:
    """The student network of a compiled module (``module.model``) as an eager model, in the file's dtype."""
    from openmm_distill.models.registry import build_model

    model = build_model(meta["architecture"], meta["elements"], **meta["hyperparameters"])
    if meta.get("dtype", "float32") == "float64":
        model = model.double()  # before loading, or the float64 weights would be rounded through float32
    model.load_state_dict(module.model.state_dict())
    return model


def eager_deployed(module: torch.jit.ScriptModule, meta: Dict[str, Any]) -> DeployedStudent:
    """A :class:`DeployedStudent` computing what ``module`` computes, bound to the same atoms."""
    dtype = _DTYPES[meta.get("dtype", "float32")]
    deployed = DeployedStudent(eager_model(module, meta).eval(), dtype, int(module.all_pairs_max_atoms))
    for p in deployed.parameters():
        p.requires_grad_(False)
    if module.species.shape[0] > 0:
        indices = module.indices if module.indices.shape[0] > 0 else None
        deployed.set_atoms(module.atomic_numbers, indices)
    return deployed
