"""Everything that touches ``torch.jit`` lives here (TorchScript is frozen upstream;
keeping it in one module keeps the upgrade path to ``torch.export`` small).

A compiled student is a TorchScript archive of :class:`DeployedStudent` with a
JSON metadata record embedded as an extra file (elements, cutoff, units,
preset, versions, provenance, training metrics). :func:`compile_student`
checks that the scripted module reproduces the eager one before the file is
written; :func:`load_compiled` refuses files that are not compiled students or
that come from an incompatible format version.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from openmm_distill.elements import symbols
from openmm_distill.errors import ConfigError, IncompatibleFileError, MissingFileError
from openmm_distill.export.deployed import DeployedStudent
from openmm_distill.models.registry import count_parameters
from openmm_distill.units import ANGSTROM_TO_NM
from openmm_distill.version import __version__

COMPILED_KIND = "openmm-distill/compiled-student"
COMPILED_FORMAT_VERSION = 1
METADATA_FILE = "openmm_distill_metadata.json"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _probe_structure(elements) -> Tuple[torch.Tensor, torch.Tensor]:
    """A small, deterministic test structure using every supported element (positions in nm)."""
    rng = np.random.default_rng(0)
    z = np.array(list(elements) * 2, dtype=np.int64)
    # Atoms on a jittered line-free cloud, at least ~1 A apart, within the cutoff of each other.
    pos = rng.uniform(-0.25, 0.25, size=(len(z), 3))
    return torch.tensor(z), torch.tensor(pos, dtype=torch.float64)


def _energy_and_forces(module, z, pos_nm, box=None):
    module.set_atoms(z, None)
    pos = pos_nm.clone().requires_grad_(True)
    e = module(pos, box)
    (g,) = torch.autograd.grad(e, pos)
    return e.detach().double(), -g.detach().double()


def verify_agreement(reference: nn.Module, candidate: nn.Module, elements, dtype: torch.dtype,
                     what: str = "scripted module disagrees with eager") -> Dict[str, float]:
    """Compare two deployed modules' energies and forces on a probe structure (raises ``what`` on mismatch)."""
    z, pos = _probe_structure(elements)
    e0, f0 = _energy_and_forces(reference, z, pos)
    e1, f1 = _energy_and_forces(candidate, z, pos)
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    de = float(abs(e0 - e1))
    df = float((f0 - f1).abs().max())
    fscale = float(f0.abs().max()) + 1.0
    if de > rtol * (abs(float(e0)) + 1.0) or df > rtol * 10 * fscale:
        raise RuntimeError(
            f"{what}: |dE| = {de:.3g} kJ/mol, max |dF| = {df:.3g} kJ/mol/nm; not writing"
        )
    return {"energy_abs_diff_kj_per_mol": de, "force_max_abs_diff_kj_per_mol_nm": df}


def build_metadata(model: nn.Module, dtype: str, preset: Optional[str], extra: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    meta: Dict[str, Any] = {
        "kind": COMPILED_KIND,
        "format_version": COMPILED_FORMAT_VERSION,
        "architecture": type(model).__name__.lower(),
        "preset": preset,
        "elements": list(model.elements),
        "element_symbols": symbols(model.elements),
        "cutoff_angstrom": float(model.cutoff),
        "cutoff_nm": float(model.cutoff) * ANGSTROM_TO_NM,
        "hyperparameters": {
            "hidden": model.hidden, "n_interactions": model.n_interactions,
            "cutoff": float(model.cutoff), "n_rbf": model.n_rbf,
        },
        "n_parameters": count_parameters(model),
        "dtype": dtype,
        "units": {"positions": "nm", "box_vectors": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"},
        "package_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(extra or {})
    return meta


def compile_student(
    model: nn.Module,
    output_path: str | os.PathLike,
    *,
    dtype: str = "float32",
    preset: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
    all_pairs_max_atoms: int = 256,
) -> Dict[str, Any]:
    """Script a student, check it against eager, and write it (atomically) with metadata.

    Parameters
    ----------
    model : the trained student (Angstrom/eV inside)
    output_path : where the TorchScript file goes
    dtype : "float32" or "float64", the arithmetic of the deployed network
    preset : preset name recorded in the metadata
    metadata : extra metadata (teacher, training data hash, config, metrics, ...)

    Returns the metadata dict that was embedded.
    """
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not supported; choose one of {list(_DTYPES)}")
    import copy

    eager = DeployedStudent(copy.deepcopy(model).eval(), _DTYPES[dtype], all_pairs_max_atoms)
    for p in eager.parameters():
        p.requires_grad_(False)
    scripted = torch.jit.script(eager)
    check = verify_agreement(eager, scripted, model.elements, _DTYPES[dtype])
    meta = build_metadata(model, dtype, preset, metadata)
    meta["scripted_vs_eager"] = check
    # Ship the module unbound: set_atoms() is called per System.
    scripted.set_atoms(torch.tensor(model.elements[:1]), None)
    scripted.species = torch.zeros(0, dtype=torch.long)
    scripted.atomic_numbers = torch.zeros(0, dtype=torch.long)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=output_path.name + ".", suffix=".tmp", dir=output_path.parent)
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(meta, indent=1, default=str)})
        os.replace(tmp, output_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return meta


def read_metadata(path: str | os.PathLike) -> Dict[str, Any]:
    """Read and validate the metadata of a compiled student without keeping the module."""
    return load_compiled(path)[1]


def load_compiled(path: str | os.PathLike, map_location: str = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a compiled student and its metadata; raises :class:`IncompatibleFileError` for foreign files."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"compiled student {str(path)!r} does not exist")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as exc:
        raise IncompatibleFileError(
            f"{str(path)!r} is not a TorchScript file (is it a training checkpoint? compile it with "
            f"`openmm-distill compile`): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    if not extra[METADATA_FILE]:
        raise IncompatibleFileError(f"{str(path)!r} is a TorchScript file but not a compiled openmm-distill student (no metadata)")
    meta = json.loads(extra[METADATA_FILE])
    if meta.get("kind") != COMPILED_KIND:
        raise IncompatibleFileError(f"{str(path)!r} is not a compiled openmm-distill student (kind={meta.get('kind')!r})")
    if meta.get("format_version") != COMPILED_FORMAT_VERSION:
        raise IncompatibleFileError(
            f"{str(path)!r} has compiled-student format version {meta.get('format_version')}, this openmm-distill "
            f"reads version {COMPILED_FORMAT_VERSION} (file written by openmm-distill {meta.get('package_version')}); "
            "recompile it from its checkpoint"
        )
    return module, meta


def module_to_bytes(module: torch.jit.ScriptModule) -> bytes:
    """Serialise a scripted module (for embedding in a pickled PythonForce computation)."""
    import io

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def module_from_bytes(data: bytes, map_location: str = "cpu") -> torch.jit.ScriptModule:
    import io

    return torch.jit.load(io.BytesIO(data), map_location=map_location)
