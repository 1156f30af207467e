"""Seeds and random-number-generator states (for reproducible and exactly resumable runs).

Randomness in a training run: weight initialisation and anything else that
draws from torch's global generator, NumPy and Python's ``random`` (used by
nothing in the trainer, seeded anyway for user code), the data split and the
per-epoch shuffling (their own generators, seeded from ``run.seed``; see
:func:`epoch_generator`). The global states are saved in ``last.pt`` as
plain tensors and lists so ``torch.load(weights_only=True)`` reads them.
"""
from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, epoch, stream)``.

    The training order of epoch ``e`` is drawn from ``epoch_generator(seed, e)``,
    so a run resumed at epoch ``e`` shuffles exactly as an uninterrupted one,
    whatever happened before. ``stream`` separates independent uses (shuffling,
    Hessian rows, ...).
    """
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7_919 + int(stream) * 104_729) % (2**63 - 1))
    return g


def capture_rng_state() -> Dict[str, Any]:
    """Global RNG states as tensors, numbers and lists (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_state[0]), "state": [int(x) for x in py_state[1]],
                   "gauss_next": py_state[2]},
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Restore the states saved by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
