"""Learning-rate schedules: linear warm-up, then cosine decay, plateau reduction or constant.

The schedule is a small object with its own state (not a
``torch.optim.lr_scheduler``) so that its state is a plain dict of numbers,
loadable with ``weights_only=True`` and restored exactly on resume. The rate
of step ``t`` (0-based, counted over the whole run) is

    lr(t) = base_lr * warmup(t) * decay(t)

with ``warmup(t) = min(1, (t + 1) / warmup_steps)`` and ``decay`` either
``min_ratio + (1 - min_ratio) * (1 + cos(pi * t / total_steps)) / 2`` (cosine),
a factor lowered on validation plateaus (plateau, floored at ``min_ratio``),
or 1 (constant).
"""
from __future__ import annotations

import math
from typing import Dict

from torch.optim import Optimizer

from openmm_distill.errors import ConfigError


class LRSchedule:
    """Per-step learning rate with warm-up.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its param groups' ``lr`` is set by :meth:`step`.
    base_lr : float
        Peak learning rate.
    kind : {"cosine", "plateau", "constant"}
    total_steps : int
        Steps of the whole run (epochs * steps per epoch), for the cosine.
    warmup_steps : int
        Length of the linear warm-up (0: none).
    min_ratio : float
        Floor as a fraction of ``base_lr``.
    plateau_factor, plateau_patience, plateau_threshold : float, int, float
        Plateau schedule: multiply by ``plateau_factor`` after
        ``plateau_patience`` epochs in which the monitored metric did not
        improve by more than the relative ``plateau_threshold``.
    """

    def __init__(self, optimizer: Optimizer, base_lr: float, kind: str = "cosine", *, total_steps: int = 1,
                 warmup_steps: int = 0, min_ratio: float = 0.01, plateau_factor: float = 0.5,
                 plateau_patience: int = 10, plateau_threshold: float = 1e-3):
        if kind not in ("cosine", "plateau", "constant"):
            raise ConfigError(f"unknown schedule {kind!r}; choose cosine, plateau or constant")
        self.optimizer = optimizer
        self.base_lr = float(base_lr)
        self.kind = kind
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(int(warmup_steps), 0)
        self.min_ratio = float(min_ratio)
        self.plateau_factor = float(plateau_factor)
        self.plateau_patience = int(plateau_patience)
        self.plateau_threshold = float(plateau_threshold)
        # State.
        self.step_count = 0
        self.plateau_scale = 1.0
        self.plateau_best = math.inf
        self.plateau_bad_epochs = 0
        self._apply(self.lr_at(0))

    def lr_at(self, t: int) -> float:
        """Learning rate of step ``t``."""
        warm = min(1.0, (t + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.kind == "cosine":
            progress = min(t / self.total_steps, 1.0)
            decay = self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.kind == "plateau":
            decay = max(self.plateau_scale, self.min_ratio)
        else:
            decay = 1.0
        return self.base_lr * warm * decay

    @property
    def lr(self) -> float:
        """Rate currently set on the optimizer."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _apply(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimiser step and set the next step's rate (call after ``optimizer.step()``)."""
        self.step_count += 1
        self._apply(self.lr_at(self.step_count))

    def epoch_end(self, metric: float) -> None:
        """Report the epoch's monitored metric (lower is better); only the plateau schedule reacts."""
        if self.kind != "plateau" or not math.isfinite(metric):
            return
        if metric < self.plateau_best * (1.0 - self.plateau_threshold):
            self.plateau_best = metric
            self.plateau_bad_epochs = 0
        else:
            self.plateau_bad_epochs += 1
            if self.plateau_bad_epochs >= self.plateau_patience:
                self.plateau_scale *= self.plateau_factor
                self.plateau_bad_epochs = 0
        self._apply(self.lr_at(self.step_count))

    def state_dict(self) -> Dict[str, float]:
        return {
            "step_count": self.step_count,
            "plateau_scale": self.plateau_scale,
            "plateau_best": self.plateau_best,
            "plateau_bad_epochs": self.plateau_bad_epochs,
        }

    def load_state_dict(self, state: Dict[str, float]) -> None:
        self.step_count = int(state["step_count"])
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad_epochs = int(state["plateau_bad_epochs"])
        self._apply(self.lr_at(self.step_count))
