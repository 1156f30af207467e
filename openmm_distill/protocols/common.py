"""Shared plumbing of the validation protocols: systems, models, platforms, output files.

Every protocol takes a *model* (a compiled student given by name, path or
:class:`~openmm_distill.export.student.CompiledStudent`, or any ready
``openmm.System``) and one or more *systems* (a name from ``systems/``, a
structure file, a SMILES string, ``water:N`` for a generated box of N waters,
or a :class:`MolecularSystem`). Units at this layer: positions in nm when they
go to OpenMM, Angstrom when they go to ASE or a teacher; both are available on
:class:`MolecularSystem`.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform as _platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import openmm
from openmm import app, unit

import openmm_distill as od
from openmm_distill.openmm_integration.platforms import describe_platform
from openmm_distill.openmm_integration.system import student_backends

# Systems the quick protocols run on when none are given: every ready-made
# structure of a small molecule in systems/structures (all in the test split).
DEFAULT_SYSTEMS: List[str] = ["ethanol", "aspirin", "alanine_dipeptide"]

# 1 kJ/mol in meV.
KJ_PER_MOL_TO_MEV = 1000.0 / 96.48533212331002
# Boltzmann constant, kJ/mol/K (OpenMM's value: MOLAR_GAS_CONSTANT_R).
BOLTZMANN_KJ_PER_MOL_K = 0.00831446261815324
# kJ/mol/nm -> eV/Angstrom
KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM = KJ_PER_MOL_TO_MEV / 1000.0 / 10.0

ModelLike = Union[str, os.PathLike, "od.api.CompiledStudent", openmm.System]


@dataclass
class MolecularSystem:
    """One system a protocol runs on.

    Attributes
    ----------
    name : str
        Short name used in tables and file names.
    topology : openmm.app.Topology
        Atoms, residues, bonds and (for periodic systems) the box.
    positions_nm : numpy.ndarray, float64, shape (N, 3)
        Starting positions, nm.
    atomic_numbers : numpy.ndarray, int64, shape (N,)
    box_nm : numpy.ndarray, float64, shape (3, 3), or None
        Periodic box vectors as rows, nm; ``None`` for an isolated molecule.
    source : str
        Where it came from (file path, SMILES, generator).
    smiles : str
        SMILES when known (catalog molecules, SMILES input), else ``""``.
    """

    name: str
    topology: app.Topology
    positions_nm: np.ndarray
    atomic_numbers: np.ndarray
    box_nm: Optional[np.ndarray] = None
    source: str = ""
    smiles: str = ""

    @property
    def n_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    @property
    def periodic(self) -> bool:
        return self.box_nm is not None

    @property
    def positions(self):
        """Positions as an OpenMM Quantity (nm)."""
        return self.positions_nm * unit.nanometer

    @property
    def positions_angstrom(self) -> np.ndarray:
        return self.positions_nm * 10.0

    @property
    def box_angstrom(self) -> Optional[np.ndarray]:
        return None if self.box_nm is None else self.box_nm * 10.0

    @property
    def file_stem(self) -> str:
        return safe_name(self.name)

    def bonds(self) -> np.ndarray:
        """Covalent bonds, shape (M, 2): from the topology, else guessed from the start geometry.

        Guessing uses covalent radii (RDKit's connectivity rule, via
        :func:`openmm_distill.systems.guess_bonds`) on the starting positions.
        """
        pairs = [(b.atom1.index, b.atom2.index) for b in self.topology.bonds()]
        if pairs:
            return np.array(pairs, dtype=np.int64).reshape(-1, 2)
        from openmm_distill.systems import guess_bonds

        return np.asarray(guess_bonds(self.atomic_numbers, self.positions_angstrom), dtype=np.int64).reshape(-1, 2)

    def describe(self) -> Dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {"name": self.name, "n_atoms": self.n_atoms, "formula": hill_formula(self.atomic_numbers),
                "periodic": self.periodic, "source": self.source, "smiles": self.smiles,
                "box_nm": None if self.box_nm is None else np.round(self.box_nm, 6).tolist()}


def hill_formula(atomic_numbers: Sequence[int]) -> str:
    """Hill-order formula (C, H, then alphabetical; alphabetical without carbon), e.g. ``C2H6O``."""
    from collections import Counter

    from openmm_distill.elements import symbol

    counts = Counter(symbol(int(z)) for z in atomic_numbers)
    first = [s for s in ("C", "H") if s in counts] if "C" in counts else []
    order = first + sorted(s for s in counts if s not in first)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (SMILES and paths become underscores)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "system"
    return cleaned[:60]


def _box_rows_nm(topology: app.Topology) -> Optional[np.ndarray]:
    vectors = topology.getPeriodicBoxVectors()
    if vectors is None:
        return None
    return np.array([v.value_in_unit(unit.nanometer) for v in vectors], dtype=np.float64).reshape(3, 3)


def _atomic_numbers(topology: app.Topology) -> np.ndarray:
    numbers = []
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name}) has no element")
        numbers.append(atom.element.atomic_number)
    return np.array(numbers, dtype=np.int64)


def resolve_system(spec: Union[str, os.PathLike, MolecularSystem]) -> MolecularSystem:
    """Turn a system argument into a :class:`MolecularSystem`.

    Parameters
    ----------
    spec : str, path-like or MolecularSystem
        ``"water:N"`` (a periodic box of N TIP3P-geometry waters at 1 g/cm^3,
        generated); a name from ``systems/structures`` (``"aspirin"``,
        ``"water_box"``); a catalog molecule (3D structure from its SMILES);
        a structure file (SDF, MOL, PDB, XYZ); or a SMILES string.
    """
    if isinstance(spec, MolecularSystem):
        return spec
    text = str(spec).strip()
    match = re.fullmatch(r"water(?:_box)?:(\d+)", text)
    if match:
        from openmm_distill import systems

        n = int(match.group(1))
        box = systems.water_box(n_waters=n)
        return MolecularSystem(f"water_{n}", box.topology, box.positions * 0.1, box.atomic_numbers,
                               None if box.box is None else box.box * 0.1, source=f"systems.water_box(n_waters={n})")
    from openmm_distill.systems_access import load_topology_and_positions

    path = Path(text)
    pdb = _ready_pdb(text) if not path.suffix else None
    if pdb is not None:
        # A ready PDB in systems/structures carries residue and atom names (amber14
        # templates for the classical reference) and bonds; SDFs do not.
        from openmm_distill import systems

        structure = systems.read_structure(pdb)
        topology = structure.topology or systems.structure_to_openmm_topology(structure)
        return MolecularSystem(text, topology, structure.positions * 0.1, structure.atomic_numbers,
                               None if structure.box is None else structure.box * 0.1, source=str(pdb),
                               smiles=_smiles_of(text))
    topology, positions = load_topology_and_positions(text)
    name = path.stem if path.suffix and path.is_file() else text
    return MolecularSystem(safe_name(name) if path.is_file() else name, topology,
                           np.asarray(positions.value_in_unit(unit.nanometer), dtype=np.float64),
                           _atomic_numbers(topology), _box_rows_nm(topology), source=text,
                           smiles=_smiles_of(text))


def _ready_pdb(name: str) -> Optional[Path]:
    """``systems/structures/<name>.pdb`` if it exists."""
    from openmm_distill import systems

    try:
        return systems.structure_path(name, suffixes=(".pdb",))
    except (FileNotFoundError, ValueError):
        return None


def _smiles_of(text: str) -> str:
    """SMILES of a catalog name or of a SMILES input; ``""`` for files."""
    if Path(text).is_file():
        return ""
    from openmm_distill import systems

    try:
        return systems.get_molecule(text).smiles
    except (KeyError, FileNotFoundError, ValueError):
        pass
    try:
        from rdkit import Chem

        return text if Chem.MolFromSmiles(text) is not None else ""
    except Exception:  # pragma: no cover - rdkit is a dependency
        return ""


def split_list(value: Union[None, str, Sequence[Any]]) -> List[str]:
    """``"a,b , c"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]``; ``None`` -> ``[]``."""
    if value is None:
        return []
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    out: List[str] = []
    for item in items:
        if isinstance(item, MolecularSystem):
            out.append(item)  # type: ignore[arg-type]
        else:
            out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def system_specs(systems: Union[None, str, Sequence[Any]] = None, split: Optional[str] = None,
                 max_systems: Optional[int] = None, default: Sequence[str] = DEFAULT_SYSTEMS) -> List[Any]:
    """The list of system arguments a protocol should run on.

    Parameters
    ----------
    systems : comma-separated string or sequence, optional
        Explicit systems (see :func:`resolve_system`).
    split : {"train", "validation", "test"}, optional
        All catalog molecules of this split (appended after ``systems``).
    max_systems : int, optional
        Keep only the first ``max_systems``.
    default : sequence of str
        Used when neither ``systems`` nor ``split`` is given.
    """
    specs = split_list(systems)
    if split:
        from openmm_distill import systems as sysmod

        specs += [e.name for e in sysmod.molecules(split)]
    if not specs:
        specs = list(default)
    if max_systems is not None:
        specs = specs[: max(0, int(max_systems))]
    return specs


# -- models -------------------------------------------------------------------------------------

def model_label(model: ModelLike) -> str:
    """Short name of a model for tables: the student's name, or ``"openmm-system"``."""
    if isinstance(model, openmm.System):
        return "openmm-system"
    return od.load_student(model).name


