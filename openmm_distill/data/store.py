"""The HDF5 dataset format: a ragged, append-only layout with commit markers.

Layout (format version 1)
-------------------------
Per atom, all structures concatenated (``total_atoms`` rows):

``atomic_numbers``  int16 (total_atoms,)
``positions``       float64 (total_atoms, 3), Angstrom
``forces``          float64 (total_atoms, 3), eV/Angstrom

Per structure (``n_structures`` rows; structure ``i`` owns atom rows
``offsets[i] : offsets[i] + n_atoms[i]``):

``energy``          float64 (n,), eV (total energy as the teacher reports it)
``offsets``         int64 (n,)
``n_atoms``         int32 (n,)
``molecule_id``     int32 (n,), index into ``molecule_names``
``charge``          int16 (n,), total charge in elementary charges
``key``             str (n,), unique stable key (resume and merge use it)
``provenance``      str (n,), JSON: how the geometry was made
``box``             float64 (n, 3, 3), Angstrom, row vectors; only in periodic datasets

Per molecule: ``molecule_names`` str, ``molecule_smiles`` str.
Bookkeeping: ``failed_keys`` / ``failed_reasons`` str (what could not be
labelled, and why), ``completed_items`` str (work items, i.e. molecules, that
are fully done; a resumed job skips them).

Root attributes: ``format``, ``format_version``, ``package_version``,
``created_utc``, ``creation_command``, ``energy_unit``, ``force_unit``,
``length_unit``, ``teacher_name``, ``teacher_version``, ``teacher_settings``
(JSON), ``sampling_config`` (JSON), ``complete`` (True once published) and the
commit counters ``n_structures``, ``n_atoms_total``, ``n_molecules``,
``n_failures``, ``n_completed``.

Crash safety
------------
Every dataset is chunked, compressed and resizable. :meth:`DatasetWriter.commit`
writes the counters *after* the data and flushes; a writer reopened with
``append=True`` truncates every dataset back to the last committed counters,
so a job killed between commits loses at most the uncommitted item and never
leaves half a structure behind. (A kill in the middle of HDF5's own metadata
write can still damage the file; HDF5 has no journal. The commit unit is
one molecule, so that window is short.) Jobs write to ``<output>.partial`` and
publish with :func:`os.replace` when done.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import h5py
import numpy as np

from openmm_distill import units
from openmm_distill.data.records import Failure, Geometry, LabelledStructure
from openmm_distill.errors import ConfigError, IncompatibleFileError, InvalidPositionsError, MissingFileError
from openmm_distill.version import __version__

FORMAT_NAME = "openmm-distill-dataset"
FORMAT_VERSION = 1
COMPRESSIONS = ("gzip", "lzf", "none")

_STR = h5py.string_dtype("utf-8")
# name -> (dtype, row shape, chunk rows)
_PER_ATOM = {
    "atomic_numbers": (np.int16, (), 16384),
    "positions": (np.float64, (3,), 8192),
    "forces": (np.float64, (3,), 8192),
}
_PER_STRUCTURE = {
    "energy": (np.float64, (), 4096),
    "offsets": (np.int64, (), 4096),
    "n_atoms": (np.int32, (), 4096),
    "molecule_id": (np.int32, (), 4096),
    "charge": (np.int16, (), 4096),
    "key": (_STR, (), 1024),
    "provenance": (_STR, (), 1024),
}
_BOX = ("box", (np.float64, (3, 3), 1024))
_PER_MOLECULE = {"molecule_names": (_STR, (), 1024), "molecule_smiles": (_STR, (), 1024)}
_FAILURES = {"failed_keys": (_STR, (), 1024), "failed_reasons": (_STR, (), 1024)}
_COMPLETED = {"completed_items": (_STR, (), 1024)}
_COUNTERS = {
    "n_structures": list(_PER_STRUCTURE),
    "n_atoms_total": list(_PER_ATOM),
    "n_molecules": list(_PER_MOLECULE),
    "n_failures": list(_FAILURES),
    "n_completed": list(_COMPLETED),
}


def partial_path(path: str) -> str:
    """The in-progress file of a job whose result will be ``path``."""
    return str(path) + ".partial"


def _strings(ds) -> List[str]:
    return [str(s) for s in ds.asstr()[()]] if ds.shape[0] else []


class DatasetWriter:
    """Append labelled structures to an HDF5 file in the ragged layout.

    Parameters
    ----------
    path : str
        File to write (callers normally pass ``partial_path(output)``).
    metadata : dict, optional
        For a new file: ``teacher`` (dict from :meth:`Teacher.describe`),
        ``sampling_config`` (dict), ``creation_command`` (str) and any extra
        JSON-serialisable entries (stored as JSON attributes ``meta_<name>``).
    append : bool
        Open an existing file and continue after its last commit (truncating
        anything uncommitted). Otherwise a new file is created (an existing one is replaced).
    compression : str
        ``"gzip"`` (default, level 4, readable everywhere), ``"lzf"`` (faster,
        h5py only) or ``"none"``.

    Notes
    -----
    Call :meth:`append`, :meth:`add_failures`, :meth:`mark_completed` for a
    work item, then :meth:`commit`. As a context manager it commits on a normal
    exit and calls :meth:`abort` (no commit) when an exception escapes.
    """

    def __init__(
        self,
        path: str,
        *,
        metadata: Optional[Dict[str, Any]] = None,
        append: bool = False,
        compression: str = "gzip",
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigError(f"compression={compression!r} is not supported; allowed: {', '.join(COMPRESSIONS)}")
        self.path = str(path)
        self._compression = {} if compression == "none" else (
            {"compression": "gzip", "compression_opts": 4} if compression == "gzip" else {"compression": "lzf"}
        )
        if append:
            self._f = h5py.File(self.path, "r+")
            _check_format(self._f, self.path)
            self._truncate_to_commit()
        else:
            self._f = h5py.File(self.path, "w")
            self._create(metadata or {})
        f = self._f
        self._keys = set(_strings(f["key"]))
        self._molecules = {name: i for i, name in enumerate(_strings(f["molecule_names"]))}
        self._failed = set(_strings(f["failed_keys"]))
        self._completed = set(_strings(f["completed_items"]))

    # -- creation and recovery -------------------------------------------------
    def _dataset(self, name: str, spec) -> None:
        dtype, shape, chunk = spec
        self._f.create_dataset(
            name,
            shape=(0,) + shape,
            maxshape=(None,) + shape,
            dtype=dtype,
            chunks=(chunk,) + shape,
            **self._compression,
        )

    def _create(self, metadata: Dict[str, Any]) -> None:
        f = self._f
        teacher = metadata.get("teacher", {}) or {}
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["package_version"] = __version__
        f.attrs["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.attrs["creation_command"] = str(metadata.get("creation_command", ""))
        f.attrs["energy_unit"] = units.ENERGY_UNIT
        f.attrs["force_unit"] = units.FORCE_UNIT
        f.attrs["length_unit"] = units.LENGTH_UNIT
        f.attrs["teacher_name"] = str(teacher.get("name", ""))
        f.attrs["teacher_version"] = str(teacher.get("version", ""))
        f.attrs["teacher_settings"] = json.dumps(teacher.get("settings", {}), sort_keys=True)
        f.attrs["sampling_config"] = json.dumps(metadata.get("sampling_config", {}), sort_keys=True)
        for k, v in metadata.items():
            if k not in ("teacher", "sampling_config", "creation_command"):
                f.attrs[f"meta_{k}"] = json.dumps(v, sort_keys=True)
        f.attrs["complete"] = False
        for group in (_PER_ATOM, _PER_STRUCTURE, _PER_MOLECULE, _FAILURES, _COMPLETED):
            for name, spec in group.items():
                self._dataset(name, spec)
        for counter in _COUNTERS:
            f.attrs[counter] = 0
        f.flush()

    def _truncate_to_commit(self) -> None:
        f = self._f
        for counter, names in _COUNTERS.items():
            n = int(f.attrs[counter])
            if counter == "n_structures" and "box" in f:
                names = names + ["box"]
            for name in names:
                if f[name].shape[0] != n:
                    f[name].resize(n, axis=0)
        f.attrs["complete"] = False
        f.flush()

    # -- state -------------------------------------------------------------------
    @property
    def keys(self) -> set:
        """Keys of the structures written so far (a copy)."""
        return set(self._keys)

    def has_key(self, key: str) -> bool:
        """Whether a structure with this key has been written."""
        return key in self._keys

    @property
    def failed_keys(self) -> set:
        return set(self._failed)

    @property
    def completed_items(self) -> set:
        """Work items (molecule names) marked complete."""
        return set(self._completed)

    @property
    def n_structures(self) -> int:
        return int(self._f["energy"].shape[0])

    @property
    def n_molecules(self) -> int:
        return len(self._molecules)

    @property
    def metadata(self) -> Dict[str, Any]:
        return _read_metadata(self._f)

    # -- writing -------------------------------------------------------------------
    def _extend(self, name: str, values: np.ndarray) -> None:
        ds = self._f[name]
        n = ds.shape[0]
        if len(values) == 0:
            return
        ds.resize(n + len(values), axis=0)
        ds[n:] = values

    def _molecule_id(self, name: str, smiles: str) -> int:
        if name not in self._molecules:
            self._molecules[name] = len(self._molecules)
            self._extend("molecule_names", np.array([name], dtype=object))
            self._extend("molecule_smiles", np.array([smiles or ""], dtype=object))
        return self._molecules[name]

    def append(self, structures: Sequence[LabelledStructure]) -> None:
        """Append structures (uncommitted until :meth:`commit`).

        Raises
        ------
        ValueError
            On a duplicate key, inconsistent array shapes, or mixing periodic
            and non-periodic structures in one file.
        """
        structures = list(structures)
        if not structures:
            return
        f = self._f
        for s in structures:
            if s.key in self._keys:
                raise ConfigError(f"duplicate structure key {s.key!r} in {self.path}")
            n = len(s.atomic_numbers)
            if np.shape(s.positions) != (n, 3) or np.shape(s.forces) != (n, 3):
                raise InvalidPositionsError(f"structure {s.key!r}: positions and forces must have shape ({n}, 3)")
        periodic = [s.box is not None for s in structures]
        if any(periodic) != all(periodic):
            raise IncompatibleFileError("cannot mix periodic and non-periodic structures in one dataset")
        if periodic[0] and "box" not in f:
            if f["energy"].shape[0]:
                raise IncompatibleFileError("cannot add periodic structures to a non-periodic dataset")
            self._dataset(*_BOX)
        if not periodic[0] and "box" in f:
            raise IncompatibleFileError("cannot add non-periodic structures to a periodic dataset")

        start = int(f["positions"].shape[0])
        n_atoms = np.array([len(s.atomic_numbers) for s in structures], dtype=np.int64)
        offsets = start + np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
        mol_ids = np.array([self._molecule_id(s.molecule, s.smiles) for s in structures], dtype=np.int32)
        self._extend("atomic_numbers", np.concatenate([np.asarray(s.atomic_numbers) for s in structures]).astype(np.int16))
        self._extend("positions", np.concatenate([np.asarray(s.positions, dtype=np.float64) for s in structures]))
        self._extend("forces", np.concatenate([np.asarray(s.forces, dtype=np.float64) for s in structures]))
        self._extend("energy", np.array([float(s.energy) for s in structures], dtype=np.float64))
        self._extend("offsets", offsets.astype(np.int64))
        self._extend("n_atoms", n_atoms.astype(np.int32))
        self._extend("molecule_id", mol_ids)
        self._extend("charge", np.array([int(s.charge) for s in structures], dtype=np.int16))
        self._extend("key", np.array([s.key for s in structures], dtype=object))
        self._extend("provenance", np.array([s.provenance_json() for s in structures], dtype=object))
        if periodic[0]:
            self._extend("box", np.stack([np.asarray(s.box, dtype=np.float64).reshape(3, 3) for s in structures]))
        self._keys.update(s.key for s in structures)

    def add_failures(self, failures: Iterable[Failure]) -> None:
        """Record structures or items that failed (uncommitted until :meth:`commit`)."""
        failures = [x for x in failures if x.key not in self._failed]
        if not failures:
            return
        self._extend("failed_keys", np.array([x.key for x in failures], dtype=object))
        self._extend("failed_reasons", np.array([x.reason for x in failures], dtype=object))
        self._failed.update(x.key for x in failures)

    def mark_completed(self, items: Iterable[str]) -> None:
        """Record work items (molecule names) as done (uncommitted until :meth:`commit`)."""
        items = [i for i in items if i not in self._completed]
        if items:
            self._extend("completed_items", np.array(items, dtype=object))
            self._completed.update(items)

    def commit(self) -> None:
        """Make everything appended so far durable: update the counters, then flush."""
        f = self._f
        f.flush()
        f.attrs["n_structures"] = int(f["energy"].shape[0])
        f.attrs["n_atoms_total"] = int(f["positions"].shape[0])
        f.attrs["n_molecules"] = int(f["molecule_names"].shape[0])
        f.attrs["n_failures"] = int(f["failed_keys"].shape[0])
        f.attrs["n_completed"] = int(f["completed_items"].shape[0])
        f.flush()

    def close(self, complete: bool = False) -> None:
        """Commit and close. ``complete=True`` marks the file finished (before publishing)."""
        if self._f.id.valid:
            self.commit()
            if complete:
                self._f.attrs["complete"] = True
            self._f.close()

    def abort(self) -> None:
        """Close without committing: anything appended since the last commit is
        dropped when the file is reopened (used when a job fails part-way)."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def publish(partial: str, final: str) -> None:
    """Atomically move a finished ``partial`` file to ``final`` (same filesystem)."""
    os.replace(partial, final)


