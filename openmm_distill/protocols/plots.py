"""PNG figures of the protocols (matplotlib, Agg backend: no display needed).

Every function writes one file and returns its path; figures are closed
after saving so long report runs do not accumulate memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def _pyplot():
    import matplotlib

    # Agg before pyplot: protocols run on headless machines and inside tests.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: PathLike) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_nve(path: PathLike, time_ps: np.ndarray, potential: np.ndarray, kinetic: np.ndarray, n_atoms: int,
             slope_mev_per_atom_ps: float, threshold_mev_per_atom_ps: float, title: str = "") -> Path:
    """Potential, kinetic and total energy vs time (kJ/mol), and the total-energy drift with its fit.

    Parameters
    ----------
    time_ps : shape (T,), ps
    potential, kinetic : shape (T,), kJ/mol
    slope_mev_per_atom_ps : fitted drift, meV/atom/ps (drawn as a line)
    threshold_mev_per_atom_ps : pass threshold, drawn as a +/- band
    """
    from openmm_distill.units import KJ_PER_MOL_TO_MEV

    plt = _pyplot()
    t = np.asarray(time_ps)
    pe, ke = np.asarray(potential), np.asarray(kinetic)
    total = pe + ke
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    # Energies relative to their start: the absolute potential energy of a
    # student (the teacher's total energy) dwarfs the fluctuations.
    ax1.plot(t, pe - pe[0], label="potential", lw=0.8)
    ax1.plot(t, ke - ke[0], label="kinetic", lw=0.8)
    ax1.plot(t, total - total[0], label="total", lw=1.2, color="k")
    ax1.set_ylabel("E(t) - E(0)  (kJ/mol)")
    ax1.legend(loc="best", fontsize=8)
    ax1.set_title(title or "NVE energies")
    per_atom = (total - total[0]) * KJ_PER_MOL_TO_MEV / max(n_atoms, 1)
    ax2.plot(t, per_atom, lw=0.8, color="k", label="total energy")
    if np.isfinite(slope_mev_per_atom_ps) and len(t) > 1 and np.all(np.isfinite(per_atom)):
        intercept = np.mean(per_atom) - slope_mev_per_atom_ps * np.mean(t)
        ax2.plot(t, intercept + slope_mev_per_atom_ps * t, color="tab:red",
                 label=f"fit: {slope_mev_per_atom_ps:.3g} meV/atom/ps")
        band = threshold_mev_per_atom_ps * (t - t[0])
        ax2.fill_between(t, -band, band, color="tab:green", alpha=0.15,
                         label=f"±{threshold_mev_per_atom_ps} meV/atom/ps")
    ax2.set_xlabel("time (ps)")
    ax2.set_ylabel("E_tot(t) - E_tot(0)  (meV/atom)")
    ax2.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_throughput(path: PathLike, rows: Sequence[Dict], title: str = "") -> Path:
    """Log-log cost per MD step (ms) vs number of atoms, one line per engine.

    ``rows`` are the throughput records (keys ``engine``, ``n_atoms``, ``ms_per_step``).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    engines: Dict[str, List] = {}
    for r in rows:
        if r.get("ms_per_step") is not None and np.isfinite(r["ms_per_step"]):
            engines.setdefault(r["engine"], []).append((r["n_atoms"], r["ms_per_step"]))
    markers = "osD^v<>ph*"
    for k, (engine, points) in enumerate(engines.items()):
        points.sort()
        x, y = zip(*points)
        style = "--" if engine.startswith(("teacher", "classical")) else "-"
        ax.plot(x, y, style, marker=markers[k % len(markers)], label=engine)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("cost per MD step (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "MD cost vs system size")
    return _save(fig, path)


def plot_parity(path: PathLike, f_ref: np.ndarray, f_pred: np.ndarray, e_ref_per_atom: np.ndarray,
                e_pred_per_atom: np.ndarray, e_ref_rel: np.ndarray, e_pred_rel: np.ndarray,
                atomic_numbers: Optional[np.ndarray] = None, title: str = "") -> Path:
    """Parity plots: force components, absolute energy per atom, offset-corrected energy per atom.

    Forces eV/Angstrom; absolute energies eV/atom; relative energies meV/atom
    (each molecule's mean removed, for teacher and student separately).
    """
    from openmm_distill.elements import symbol

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    ax = axes[0]
    fr, fp = np.asarray(f_ref).reshape(-1, 3), np.asarray(f_pred).reshape(-1, 3)
    if atomic_numbers is not None:
        z = np.asarray(atomic_numbers).reshape(-1)
        for e in np.unique(z):
            m = z == e
            ax.scatter(fr[m].ravel(), fp[m].ravel(), s=3, alpha=0.4, label=symbol(int(e)))
        ax.legend(fontsize=7, markerscale=3)
    else:
        ax.scatter(fr.ravel(), fp.ravel(), s=3, alpha=0.4)
    _diagonal(ax, fr.ravel(), fp.ravel())
    ax.set_xlabel("teacher force component (eV/Å)")
    ax.set_ylabel("student force component (eV/Å)")
    ax.set_title("forces")
    for ax, x, y, label in ((axes[1], e_ref_per_atom, e_pred_per_atom, "energy per atom (eV/atom)"),
                            (axes[2], e_ref_rel, e_pred_rel, "relative energy, offset removed (meV/atom)")):
        ax.scatter(x, y, s=8, alpha=0.6)
        _diagonal(ax, np.asarray(x), np.asarray(y))
        ax.set_xlabel(f"teacher {label}")
        ax.set_ylabel(f"student {label}")
    axes[1].set_title("absolute energies")
    axes[2].set_title("energies relative to each molecule's mean")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _diagonal(ax, x: np.ndarray, y: np.ndarray) -> None:
    values = np.concatenate([np.asarray(x).ravel(), np.asarray(y).ravel()])
    values = values[np.isfinite(values)]
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, alpha=0.7)