def student_info(model: ModelLike) -> Dict[str, Any]:
    """What identifies the model in a report: name, path, preset, size, dtype, elements, cutoff."""
    if isinstance(model, openmm.System):
        return {"name": "openmm-system", "kind": "openmm.System",
                "forces": [f.getName() or type(f).__name__ for f in model.getForces()]}
    student = od.load_student(model)
    meta = student.metadata
    return {"name": student.name, "kind": "compiled-student", "path": str(student.path),
            "preset": meta.get("preset"), "architecture": meta.get("architecture"),
            "n_parameters": meta.get("n_parameters"), "dtype": meta.get("dtype"),
            "elements": meta.get("element_symbols"), "cutoff_angstrom": meta.get("cutoff_angstrom"),
            "teacher": meta.get("teacher"), "trained": meta.get("trained")}


def build_system(model: ModelLike, molsys: MolecularSystem, backend: str = "torch") -> openmm.System:
    """The OpenMM System a protocol simulates.

    A student gets a fresh System whose only interaction is the student
    (:func:`openmm_distill.create_system`); an ``openmm.System`` is used as
    given (Contexts never modify it; it must match the topology's atoms).
    """
    if isinstance(model, openmm.System):
        if model.getNumParticles() != molsys.n_atoms:
            raise ValueError(f"the System has {model.getNumParticles()} particles but {molsys.name} has "
                             f"{molsys.n_atoms} atoms")
        return model
    return od.create_system(molsys.topology, od.load_student(model), backend=backend)


