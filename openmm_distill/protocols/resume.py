"""Each finished system's record kept on disk, so that an NVE or stability sweep killed part-way resumes.

A sweep of a 64-molecule split at 100 ps runs for hours; the protocol's JSON is written only at the
end, so without this a kill loses every molecule already simulated. Each record goes to
``<output>/systems/<name>.json`` as soon as its system is done, with a fingerprint of what was
measured (the student file's SHA-256, the settings, backend, platform, precision and package
version, and the system: its structure file's SHA-256 or its atoms and positions). Running the
same command again reuses the records whose fingerprint matches and simulates the rest; a changed
student, setting or structure is measured again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from openmm_distill.checksums import file_sha256
from openmm_distill.export.student import load_student
from openmm_distill.protocols.openmm_setup import ModelLike
from openmm_distill.protocols.output import to_jsonable, write_json
from openmm_distill.systems.resolve import MolecularSystem, safe_name
from openmm_distill.version import __version__

import openmm


def fingerprint(model: ModelLike, **measured: Any) -> Optional[str]:
    """SHA-256 of the student file and ``measured`` (settings, backend, ...); None for an ``openmm.System``.

    A ready System cannot be identified cheaply (serialising a TorchForce to XML crashes in
    openmmtorch 1.5), so its sweeps are not resumed.
    """
    if isinstance(model, openmm.System):
        return None
    what = {"student": file_sha256(load_student(model).path), "version": __version__, **to_jsonable(measured)}
    return _sha256(json.dumps(what, sort_keys=True, default=str))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def system_identity(spec: Any) -> str:
    """What a system argument stands for: a structure file's checksum, a MolecularSystem's atoms, positions and
    box, else the argument itself (a catalog name, SMILES or water:N resolves the same way every time)."""
    if isinstance(spec, MolecularSystem):
        arrays = [spec.atomic_numbers, spec.positions_nm] + ([] if spec.box_nm is None else [spec.box_nm])
        return "structure:" + hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
    if isinstance(spec, (str, os.PathLike)) and _is_file(spec):
        return "file:" + file_sha256(spec)
    return f"argument:{spec}"


def _is_file(spec: "str | os.PathLike") -> bool:
    try:
        return Path(spec).is_file()
    except OSError:  # a SMILES longer than a file name may be
        return False


def system_key(spec: Any) -> str:
    """The file name stem of a system argument (a name, SMILES, file, or MolecularSystem)."""
    return safe_name(spec if isinstance(spec, str) else getattr(spec, "name", str(spec)))


class SystemRecords:
    """Finished systems' records (``record``, the protocol's per-system dict, and the ``files`` written for it).

    Parameters
    ----------
    output_dir : path
        The protocol's output folder; records go to its ``systems/`` subfolder.
    fingerprint : str or None
        What was measured (see :func:`fingerprint`); None keeps records in memory only.
    resume : bool
        Reuse matching records already on disk (False: measure everything again).
    """

    def __init__(self, output_dir: Path, fingerprint: Optional[str], resume: bool = True):
        self.folder = Path(output_dir) / "systems"
        self.fingerprint = fingerprint
        self.resume = resume and fingerprint is not None
        self._kept: Dict[str, Dict[str, Any]] = {}

    def _path(self, spec: Any) -> Path:
        return self.folder / f"{system_key(spec)}.json"

    def _keys(self, spec: Any) -> Tuple[str, Optional[str]]:
        """(key in memory, fingerprint on disk) of a system, from one look at what it stands for."""
        identity = system_identity(spec)
        # Two systems may share a name (two structures called "ligand"): in memory they stay apart.
        return (f"{system_key(spec)}|{identity}",
                None if self.fingerprint is None else _sha256(self.fingerprint + identity))

    def done(self, spec: Any) -> Optional[Dict[str, Any]]:
        """``{"record": ..., "files": [...]}`` of a finished system, or None if it is still to run."""
        key, fingerprint = self._keys(spec)
        if key in self._kept:
            return self._kept[key]
        if not self.resume or not self._path(spec).is_file():
            return None
        try:
            saved = json.loads(self._path(spec).read_text())
        except (OSError, ValueError):  # a record cut short by a kill: measure again
            return None
        if saved.get("fingerprint") != fingerprint:
            return None
        self._kept[key] = saved
        return saved

    def keep(self, spec: Any, record: Dict[str, Any], files: List[Path]) -> None:
        """Remember a finished system (on disk at once, unless there is no fingerprint)."""
        key, fingerprint = self._keys(spec)
        saved = to_jsonable({"fingerprint": fingerprint, "record": record, "files": [str(f) for f in files]})
        self._kept[key] = saved
        if self.fingerprint is not None:
            write_json(self._path(spec), saved)

    def todo(self, specs: List[Any]) -> List[Any]:
        """The systems of ``specs`` that have no matching record."""
        return [spec for spec in specs if self.done(spec) is None]

    def records(self, specs: List[Any]) -> List[Dict[str, Any]]:
        """The records of ``specs``, in their order (all must be done)."""
        return [self.done(spec)["record"] for spec in specs]

    def files(self, specs: List[Any]) -> List[Path]:
        return [Path(f) for spec in specs for f in self.done(spec)["files"]]


def open_records(protocol: str, model: ModelLike, specs: List[Any], output_dir: Path, settings: Any, *,
                 platform: Optional[str], precision: Optional[str], backend: str, resume: bool
                 ) -> Tuple[SystemRecords, List[Any]]:
    """A sweep's records and the systems still to run; one line on stderr when some are reused."""
    records = SystemRecords(output_dir, fingerprint(model, settings=asdict(settings), platform=platform,
                                                    precision=precision, backend=backend), resume)
    todo = records.todo(specs)
    if len(todo) < len(specs):  # so that nobody mistakes a resumed run for a fresh one
        print(f"{protocol}: resuming, {len(specs) - len(todo)} of {len(specs)} systems already done in "
              f"{records.folder} (--no-resume measures them again)", file=sys.stderr)
    return records, todo
