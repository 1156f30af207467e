"""Central-difference Hessians from any gradient function (MMFF or teacher forces)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def central_difference_hessian(gradient: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, step: float) -> np.ndarray:
    """Symmetrised Hessian [3N, 3N] from ``gradient(x) -> dE/dx`` at flat coordinates ``x0``.

    Costs ``2 * x0.size`` gradient calls; units are those of the gradient per unit of ``x``.
    """
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    hessian = np.empty((x0.size, x0.size))
    for k in range(x0.size):
        xp = x0.copy()
        xp[k] += step
        xm = x0.copy()
        xm[k] -= step
        hessian[k] = (gradient(xp) - gradient(xm)) / (2 * step)
    return 0.5 * (hessian + hessian.T)