def make_simulation(system: openmm.System, molsys: MolecularSystem, integrator: openmm.Integrator,
                    platform: Optional[str] = None, precision: Optional[str] = None) -> app.Simulation:
    """A checked Simulation with the system's starting positions (and box)."""
    return od.create_simulation(molsys.topology, system, integrator, molsys.positions,
                                platform=platform, precision=precision)


def platform_info(simulation_or_context, model: Optional[ModelLike] = None) -> Dict[str, Any]:
    """Platform and precision a Context really uses, with a note on how forces are computed.

    The CPU platform evaluates its own forces in single precision (and
    integrates in double); a student's TorchForce runs in the compiled
    module's dtype whatever the platform.
    """
    context = getattr(simulation_or_context, "context", simulation_or_context)
    info: Dict[str, Any] = dict(describe_platform(context))
    name = info["platform"]
    if name == "CPU":
        info["note"] = ("CPU platform: OpenMM's own forces are computed in single precision, integration in "
                        "double; a TorchForce runs in the student's dtype")
    elif name == "Reference":
        info["note"] = "Reference platform: double precision throughout (slow)"
    else:
        info["note"] = f"{name} platform, precision {info.get('precision')}"
    backends = student_backends(context.getSystem())
    if backends:
        info["backend"] = ", ".join(sorted(set(backends)))
    if model is not None and not isinstance(model, openmm.System):
        info["student_dtype"] = od.load_student(model).metadata.get("dtype")
    threads = context.getPlatform().getPropertyValue(context, "Threads") if name == "CPU" else None
    if threads:
        info["threads"] = threads
    return info


