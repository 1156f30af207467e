"""Cast a student to a floating-point dtype (training in float64, deployment in float32 or float64)."""
from __future__ import annotations

import torch
from torch import nn

# Energy bookkeeping buffers stay float64 whatever the network dtype: total
# energies of molecules are ~1e4-1e5 kJ/mol and float32 would round them.
FLOAT64_BUFFERS = ("atomic_reference_energy", "energy_scale", "energy_shift")


def cast_model(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast parameters and floating buffers to ``dtype``, keeping the energy buffers float64."""
    # Keep the originals: casting them to float32 and back would round the reference energies.
    kept = {name: getattr(model, name).detach().clone().to(torch.float64) for name in FLOAT64_BUFFERS}
    model = model.to(dtype)
    for name, value in kept.items():
        setattr(model, name, value)
    return model
