"""Flag and exclude bad structures: non-finite values, absurd forces, duplicates.

Reasons (a structure can have several):

``non_finite``
    NaN or Inf in positions, energy or forces.
``absurd_force``
    Some atom's force magnitude exceeds ``max_force`` (eV/Angstrom; default
    20, far above thermal forces, typical of a broken SCF or overlapping atoms).
``duplicate``
    Same molecule and the same atoms in the same order as an earlier
    structure, with every coordinate within ``duplicate_tolerance`` Angstrom
    (no alignment: exact or near-exact copies, not rotated ones). The first
    occurrence is kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from openmm_distill.data.store import DatasetWriter, LabelledDataset, partial_path, publish
from openmm_distill.errors import ConfigError

REASONS = ("non_finite", "absurd_force", "duplicate")


@dataclass
class ValidationReport:
    """Result of :func:`validate_dataset`.

    Attributes
    ----------
    n_structures : int
    flagged : dict
        Reason -> sorted list of structure indices.
    keep : numpy.ndarray of bool, shape (n_structures,)
        True for structures with no flag.
    max_force : float
        Threshold used, eV/Angstrom.
    duplicate_tolerance : float
        Threshold used, Angstrom.
    examples : dict
        Reason -> a few ``(key, detail)`` pairs for the report.
    """

    n_structures: int
    flagged: Dict[str, List[int]]
    keep: np.ndarray
    max_force: float
    duplicate_tolerance: float
    examples: Dict[str, List[tuple]] = field(default_factory=dict)

    @property
    def n_excluded(self) -> int:
        return int((~self.keep).sum())

    @property
    def counts(self) -> Dict[str, int]:
        return {reason: len(self.flagged.get(reason, [])) for reason in REASONS}

    @property
    def keep_indices(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    def summary(self) -> str:
        lines = [
            f"structures: {self.n_structures}, excluded: {self.n_excluded}, kept: {int(self.keep.sum())}",
            f"  non_finite   (NaN/Inf in positions, energy or forces): {self.counts['non_finite']}",
            f"  absurd_force (|F| > {self.max_force:g} eV/Angstrom): {self.counts['absurd_force']}",
            f"  duplicate    (same molecule, all coordinates within {self.duplicate_tolerance:g} Angstrom): "
            f"{self.counts['duplicate']}",
        ]
        for reason, examples in self.examples.items():
            for key, detail in examples:
                lines.append(f"    {reason}: {key} ({detail})")
        return "\n".join(lines)


def find_problems(
    arrays: Dict[str, np.ndarray],
    *,
    max_force: float = 20.0,
    duplicate_tolerance: float = 1e-3,
) -> Dict[str, Dict[int, str]]:
    """Flag structures in the in-memory arrays of a dataset.

    Parameters
    ----------
    arrays : dict
        As returned by :meth:`LabelledDataset.read_arrays` (``atomic_numbers``,
        ``positions``, ``forces``, ``energy``, ``offsets``, ``n_atoms``, ``molecule_id``).
    max_force : float
        eV/Angstrom.
    duplicate_tolerance : float
        Angstrom.

    Returns
    -------
    dict
        Reason -> {structure index: detail}.
    """
    if not max_force > 0:
        raise ConfigError(f"max_force must be > 0 eV/Angstrom, got {max_force!r}")
    if not duplicate_tolerance >= 0:
        raise ConfigError(f"duplicate_tolerance must be >= 0 Angstrom, got {duplicate_tolerance!r}")
    n = len(arrays["energy"])
    offsets, sizes = arrays["offsets"], arrays["n_atoms"]
    problems: Dict[str, Dict[int, str]] = {reason: {} for reason in REASONS}
    if n == 0:
        return problems
    # Per-atom quantities reduced to per-structure with reduceat (structures are contiguous).
    starts = offsets - offsets[0]
    finite_atoms = np.isfinite(arrays["positions"]).all(axis=1) & np.isfinite(arrays["forces"]).all(axis=1)
    finite = np.logical_and.reduceat(finite_atoms, starts) & np.isfinite(arrays["energy"])
    with np.errstate(invalid="ignore"):
        fmag = np.linalg.norm(np.where(np.isfinite(arrays["forces"]), arrays["forces"], 0.0), axis=1)
    fmax = np.maximum.reduceat(fmag, starts)
    for i in np.flatnonzero(~finite):
        problems["non_finite"][int(i)] = "NaN or Inf"
    for i in np.flatnonzero(finite & (fmax > max_force)):
        problems["absurd_force"][int(i)] = f"max |F| = {fmax[i]:.3g} eV/Angstrom"

    # Duplicates: group by (molecule, size); compare each structure with the earlier kept ones.
    numbers = arrays["atomic_numbers"]
    positions = arrays["positions"]
    groups: Dict[tuple, List[int]] = {}
    for i in range(n):
        groups.setdefault((int(arrays["molecule_id"][i]), int(sizes[i])), []).append(i)
    for (_, size), members in groups.items():
        if len(members) < 2:
            continue
        idx = np.asarray(members)
        atom_index = (offsets[idx] - offsets[0])[:, None] + np.arange(size)[None, :]
        z = numbers[atom_index]
        x = positions[atom_index]  # (m, size, 3)
        kept: List[int] = []
        for a in range(len(idx)):
            if kept:
                k = np.asarray(kept)
                same_atoms = (z[k] == z[a]).all(axis=1)
                with np.errstate(invalid="ignore"):
                    close = np.abs(x[k] - x[a]).max(axis=(1, 2)) <= duplicate_tolerance
                hit = np.flatnonzero(same_atoms & close)
                if hit.size:
                    problems["duplicate"][int(idx[a])] = f"duplicate of structure {int(idx[k[hit[0]]])}"
                    continue
            kept.append(a)
    return problems


def validate_dataset(
    dataset,
    *,
    max_force: float = 20.0,
    duplicate_tolerance: float = 1e-3,
    n_examples: int = 3,
) -> ValidationReport:
    """Check a dataset file (or open :class:`LabelledDataset`) and report what to exclude.

    Parameters
    ----------
    dataset : str or LabelledDataset
    max_force : float
        Largest acceptable per-atom force magnitude, eV/Angstrom.
    duplicate_tolerance : float
        Angstrom.
    n_examples : int
        Examples per reason kept for the text report.
    """
    ds = LabelledDataset(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    try:
        problems = find_problems(ds.read_arrays(), max_force=max_force, duplicate_tolerance=duplicate_tolerance)
        keys = ds.keys
        n = len(ds)
    finally:
        if ds is not dataset:
            ds.close()
    keep = np.ones(n, dtype=bool)
    for found in problems.values():
        keep[list(found)] = False
    examples = {
        reason: [(keys[i], detail) for i, detail in sorted(found.items())[:n_examples]]
        for reason, found in problems.items()
        if found
    }
    return ValidationReport(
        n_structures=n,
        flagged={reason: sorted(found) for reason, found in problems.items()},
        keep=keep,
        max_force=float(max_force),
        duplicate_tolerance=float(duplicate_tolerance),
        examples=examples,
    )


def filter_dataset(
    source: str,
    output: str,
    keep_indices: Sequence[int],
    *,
    overwrite: bool = False,
    compression: str = "gzip",
    note: Optional[str] = None,
) -> int:
    """Copy the structures ``keep_indices`` of ``source`` to ``output`` (atomically).

    Metadata, failures and completed items are carried over; ``note`` is
    stored as the ``meta_filtered`` attribute. Returns the number of structures written.
    """
    if os.path.exists(output) and not overwrite:
        raise ConfigError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    if os.path.abspath(output) == os.path.abspath(source):
        raise ConfigError("filter output must differ from its source")
    keep = sorted(set(int(i) for i in keep_indices))
    with LabelledDataset(source) as ds:
        meta = ds.metadata
        metadata = {
            "teacher": meta["teacher"],
            "sampling_config": meta.get("sampling_config", {}),
            "creation_command": meta.get("creation_command", ""),
            "filtered": note or f"kept {len(keep)} of {len(ds)} structures of {os.path.basename(source)}",
        }
        tmp = partial_path(output)
        with DatasetWriter(tmp, metadata=metadata, compression=compression) as writer:
            keep_set = set(keep)
            for lo in range(0, len(ds), 2048):
                writer.append([s for s in ds.block(lo, lo + 2048) if s.index in keep_set])
                writer.commit()
            writer.add_failures(ds.failures)
            writer.mark_completed(ds.completed_items)
            writer.close(complete=True)
    publish(tmp, output)
    return len(keep)