def plot_error_histograms(path: PathLike, component_errors: np.ndarray, atom_error_norms: np.ndarray,
                          angles_deg: np.ndarray, title: str = "") -> Path:
    """Histograms of force component errors (eV/Angstrom), per-atom error norms and angular errors (deg)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, values, label in ((axes[0], component_errors, "force component error (eV/Å)"),
                              (axes[1], atom_error_norms, "|ΔF| per atom (eV/Å)"),
                              (axes[2], angles_deg, "angular error (degrees)")):
        v = np.asarray(values).ravel()
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=60, color="tab:blue", alpha=0.8)
            signed = ax is axes[0]
            for q, style in ((50, ":"), (95, "--")):
                # Percentiles of the magnitude; the signed component panel shows them on both sides.
                level = float(np.percentile(np.abs(v), q))
                ax.axvline(level, color="k", ls=style, lw=0.8, label=f"{'|x| ' if signed else ''}p{q} = {level:.3g}")
                if signed:
                    ax.axvline(-level, color="k", ls=style, lw=0.8)
            ax.legend(fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("count")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_stability(path: PathLike, runs: Sequence[Dict], title: str = "") -> Path:
    """Temperature, potential energy, max bond deviation and RMSD vs time, one line per temperature.

    ``runs`` are per-temperature dicts with ``temperature_k`` and a ``series``
    dict (``time_ps``, ``temperature_k``, ``potential_kj_per_mol``,
    ``max_bond_deviation_angstrom``) and optionally ``analysis`` with
    ``time_ps`` / ``rmsd_angstrom``; a failure time is marked by a vertical line.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for run in runs:
        s = run.get("series") or {}
        label = f"{run['temperature_k']:g} K"
        t = np.asarray(s.get("time_ps", []))
        if t.size:
            line, = axes[0, 0].plot(t, s["temperature_k"], lw=0.8, label=label)
            color = line.get_color()
            pe = np.asarray(s["potential_kj_per_mol"], dtype=float)
            axes[0, 1].plot(t, pe - pe[0], lw=0.8, color=color, label=label)
            axes[1, 0].plot(t, s["max_bond_deviation_angstrom"], lw=0.8, color=color, label=label)
            analysis = run.get("analysis") or {}
            if analysis.get("time_ps"):
                axes[1, 1].plot(analysis["time_ps"], analysis["rmsd_angstrom"], lw=0.8, color=color, label=label)
            if run.get("time_to_failure_ps") is not None:
                for ax in axes.ravel():
                    ax.axvline(run["time_to_failure_ps"], color=color, ls="--", lw=0.8)
    threshold = runs[0].get("thresholds", {}).get("max_bond_deviation_angstrom") if runs else None
    if threshold:
        axes[1, 0].axhline(threshold, color="tab:red", ls=":", lw=0.8, label="watchdog limit")
    axes[0, 0].set_ylabel("temperature (K)")
    axes[0, 1].set_ylabel("E_pot(t) - E_pot(0) (kJ/mol)")
    axes[1, 0].set_ylabel("max |bond length change| (Å)")
    axes[1, 1].set_ylabel("RMSD to start (Å)")
    for ax in axes[1]:
        ax.set_xlabel("time (ps)")
    for ax in axes.ravel():
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title or "NVT stability")
    return _save(fig, path)


def plot_sweep(path: PathLike, names: Sequence[str], n_atoms: Sequence[int], values: Sequence[float],
               passed: Sequence[bool], threshold: float, *, ylabel: str, title: str, log: bool = False) -> Path:
    """One point per system, its figure against its size, and the pass threshold: a sweep's margins at a glance.

    Failed systems are red crosses; the three largest values are labelled with their system's name.
    ``values`` that are None or not finite (a system that could not run) are left out.
    """
    plt = _pyplot()
    rows = [(n, a, float(v), p) for n, a, v, p in zip(names, n_atoms, values, passed)
            if v is not None and np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for ok, style in ((True, dict(marker="o", color="tab:green", label="pass")),
                      (False, dict(marker="x", color="tab:red", label="fail"))):
        chosen = [r for r in rows if r[3] == ok]
        if chosen:
            ax.scatter([r[1] for r in chosen], [r[2] for r in chosen], s=22, **style)
    ax.axhline(threshold, color="tab:red", ls=":", lw=1.0, label=f"limit {threshold:g}")
    for name, atoms, value, _ in sorted(rows, key=lambda r: -r[2])[:3]:
        ax.annotate(name, (atoms, value), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if log:
        ax.set_yscale("log")
    else:  # from zero, so that the distance to the limit reads true
        ax.set_ylim(bottom=0.0)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("atoms")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: {sum(bool(p) for p in passed)} of {len(names)} pass")
    ax.legend(fontsize=8)
    return _save(fig, path)