def platform_sentence(info: Dict[str, Any]) -> str:
    """One Markdown sentence naming the platform, precision, force-precision note and student dtype."""
    if not info:
        return "Platform: not started."
    text = f"Platform: {info.get('platform', '?')}, precision: {info.get('precision', '?')}"
    if info.get("student_dtype"):
        text += f"; student module dtype {info['student_dtype']}"
    if info.get("backend"):
        text += f"; backend {info['backend']}"
    return text + "."


def degrees_of_freedom(system: openmm.System) -> int:
    """3 N minus constraints (minus 3 with a CMMotionRemover), for temperatures from kinetic energy."""
    dof = sum(3 for i in range(system.getNumParticles()) if system.getParticleMass(i).value_in_unit(unit.dalton) > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)


# -- output ---------------------------------------------------------------------------------

def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays and paths; non-finite floats become ``None``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Union[str, os.PathLike], payload: Dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN/inf as null) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def environment_info() -> Dict[str, Any]:
    """Versions and machine facts recorded in every result file."""
    import torch

    return {"openmm_distill": od.__version__, "openmm": openmm.__version__, "torch": torch.__version__,
            "python": _platform.python_version(), "machine": _platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda_available": bool(torch.cuda.is_available()),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def default_output_dir(protocol: str, model: ModelLike) -> Path:
    """``runs/protocols/<student>/<protocol>`` under the current directory."""
    return Path("runs") / "protocols" / safe_name(model_label(model)) / protocol


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "",
             enabled: bool = True, unit_name: str = "it"):
    """A tqdm progress bar (on stderr) that can be switched off; ``leave=False`` keeps logs short."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False, unit=unit_name,
                dynamic_ncols=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a Markdown table: ``None``/NaN as an em dash, small/large values in scientific form."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "—"
    if v != 0 and (abs(v) < 10 ** -(digits) or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{max(digits - 1, 1)}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are formatted with :func:`fmt` unless already strings."""
    def cell(value: Any) -> str:
        # A literal pipe would end the cell; Markdown wants it escaped.
        return (value if isinstance(value, str) else fmt(value)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)


@dataclass
class ProtocolOutput:
    """What a protocol run produced.

    Attributes
    ----------
    protocol : str
        ``"nve"``, ``"throughput"``, ``"accuracy"``, ``"stability"`` or ``"report"``.
    output_dir : pathlib.Path
    results : dict
        The payload written to ``<protocol>.json``.
    files : list of pathlib.Path
        Every file written (JSON, PNG, CSV, DCD, Markdown).
    summary : str
        The Markdown summary (also written to ``summary.md``).
    """

    protocol: str
    output_dir: Path
    results: Dict[str, Any]
    files: List[Path] = field(default_factory=list)
    summary: str = ""

    @property
    def json_path(self) -> Path:
        return self.output_dir / f"{self.protocol}.json"


def finish(protocol: str, output_dir: Path, results: Dict[str, Any], summary: str, files: List[Path]) -> ProtocolOutput:
    """Write ``<protocol>.json`` and ``summary.md`` and bundle everything in a :class:`ProtocolOutput`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_json(output_dir / f"{protocol}.json", results)
    md_path = output_dir / "summary.md"
    md_path.write_text(summary.rstrip() + "\n")
    return ProtocolOutput(protocol, output_dir, results, [json_path, md_path] + list(files), summary)
