"""PyTorch access to a dataset file: lazy reading, batching of variable-size molecules.

Batch contract (what :func:`collate_structures` returns; B structures, N_total atoms):

==================  ===========================  ==================================
key                 type / shape                 meaning
==================  ===========================  ==================================
``atomic_numbers``  int64 [N_total]              atomic numbers, structures concatenated
``positions``       float [N_total, 3]           Angstrom (dtype of the dataset, float32 default)
``energy``          float64 [B]                  total teacher energy, eV
``forces``          float [N_total, 3]           eV/Angstrom (same dtype as positions)
``batch``           int64 [N_total]              structure index 0..B-1 of each atom
``n_atoms``         int64 [B]                    atoms per structure
``box``             float [B, 3, 3]              Angstrom, row vectors; key absent if not periodic
``index``           int64 [B]                    structure index in the file
==================  ===========================  ==================================

Atoms of structure ``b`` are rows ``ptr[b]:ptr[b+1]`` with
``ptr = cat([0], cumsum(n_atoms))``, in the same order as in the file.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np
import torch

from openmm_distill.data.store import LabelledDataset, _check_format
from openmm_distill.errors import ConfigError

BATCH_KEYS = ("atomic_numbers", "positions", "energy", "forces", "batch", "n_atoms", "box", "index")


class StructureDataset(torch.utils.data.Dataset):
    """A map-style dataset over the structures of one HDF5 file.

    The file is opened on first access in each process (so a DataLoader's
    workers each get their own h5py handle; handles are never pickled). Only
    the small per-structure index arrays are read eagerly.

    Parameters
    ----------
    path : str
    indices : sequence of int, optional
        Structures to expose (file indices); default all. ``dataset[i]`` is file structure ``indices[i]``.
    dtype : torch.dtype
        Floating dtype of positions, forces and box (default float32). Energy is always float64.
    in_memory : bool
        Read all per-atom arrays once (fast for small datasets) instead of on demand.

    Items are dicts with the keys of the batch contract for one structure
    (``energy`` a 0-d float64 tensor, ``n_atoms`` and ``index`` Python ints, no ``batch``).
    """

    def __init__(
        self,
        path: str,
        indices: Optional[Sequence[int]] = None,
        *,
        dtype: torch.dtype = torch.float32,
        in_memory: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.dtype = dtype
        with LabelledDataset(self.path) as ds:
            self.offsets = ds.offsets.copy()
            self.n_atoms_all = ds.n_atoms.copy()
            self.energy_all = ds.energy.copy()
            self.molecule_id = ds.molecule_id.copy()
            self.molecule_names = list(ds.molecule_names)
            self.periodic = ds.periodic
            self.metadata = ds.metadata
            self._arrays = ds.read_arrays() if in_memory else None
        n_file = len(self.energy_all)
        if indices is None:
            self.indices = np.arange(n_file, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n_file):
                raise ConfigError(f"indices must lie in 0..{n_file - 1} for {self.path}")
        self._file: Optional[h5py.File] = None
        self._pid: Optional[int] = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            _check_format(self._file, self.path)
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        index = int(self.indices[i])
        a, n = int(self.offsets[index]), int(self.n_atoms_all[index])
        if self._arrays is not None:
            source = self._arrays
            z = source["atomic_numbers"][a : a + n]
            x = source["positions"][a : a + n]
            f = source["forces"][a : a + n]
            box = source["box"][index] if self.periodic else None
        else:
            h = self._handle()
            z = h["atomic_numbers"][a : a + n]
            x = h["positions"][a : a + n]
            f = h["forces"][a : a + n]
            box = h["box"][index] if self.periodic else None
        item = {
            "atomic_numbers": torch.as_tensor(np.asarray(z, dtype=np.int64)),
            "positions": torch.as_tensor(np.asarray(x), dtype=self.dtype),
            "energy": torch.tensor(float(self.energy_all[index]), dtype=torch.float64),
            "forces": torch.as_tensor(np.asarray(f), dtype=self.dtype),
            "n_atoms": n,
            "index": index,
        }
        if box is not None:
            item["box"] = torch.as_tensor(np.asarray(box), dtype=self.dtype)
        return item

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def collate_structures(items: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Concatenate variable-size structures into one batch (see the module docstring for the contract).

    Raises
    ------
    ValueError
        If the list is empty or mixes periodic and non-periodic structures.
    """
    if not items:
        raise ValueError("cannot collate an empty list of structures")
    n_atoms = torch.tensor([int(item["n_atoms"]) for item in items], dtype=torch.long)
    batch = {
        "atomic_numbers": torch.cat([item["atomic_numbers"] for item in items]).long(),
        "positions": torch.cat([item["positions"] for item in items]),
        "energy": torch.stack([torch.as_tensor(item["energy"], dtype=torch.float64) for item in items]),
        "forces": torch.cat([item["forces"] for item in items]),
        "batch": torch.repeat_interleave(torch.arange(len(items), dtype=torch.long), n_atoms),
        "n_atoms": n_atoms,
        "index": torch.tensor([int(item["index"]) for item in items], dtype=torch.long),
    }
    has_box = ["box" in item for item in items]
    if any(has_box):
        if not all(has_box):
            raise ConfigError("cannot collate periodic and non-periodic structures in one batch")
        batch["box"] = torch.stack([item["box"] for item in items])
    return batch


def _worker_init(worker_id: int) -> None:
    # One thread per loader worker; the h5py handle is opened lazily in the worker.
    torch.set_num_threads(1)


def make_dataloader(
    path: str,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 0,
    indices: Optional[Sequence[int]] = None,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    drop_last: bool = False,
    in_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader of collated batches (contract in the module docstring).

    Parameters
    ----------
    path : str
    batch_size : int
        Structures per batch.
    shuffle : bool
        Reshuffle every epoch, reproducibly from ``seed``.
    num_workers : int
        Loader processes (each opens its own h5py handle).
    indices : sequence of int, optional
        File structure indices to use (e.g. from :func:`openmm_distill.training.datasets.split_indices`).
    seed : int
    dtype : torch.dtype
        Positions/forces/box dtype (default float32).
    drop_last : bool
    in_memory : bool
        See :class:`StructureDataset`.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
    dataset = StructureDataset(path, indices, dtype=dtype, in_memory=in_memory)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=bool(shuffle),
        num_workers=int(num_workers),
        collate_fn=collate_structures,
        generator=generator,
        drop_last=bool(drop_last),
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )


def molecule_indices(path: str, names: Sequence[str]) -> np.ndarray:
    """File indices of all structures of the named molecules (e.g. a catalog split).

    Names absent from the file are ignored.
    """
    with LabelledDataset(path) as ds:
        wanted = {i for i, name in enumerate(ds.molecule_names) if name in set(names)}
        return np.flatnonzero(np.isin(ds.molecule_id, sorted(wanted))).astype(np.int64)
