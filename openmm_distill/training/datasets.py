"""Training-side access to labelled datasets: split, hash, statistics and batches.

Reading the HDF5 format is :mod:`openmm_distill.data`'s job; this module
decides *which* structures are trained on, validated on and held out, and
builds seeded data loaders whose order depends only on ``(seed, epoch)``, so a
resumed run sees exactly the batches an uninterrupted run would.

Units: positions Angstrom, energies eV, forces eV/Angstrom.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from openmm_distill.errors import ConfigError

# Arrays that define a dataset's training content, in hashing order (bookkeeping
# such as creation time, keys and provenance is left out on purpose: a merged
# or re-published file with the same structures and labels has the same hash).
HASHED_ARRAYS = ("atomic_numbers", "positions", "forces", "energy", "n_atoms", "charge", "box")


def open_labelled(path: str):
    """Open a dataset file for reading (:class:`openmm_distill.data.store.LabelledDataset`)."""
    from openmm_distill.data.store import open_dataset

    if not Path(path).exists():
        raise ConfigError(f"data.path {path!r} does not exist")
    return open_dataset(str(path))


def dataset_sha256(path: str) -> str:
    """SHA-256 of a dataset's content arrays (see :data:`HASHED_ARRAYS`), hex string.

    Arrays are hashed in a fixed dtype (int64 / float64, C order) with their
    names and shapes, so the hash identifies the labelled structures, not the
    file's bytes.
    """
    h = hashlib.sha256()
    with open_labelled(path) as ds:
        arrays = ds.read_arrays()
    for name in HASHED_ARRAYS:
        if name not in arrays:
            continue
        a = np.asarray(arrays[name])
        a = np.ascontiguousarray(a, dtype=np.float64 if a.dtype.kind == "f" else np.int64)
        h.update(f"{name}:{a.shape}:{a.dtype.str};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class DataSplit:
    """Structure indices (into the dataset file) of each part, and the molecules in it.

    Attributes
    ----------
    method : str
        ``catalog``, ``molecule``, ``structure`` or ``files`` (separate validation file).
    train, validation, test : numpy.ndarray of int
        Indices into ``path`` (``validation`` indexes ``validation_path`` for ``files``).
    train_molecules, validation_molecules, test_molecules : list of str
    """

    method: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_molecules: List[str] = field(default_factory=list)
    validation_molecules: List[str] = field(default_factory=list)
    test_molecules: List[str] = field(default_factory=list)

    def summary(self) -> Dict[str, Any]:
        """JSON-able record for checkpoints and compiled metadata.

        Molecule names are always recorded; structure indices only for the
        ``structure`` split (the only one that cannot be rebuilt from names).
        """
        out: Dict[str, Any] = {
            "method": self.method,
            "n_train": int(len(self.train)),
            "n_validation": int(len(self.validation)),
            "n_test": int(len(self.test)),
            "train_molecules": list(self.train_molecules),
            "validation_molecules": list(self.validation_molecules),
            "test_molecules": list(self.test_molecules),
        }
        if self.method == "structure":
            out["validation_indices"] = [int(i) for i in self.validation]
            out["test_indices"] = [int(i) for i in self.test]
        return out


def _counts(n: int, fraction: float) -> int:
    """Items for a fraction: at least one when the fraction is positive."""
    return 0 if fraction <= 0 else max(1, int(round(fraction * n)))


def _molecules_of(names: Sequence[str], idx: np.ndarray) -> List[str]:
    return sorted({names[i] for i in idx})


def split_indices(
    structure_molecules: Sequence[str],
    method: str,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    catalog_path: Optional[str] = None,
) -> DataSplit:
    """Split the structures of one file into train / validation / test.

    Parameters
    ----------
    structure_molecules : sequence of str
        Molecule name of every structure, in file order.
    method : {"catalog", "molecule", "structure"}
        See :class:`openmm_distill.training.config.DataConfig`.
    validation_fraction, test_fraction : float
        For ``molecule`` (fractions of molecules) and ``structure`` (of structures).
    seed : int
        Seeds the random assignment.
    catalog_path : str, optional
        Molecule catalog CSV for ``catalog`` (default: ``openmm_distill/systems/data/molecules.csv``).

    Raises
    ------
    ConfigError
        If a part would be empty, or for ``catalog`` if a molecule is not in the catalog.
    """
    names = list(structure_molecules)
    n = len(names)
    all_idx = np.arange(n)
    rng = np.random.default_rng(seed)
    if n == 0:
        raise ConfigError("the dataset has no structures")
    if method == "catalog":
        from openmm_distill.systems.catalog import load_catalog

        split_of = {e.name: e.split for e in load_catalog(catalog_path)}
        missing = sorted({m for m in names if m not in split_of})
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ConfigError(
                f"data.split = 'catalog' but molecules {shown} are not in the molecule catalog; "
                "use data.split = 'molecule' or 'structure' for your own molecules"
            )
        part = np.array([split_of[m] for m in names])
        split = DataSplit("catalog", all_idx[part == "train"], all_idx[part == "validation"], all_idx[part == "test"])
    elif method == "molecule":
        unique = sorted(set(names))
        order = [unique[i] for i in rng.permutation(len(unique))]
        n_val, n_test = _counts(len(unique), validation_fraction), _counts(len(unique), test_fraction)
        if n_val + n_test >= len(unique):
            raise ConfigError(
                f"data.split = 'molecule' needs more molecules: the file has {len(unique)} "
                f"({', '.join(unique[:5])}{'...' if len(unique) > 5 else ''}) but {n_val} validation and "
                f"{n_test} test molecules leave none for training; use data.split = 'structure' or lower "
                "data.validation_fraction / data.test_fraction"
            )
        val_m, test_m = set(order[:n_val]), set(order[n_val:n_val + n_test])
        part = np.array(["validation" if m in val_m else "test" if m in test_m else "train" for m in names])
        split = DataSplit("molecule", all_idx[part == "train"], all_idx[part == "validation"], all_idx[part == "test"])
    elif method == "structure":
        perm = rng.permutation(n)
        n_val, n_test = _counts(n, validation_fraction), _counts(n, test_fraction)
        if n_val + n_test >= n:
            raise ConfigError(f"data.split = 'structure': {n} structures are too few for the requested fractions")
        split = DataSplit("structure", np.sort(perm[n_val + n_test:]), np.sort(perm[:n_val]),
                          np.sort(perm[n_val:n_val + n_test]))
    else:
        raise ConfigError(f"data.split = {method!r} is not allowed; choose one of: catalog, molecule, structure")
    if len(split.train) == 0:
        raise ConfigError(f"data.split = {method!r} leaves no training structures")
    split.train_molecules = _molecules_of(names, split.train)
    split.validation_molecules = _molecules_of(names, split.validation)
    split.test_molecules = _molecules_of(names, split.test)
    return split


def limit_structures(indices: np.ndarray, max_structures: Optional[int], seed: int) -> np.ndarray:
    """A seeded random subset of at most ``max_structures`` indices (sorted), or all of them."""
    if max_structures is None or len(indices) <= max_structures:
        return np.asarray(indices)
    rng = np.random.default_rng(seed + 1)
    return np.sort(rng.choice(np.asarray(indices), size=max_structures, replace=False))


def read_subset(path: str, indices: np.ndarray) -> Dict[str, np.ndarray]:
    """Atomic numbers, atom counts, energies and forces of a subset (for the energy-model fit).

    Returns
    -------
    dict
        ``atomic_numbers`` (total,), ``n_atoms`` (B,), ``energy`` (B,) eV,
        ``forces`` (total, 3) eV/Angstrom, in the order of ``indices``.
    """
    with open_labelled(path) as ds:
        arrays = ds.read_arrays()
    offsets, n_atoms = arrays["offsets"], arrays["n_atoms"]
    idx = np.asarray(indices, dtype=np.int64)
    # Offsets are absolute rows of the per-atom arrays (see data.store).
    rows = np.concatenate([np.arange(offsets[i], offsets[i] + n_atoms[i]) for i in idx]) if len(idx) else \
        np.zeros(0, dtype=np.int64)
    return {
        "atomic_numbers": arrays["atomic_numbers"][rows],
        "n_atoms": n_atoms[idx],
        "energy": arrays["energy"][idx],
        "forces": arrays["forces"][rows],
    }


def dataset_elements(path: str, indices: Optional[np.ndarray] = None) -> List[int]:
    """Sorted atomic numbers present in a dataset (or in the given structures)."""
    if indices is None:
        with open_labelled(path) as ds:
            z = ds.read_arrays()["atomic_numbers"]
    else:
        z = read_subset(path, indices)["atomic_numbers"]
    return sorted(int(x) for x in np.unique(z))


def make_loader(path: str, indices: np.ndarray, batch_size: int, *, shuffle: bool, dtype,
                num_workers: int = 0, in_memory: bool = True):
    """A data loader over ``indices`` of ``path`` (:func:`openmm_distill.data.torch_dataset.make_dataloader`).

    Batches are the dicts of :func:`openmm_distill.data.torch_dataset.collate_structures`
    (``atomic_numbers``, ``positions`` Angstrom, ``energy`` eV, ``forces`` eV/Angstrom,
    ``batch``, ``n_atoms``, optional ``box``, ``index``). Call :func:`reseed` before
    every epoch: the shuffling order then depends only on ``(seed, epoch)``.
    """
    from openmm_distill.data.torch_dataset import make_dataloader

    return make_dataloader(str(path), batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                           indices=[int(i) for i in indices], seed=0, dtype=dtype, in_memory=in_memory)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s shuffling: a function of ``(seed, epoch)`` only."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)


def reseed(loader, seed: int, epoch: int) -> None:
    """Reset a loader's generator so epoch ``epoch`` is shuffled the same way in any process.

    The DataLoader's random sampler (and its workers' base seed) draw from
    ``loader.generator`` when an epoch starts; reseeding it just before makes
    the order independent of how many epochs this loader has already served,
    which is what an exactly resumable run needs.
    """
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed(seed, epoch))
