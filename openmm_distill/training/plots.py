"""Loss-curve figure of a training run (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

PANELS = (
    ("loss", "loss (dimensionless)", True),
    ("force_mae", "force MAE (eV/Angstrom)", True),
    ("energy_mae_mev_per_atom", "energy MAE (meV/atom)", True),
    ("angle_deg", "mean angular error (degrees)", False),
)


def plot_history(history: Sequence[Dict[str, float]], path: str | os.PathLike, title: str = "") -> None:
    """Write a 2x2 PNG of train/validation loss, force MAE, energy MAE and angular error per epoch.

    Parameters
    ----------
    history : sequence of dict
        One row per epoch with keys ``epoch``, ``train_<metric>`` and ``val_<metric>``
        (as written to ``metrics.csv`` by the trainer).
    path : path-like
        Output PNG.
    title : str
        Figure title (e.g. the preset and the run folder).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs: List[float] = [row["epoch"] for row in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for ax, (key, label, log) in zip(axes.ravel(), PANELS):
        for prefix, style in (("train", "-"), ("val", "--")):
            values = [row.get(f"{prefix}_{key}", float("nan")) for row in history]
            if any(v == v for v in values):  # at least one non-NaN
                ax.plot(epochs, values, style, label="train" if prefix == "train" else "validation (EMA)")
        if log and all((v > 0) for row in history for k, v in row.items()
                       if k.endswith(key) and v == v):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
