"""Dataset statistics: elements, sizes, energies and forces, as text and a PNG.

Total energies of different molecules are not comparable (they are dominated
by the atoms' own energies), so besides the raw energy per atom the report
fits per-element reference energies by least squares, ``E ~ sum_Z n_Z e_Z``,
and shows the residual per atom: the part of the energy a student actually
has to learn. The fitted values are a good initial per-element energy shift
for training.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from openmm_distill.data.store import LabelledDataset
from openmm_distill.elements import symbol
from openmm_distill.units import MEV_PER_EV


def _summary(values: np.ndarray) -> Dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"n": 0}
    return {
        "n": int(values.size),
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "p99": float(np.percentile(values, 99)),
    }


def fit_atomic_energies(
    atomic_numbers: np.ndarray, n_atoms: np.ndarray, energy: np.ndarray
) -> Dict[int, float]:
    """Per-element reference energies (eV) from a least-squares fit ``E_i ~ sum_Z count_iZ e_Z``.

    Parameters
    ----------
    atomic_numbers : numpy.ndarray of int, shape (total_atoms,)
        Concatenated over structures.
    n_atoms : numpy.ndarray of int, shape (n,)
    energy : numpy.ndarray of float, shape (n,), eV

    Returns
    -------
    dict
        Atomic number -> energy, eV. Elements that always appear in fixed
        ratios are not separately identifiable; ``lstsq`` returns the minimum-norm split.
    """
    elements = np.unique(atomic_numbers)
    structure = np.repeat(np.arange(len(n_atoms)), n_atoms)
    counts = np.zeros((len(n_atoms), len(elements)))
    np.add.at(counts, (structure, np.searchsorted(elements, atomic_numbers)), 1.0)
    finite = np.isfinite(energy)
    coef, *_ = np.linalg.lstsq(counts[finite], energy[finite], rcond=None)
    return {int(z): float(c) for z, c in zip(elements, coef)}


@dataclass
class DatasetStatistics:
    """Numbers describing a dataset (eV, eV/Angstrom, Angstrom).

    Attributes
    ----------
    n_structures, n_molecules, n_atoms_total, n_failures : int
    element_atoms : dict
        Element symbol -> number of atoms.
    element_structures : dict
        Element symbol -> number of structures containing it.
    size_histogram : dict
        Atoms per structure -> number of structures.
    energy_per_atom : dict
        Summary (min, max, mean, std, p99) of E/N, eV/atom.
    energy_residual_per_atom : dict
        Summary of (E - sum_Z n_Z e_Z)/N after the per-element fit, eV/atom.
    atomic_energies : dict
        Element symbol -> fitted reference energy, eV.
    force_component : dict
        Summary of force components, eV/Angstrom.
    force_magnitude : dict
        Summary of per-atom force magnitudes, eV/Angstrom.
    provenance_methods : dict
        Sampling method -> number of structures.
    teacher : dict
        Name, version, settings.
    """

    n_structures: int
    n_molecules: int
    n_atoms_total: int
    n_failures: int
    element_atoms: Dict[str, int]
    element_structures: Dict[str, int]
    size_histogram: Dict[int, int]
    energy_per_atom: Dict[str, float]
    energy_residual_per_atom: Dict[str, float]
    atomic_energies: Dict[str, float]
    force_component: Dict[str, float]
    force_magnitude: Dict[str, float]
    provenance_methods: Dict[str, int]
    teacher: Dict[str, object] = field(default_factory=dict)
    _arrays: Optional[Dict[str, np.ndarray]] = field(default=None, repr=False)

    def format(self) -> str:
        """A plain-text report."""

        def fmt(d: Dict[str, float]) -> str:
            if not d.get("n"):
                return "n/a"
            return ", ".join(f"{k} {v:.4g}" for k, v in d.items() if k != "n")

        sizes = sorted(self.size_histogram)
        lines = [
            f"teacher: {self.teacher.get('name', '?')} ({self.teacher.get('version', '?')})",
            f"structures: {self.n_structures}   molecules: {self.n_molecules}   atoms: {self.n_atoms_total}"
            f"   recorded failures: {self.n_failures}",
            "sampling methods: " + ", ".join(f"{k} {v}" for k, v in sorted(self.provenance_methods.items())),
            "atoms per structure: "
            + (f"{sizes[0]}..{sizes[-1]}, median {int(np.median(np.repeat(sizes, [self.size_histogram[s] for s in sizes])))}" if sizes else "n/a"),
            "elements (atoms / structures containing):",
        ]
        for sym in sorted(self.element_atoms, key=lambda s: -self.element_atoms[s]):
            lines.append(
                f"  {sym:>2}: {self.element_atoms[sym]:>9} / {self.element_structures[sym]:>7}"
                f"   fitted reference energy {self.atomic_energies.get(sym, float('nan')):.4f} eV"
            )
        lines += [
            f"energy per atom (eV/atom): {fmt(self.energy_per_atom)}",
            f"energy residual per atom after per-element fit (eV/atom): {fmt(self.energy_residual_per_atom)}",
            f"force components (eV/Angstrom): {fmt(self.force_component)}",
            f"force magnitudes (eV/Angstrom): {fmt(self.force_magnitude)}",
        ]
        return "\n".join(lines)


def compute_statistics(dataset) -> DatasetStatistics:
    """Statistics of a dataset file (path) or an open :class:`LabelledDataset`."""
    ds = LabelledDataset(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    try:
        arrays = ds.read_arrays()
        provenance = ds.provenance
        n_failures = len(ds.failures)
        n_molecules = len(ds.molecule_names)
        teacher = ds.metadata["teacher"]
    finally:
        if ds is not dataset:
            ds.close()
    z = arrays["atomic_numbers"]
    n_atoms = arrays["n_atoms"]
    energy = arrays["energy"]
    forces = arrays["forces"]
    n = len(energy)
    structure = np.repeat(np.arange(n), n_atoms)
    element_atoms, element_structures = {}, {}
    for element in np.unique(z):
        mask = z == element
        element_atoms[symbol(int(element))] = int(mask.sum())
        element_structures[symbol(int(element))] = int(np.unique(structure[mask]).size)
    sizes, size_counts = np.unique(n_atoms, return_counts=True)
    if n:
        ref = fit_atomic_energies(z, n_atoms, energy)
        ref_per_structure = np.bincount(structure, weights=np.array([ref[int(a)] for a in z]), minlength=n)
        residual = (energy - ref_per_structure) / n_atoms
    else:
        ref, residual = {}, np.zeros(0)
    methods: Dict[str, int] = {}
    for record in provenance:
        method = str(record.get("method", "unknown"))
        methods[method] = methods.get(method, 0) + 1
    stats = DatasetStatistics(
        n_structures=n,
        n_molecules=n_molecules,
        n_atoms_total=int(len(z)),
        n_failures=n_failures,
        element_atoms=element_atoms,
        element_structures=element_structures,
        size_histogram={int(s): int(c) for s, c in zip(sizes, size_counts)},
        energy_per_atom=_summary(energy / np.maximum(n_atoms, 1)),
        energy_residual_per_atom=_summary(residual),
        atomic_energies={symbol(k): v for k, v in ref.items()},
        force_component=_summary(forces.reshape(-1)),
        force_magnitude=_summary(np.linalg.norm(forces, axis=1)),
        provenance_methods=methods,
        teacher=teacher,
    )
    stats._arrays = {"n_atoms": n_atoms, "energy_per_atom": energy / np.maximum(n_atoms, 1), "residual": residual,
                     "force_magnitude": np.linalg.norm(forces, axis=1)}
    return stats


def plot_statistics(dataset, png_path: str, *, title: Optional[str] = None) -> str:
    """Write a 2x2 PNG: element counts, size histogram, energy residual per atom, force magnitudes.

    Parameters
    ----------
    dataset : str, LabelledDataset or DatasetStatistics
    png_path : str

    Returns
    -------
    str
        ``png_path``.
    """
    # The object-oriented API renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    stats = dataset if isinstance(dataset, DatasetStatistics) else compute_statistics(dataset)
    arrays = stats._arrays or {}
    fig = Figure(figsize=(10, 7.5))
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    syms = sorted(stats.element_atoms, key=lambda s: -stats.element_atoms[s])
    ax.bar(syms, [stats.element_atoms[s] for s in syms], color="tab:blue")
    ax.set_yscale("log")
    ax.set_title("atoms per element")
    ax.set_ylabel("count")
    ax = axes[0, 1]
    sizes = sorted(stats.size_histogram)
    ax.bar(sizes, [stats.size_histogram[s] for s in sizes], width=0.9, color="tab:green")
    ax.set_title("structure size")
    ax.set_xlabel("atoms per structure")
    ax.set_ylabel("structures")
    ax = axes[1, 0]
    residual = np.asarray(arrays.get("residual", []))
    if residual.size:
        ax.hist(residual[np.isfinite(residual)] * MEV_PER_EV, bins=60, color="tab:orange")
    ax.set_title("energy per atom after per-element fit")
    ax.set_xlabel("residual (meV/atom)")
    ax.set_ylabel("structures")
    ax = axes[1, 1]
    fmag = np.asarray(arrays.get("force_magnitude", []))
    if fmag.size:
        ax.hist(fmag[np.isfinite(fmag)], bins=80, color="tab:red")
        ax.set_yscale("log")
    ax.set_title("per-atom force magnitude")
    ax.set_xlabel("|F| (eV/Angstrom)")
    ax.set_ylabel("atoms")
    fig.suptitle(
        title
        or f"{stats.n_structures} structures, {stats.n_molecules} molecules, teacher {stats.teacher.get('name', '?')}"
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=110)
    return png_path