def _check_format(f: h5py.File, path: str) -> None:
    if f.attrs.get("format") != FORMAT_NAME:
        raise IncompatibleFileError(f"{path} is not an openmm-distill dataset (no format={FORMAT_NAME!r} attribute)")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise IncompatibleFileError(
            f"{path} has dataset format version {version}; this openmm-distill reads version {FORMAT_VERSION}"
        )


def _read_metadata(f: h5py.File) -> Dict[str, Any]:
    meta: Dict[str, Any] = {}
    for k, v in f.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.generic):
            v = v.item()
        if k in ("teacher_settings", "sampling_config") or k.startswith("meta_"):
            try:
                v = json.loads(v)
            except (TypeError, ValueError):
                pass
        meta[k] = v
    meta["teacher"] = {
        "name": meta.get("teacher_name", ""),
        "version": meta.get("teacher_version", ""),
        "settings": meta.get("teacher_settings", {}),
    }
    meta["periodic"] = "box" in f
    return meta


class LabelledDataset:
    """Read access to a dataset file (eV, eV/Angstrom, Angstrom).

    Per-structure index arrays (offsets, sizes, energies, molecule ids) are read
    once on opening; per-atom arrays are read on demand.

    Parameters
    ----------
    path : str
        A published dataset or a ``.partial`` file (only committed structures are visible).

    Examples
    --------
    >>> with LabelledDataset("data.h5") as ds:          # doctest: +SKIP
    ...     s = ds[0]; s.energy, s.forces.shape
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._f = _open_for_reading(self.path)
        _check_format(self._f, self.path)
        f = self._f
        self._n = int(f.attrs["n_structures"])
        self.offsets = f["offsets"][: self._n].astype(np.int64)
        self.n_atoms = f["n_atoms"][: self._n].astype(np.int64)
        self.energy = f["energy"][: self._n].astype(np.float64)
        self.molecule_id = f["molecule_id"][: self._n].astype(np.int64)
        self.charge = f["charge"][: self._n].astype(np.int64)
        n_mol = int(f.attrs["n_molecules"])
        self.molecule_names = [str(s) for s in f["molecule_names"].asstr()[:n_mol]]
        self.molecule_smiles = [str(s) for s in f["molecule_smiles"].asstr()[:n_mol]]
        self.metadata = _read_metadata(f)
        self.periodic = "box" in f
        self._keys: Optional[List[str]] = None

    def __len__(self) -> int:
        return self._n

    @property
    def keys(self) -> List[str]:
        """Structure keys, in file order."""
        if self._keys is None:
            self._keys = [str(s) for s in self._f["key"].asstr()[: self._n]]
        return self._keys

    @property
    def provenance(self) -> List[Dict[str, Any]]:
        """Per-structure provenance records (parsed JSON), in file order."""
        return [json.loads(s) for s in self._f["provenance"].asstr()[: self._n]]

    @property
    def failures(self) -> List[Failure]:
        n = int(self._f.attrs["n_failures"])
        keys = self._f["failed_keys"].asstr()[:n]
        reasons = self._f["failed_reasons"].asstr()[:n]
        return [Failure(str(k), str(r)) for k, r in zip(keys, reasons)]

    @property
    def completed_items(self) -> List[str]:
        n = int(self._f.attrs["n_completed"])
        return [str(s) for s in self._f["completed_items"].asstr()[:n]]

    @property
    def total_atoms(self) -> int:
        return int(self.n_atoms.sum())

    def structure_molecule(self) -> List[str]:
        """Molecule name of each structure."""
        return [self.molecule_names[i] for i in self.molecule_id]

    def __getitem__(self, i: int) -> LabelledStructure:
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"structure index {i} out of range for {self._n} structures")
        f = self._f
        a, n = int(self.offsets[i]), int(self.n_atoms[i])
        mol = int(self.molecule_id[i])
        return LabelledStructure(
            key=str(f["key"].asstr()[i]),
            molecule=self.molecule_names[mol],
            smiles=self.molecule_smiles[mol],
            atomic_numbers=f["atomic_numbers"][a : a + n].astype(np.int64),
            positions=f["positions"][a : a + n],
            energy=float(self.energy[i]),
            forces=f["forces"][a : a + n].astype(np.float64),
            box=f["box"][i] if self.periodic else None,
            charge=int(self.charge[i]),
            provenance=json.loads(f["provenance"].asstr()[i]),
            index=i,
        )

    def block(self, start: int, stop: int) -> List[LabelledStructure]:
        """Structures ``start..stop-1``, read with one slice per array (fast for copying)."""
        start, stop = max(0, int(start)), min(self._n, int(stop))
        if start >= stop:
            return []
        f = self._f
        a0 = int(self.offsets[start])
        a1 = int(self.offsets[stop - 1] + self.n_atoms[stop - 1])
        numbers = f["atomic_numbers"][a0:a1].astype(np.int64)
        positions = f["positions"][a0:a1]
        forces = f["forces"][a0:a1].astype(np.float64)
        keys = f["key"].asstr()[start:stop]
        provenance = f["provenance"].asstr()[start:stop]
        boxes = f["box"][start:stop] if self.periodic else None
        out = []
        for j, i in enumerate(range(start, stop)):
            a, n = int(self.offsets[i]) - a0, int(self.n_atoms[i])
            mol = int(self.molecule_id[i])
            out.append(
                LabelledStructure(
                    key=str(keys[j]),
                    molecule=self.molecule_names[mol],
                    smiles=self.molecule_smiles[mol],
                    atomic_numbers=numbers[a : a + n],
                    positions=positions[a : a + n],
                    energy=float(self.energy[i]),
                    forces=forces[a : a + n],
                    box=None if boxes is None else boxes[j],
                    charge=int(self.charge[i]),
                    provenance=json.loads(provenance[j]),
                    index=i,
                )
            )
        return out

    def __iter__(self) -> Iterator[LabelledStructure]:
        for lo in range(0, self._n, 1024):
            yield from self.block(lo, lo + 1024)

    def geometries(self) -> List[Geometry]:
        """Every structure as an unlabelled :class:`Geometry` (same key, molecule, charge, box), in file order.

        For relabelling with another teacher: the energies and forces are left
        out, and so is the provenance entry ``"label"`` (it described how the
        old label was obtained).
        """
        out = []
        for s in self:
            provenance = {k: v for k, v in s.provenance.items() if k != "label"}
            out.append(
                Geometry(
                    key=s.key,
                    molecule=s.molecule,
                    atomic_numbers=np.asarray(s.atomic_numbers, dtype=np.int64),
                    positions=np.array(s.positions, dtype=np.float64),
                    box=None if s.box is None else np.array(s.box, dtype=np.float64),
                    charge=s.charge,
                    smiles=s.smiles,
                    provenance=provenance,
                )
            )
        return out

    def read_arrays(self) -> Dict[str, np.ndarray]:
        """All per-atom and per-structure arrays in memory (for validation and statistics).

        Returns
        -------
        dict
            ``atomic_numbers`` (total_atoms,), ``positions`` and ``forces``
            (total_atoms, 3), ``energy``, ``offsets``, ``n_atoms``, ``molecule_id``,
            ``charge`` (n,), and ``box`` (n, 3, 3) for periodic datasets.
        """
        f = self._f
        total = int(f.attrs["n_atoms_total"])
        out = {
            "atomic_numbers": f["atomic_numbers"][:total].astype(np.int64),
            "positions": f["positions"][:total],
            "forces": f["forces"][:total].astype(np.float64),
            "energy": self.energy,
            "offsets": self.offsets,
            "n_atoms": self.n_atoms,
            "molecule_id": self.molecule_id,
            "charge": self.charge,
        }
        if self.periodic:
            out["box"] = f["box"][: self._n]
        return out

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> "LabelledDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_for_reading(path: str) -> h5py.File:
    """The HDF5 file at ``path``, or a one-line error: missing (and why), or not HDF5."""
    if not os.path.exists(path):
        hint = " (a job is still running or was interrupted: a .partial file exists)" if os.path.exists(partial_path(path)) else ""
        raise MissingFileError(f"no dataset at {path}{hint}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise IncompatibleFileError(f"{path} is not an HDF5 dataset ({exc})") from None


def open_dataset(path: str) -> LabelledDataset:
    """Open a dataset for reading; see :class:`LabelledDataset`."""
    return LabelledDataset(path)


def read_metadata(path: str) -> Dict[str, Any]:
    """Root attributes of a dataset file as a dict (JSON attributes parsed)."""
    with _open_for_reading(path) as f:
        _check_format(f, path)
        return _read_metadata(f)


def write_structures(
    path: str,
    structures: Sequence[LabelledStructure],
    *,
    metadata: Optional[Dict[str, Any]] = None,
    failures: Sequence[Failure] = (),
    completed_items: Sequence[str] = (),
    compression: str = "gzip",
) -> None:
    """Write a complete dataset in one go, atomically (``.partial`` then rename)."""
    tmp = partial_path(path)
    with DatasetWriter(tmp, metadata=metadata, compression=compression) as w:
        w.append(structures)
        w.add_failures(failures)
        w.mark_completed(completed_items)
        w.close(complete=True)
    publish(tmp, path)
