"""Exponential moving average (EMA) of a model's weights.

The averaged weights are smoother than the last optimiser step and usually
a little more accurate; the trainer validates, keeps (``best.pt``) and
compiles them. The decay ramps up as ``min(decay, (1 + t) / (10 + t))``
(t = number of updates) so the average is not dominated by the random
initial weights on short runs.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator

import torch
from torch import nn

from openmm_distill.errors import ConfigError, IncompatibleFileError


class ExponentialMovingAverage:
    """Shadow copies of a model's floating-point parameters.

    Parameters
    ----------
    model : nn.Module
        The model being trained; only its parameters are averaged (buffers
        such as reference energies are copied as they are).
    decay : float
        Target decay in [0, 1); 0 makes the "average" the current weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: Dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }
        self._backup: Dict[str, torch.Tensor] = {}

    def current_decay(self) -> float:
        """Decay used by the next :meth:`update`."""
        t = self.num_updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights towards the model's: ``s <- d s + (1 - d) p``."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averaged ones."""
        params = dict(model.named_parameters())
        for name, s in self.shadow.items():
            params[name].copy_(s)

    @contextlib.contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swap the averaged weights into ``model`` (restored on exit)."""
        params = dict(model.named_parameters())
        backup = {name: params[name].detach().clone() for name in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, b in backup.items():
                    params[name].copy_(b)

    def state_dict(self) -> Dict[str, object]:
        """Plain dict (tensors on CPU, numbers) loadable with ``weights_only=True``."""
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": {k: v.detach().cpu().clone() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restore from :meth:`state_dict` (keeps the shadow tensors' device and dtype)."""
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        shadow = state["shadow"]
        missing = set(self.shadow) ^ set(shadow)
        if missing:
            raise IncompatibleFileError(f"EMA state does not match the model: differing parameters {sorted(missing)}")
        for k, v in shadow.items():
            self.shadow[k].copy_(v)
