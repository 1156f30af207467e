"""Throughput: MD cost per step of students, their teachers and a classical force field, side by side.

For each system, in one run:

* each student in OpenMM (:func:`~openmm_distill.openmm_integration.system.create_system`) on the best platform,
  velocity Verlet, timed over a wall-clock window after a warm-up (TorchScript
  optimises a module during its first calls);
* each teacher through its ASE calculator driving ASE's velocity Verlet, a few
  steps only (they are slow): GFN2-xTB (tblite) and Orb-v2 (pretrained weights
  when given, else the same architecture with random weights: the cost is the
  same);
* a classical force field in OpenMM where one applies: amber14 for
  residues it has templates for (alanine dipeptide) and amber14/tip3p for
  water, flexible (no constraints) at the same time step, PME for periodic boxes.

Reported: ms/step, steps/s and ns/day at the protocol's time step, and the
speedup of each student over each teacher and the classical force field.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import DistillError
from openmm_distill.export.student import load_student
from openmm_distill.openmm_integration.system import create_system
from openmm_distill.protocols import environment, openmm_setup, output
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.plots import plot_throughput
from openmm_distill.systems.resolve import (
    MolecularSystem,
    resolve_system,
    split_list,
    system_specs,
)
from openmm_distill.timing import interleaved, ns_per_day
from openmm_distill.units import MS_PER_S

import openmm
from openmm import app, unit

QUICK_SYSTEMS = ["ethanol", "alanine_dipeptide", "water_box"]
# water_box: 216 waters (648 atoms); water:1000 and water:2000: 3,000 and 6,000 atoms.
FULL_SYSTEMS = ["ethanol", "aspirin", "alanine_dipeptide", "water_box", "water:1000", "water:2000"]


@dataclass
class ThroughputSettings:
    """Settings of the throughput protocol.

    Attributes
    ----------
    timestep_fs : float
        MD time step for every engine, fs (ns/day is quoted at this step).
    warmup_steps : int
        Untimed steps first (TorchScript optimises during the first calls).
    min_time_s : float
        OpenMM engines are timed for at least this long (and at least ``min_steps``).
    min_steps, max_steps : int
    teacher_steps : int
        Timed ASE MD steps per teacher (after one untimed step).
    teachers : tuple of str
        Teacher registry names; empty for none.
    teacher_max_atoms : int
        Teachers are skipped on larger systems (they would take minutes per step).
    classical : bool
        Also time amber14 / amber14-tip3p where templates exist.
    orb_weights : str or None
        Pretrained Orb-v2 checkpoint; ``None`` = random weights (same cost).
    """

    timestep_fs: float = 0.5
    warmup_steps: int = 3
    min_time_s: float = 1.5
    min_steps: int = 2
    max_steps: int = 20000
    teacher_steps: int = 3
    teachers: Tuple[str, ...] = ("gfn2-xtb", "orb-v2")
    teacher_max_atoms: int = 100
    classical: bool = True
    orb_weights: Optional[str] = None

    @classmethod
    def quick(cls, **overrides) -> "ThroughputSettings":
        """1.5 s timing windows, 3 teacher steps, teachers on molecules up to 100 atoms."""
        return replace(cls(), **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def full(cls, **overrides) -> "ThroughputSettings":
        """10 s timing windows, 10 teacher steps, teachers up to 700 atoms (the 216-water box).

        GFN2-xTB took about a minute per force call on a 300-atom periodic water box here, so
        larger boxes are left to the students and amber14."""
        base = cls(warmup_steps=10, min_time_s=10.0, min_steps=5, teacher_steps=10, teacher_max_atoms=700)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def time_openmm(simulation: app.Simulation, settings: ThroughputSettings) -> Tuple[float, int]:
    """Wall-clock cost of one MD step of a ready Simulation; returns ``(ms_per_step, steps_timed)``.

    Timed by the package's one harness (:func:`openmm_distill.timing.interleaved`): blocks of
    steps until ``min_time_s`` has passed and ``min_steps`` steps were taken (at most
    ``max_steps``), waiting for queued GPU work at the end of every block.
    """
    context = simulation.context
    timings = interleaved({"step": lambda: simulation.step(1)}, settings.min_time_s,
                          min_blocks=settings.min_steps, warmup=settings.warmup_steps, max_calls=settings.max_steps,
                          sync=lambda: context.getState(getPositions=True))
    return MS_PER_S * timings["step"], timings.calls["step"]


def time_ase(molsys: MolecularSystem, calculator, settings: ThroughputSettings) -> Tuple[float, int]:
    """Cost of one ASE velocity-Verlet step with ``calculator`` (one force call per step); ``(ms, steps)``."""
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet

    atoms = Atoms(numbers=molsys.atomic_numbers, positions=molsys.positions_angstrom)
    if molsys.periodic:
        atoms.cell = molsys.box_angstrom
        atoms.pbc = True
    atoms.calc = calculator
    # Starting from rest: the cost of a step does not depend on the velocities. One untimed step
    # first (the first force call, model set-up, caches), then exactly teacher_steps timed ones.
    dyn = VelocityVerlet(atoms, timestep=settings.timestep_fs * units.fs)
    timings = interleaved({"step": lambda: dyn.run(1)}, 0.0, min_blocks=settings.teacher_steps, block_time=0.0,
                          warmup=1, max_calls=settings.teacher_steps)
    return MS_PER_S * timings["step"], timings.calls["step"]


def classical_system(molsys: MolecularSystem) -> Tuple[openmm.System, str]:
    """amber14 (+ tip3p) System for the topology, flexible, PME when periodic; ``(system, "amber14[/tip3p]")``.

    Raises
    ------
    ValueError
        When amber14 has no template for a residue (most small molecules).
    """
    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    kwargs: Dict[str, Any] = {"constraints": None, "rigidWater": False}
    if molsys.periodic:
        widths = np.abs(np.diag(molsys.box_nm))
        kwargs.update(nonbondedMethod=app.PME, nonbondedCutoff=min(1.0, 0.49 * float(widths.min())) * unit.nanometer)
    else:
        kwargs.update(nonbondedMethod=app.NoCutoff)
    system = ff.createSystem(molsys.topology, **kwargs)
    waters = all(r.name in ("HOH", "WAT") for r in molsys.topology.residues())
    return system, "amber14/tip3p" if waters else "amber14"


def _row(engine: str, kind: str, molsys: MolecularSystem, ms: Optional[float], steps: int, settings: ThroughputSettings,
         **extra) -> Dict[str, Any]:
    ok = ms is not None and np.isfinite(ms)
    return {"engine": engine, "kind": kind, "system": molsys.name, "n_atoms": molsys.n_atoms,
            "periodic": molsys.periodic, "ms_per_step": ms if ok else None,
            "steps_per_s": MS_PER_S / ms if ok else None,
            "ns_per_day": ns_per_day(ms, settings.timestep_fs) if ok else None, "steps_timed": steps, **extra}


def measure_student(student, molsys: MolecularSystem, settings: ThroughputSettings, *,
                    platform: Optional[str] = None, precision: Optional[str] = None,
                    backend: str = "torch") -> Dict[str, Any]:
    """One row: a student in OpenMM on ``molsys``."""
    keep_freed_memory()  # timed like the MD runs it stands for (see openmm_distill.cpu_runtime)
    loaded = load_student(student)
    preset = loaded.metadata.get("preset")
    engine = f"student {loaded.name}" + (f" ({preset})" if preset and preset != loaded.name else "")
    try:
        system = create_system(molsys.topology, loaded, backend=backend, remove_cm_motion=False)
    except (DistillError, ValueError) as exc:
        return _row(engine, "student", molsys, None, 0, settings, note=f"skipped: {exc}")
    sim = openmm_setup.make_simulation(system, molsys, openmm.VerletIntegrator(settings.timestep_fs * unit.femtosecond),
                                 platform, precision)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    try:
        ms, steps = time_openmm(sim, settings)
    except openmm.OpenMMException as exc:
        return _row(engine, "student", molsys, None, 0, settings, note=f"failed: {exc}")
    return _row(engine, "student", molsys, ms, steps, settings, platform=environment.platform_info(sim, loaded),
                n_parameters=loaded.metadata.get("n_parameters"), preset=loaded.metadata.get("preset"),
                student=loaded.name, backend=backend)


def measure_classical(molsys: MolecularSystem, settings: ThroughputSettings, *, platform: Optional[str] = None,
                      precision: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """One row for amber14 on ``molsys``, or ``None`` where amber14 has no templates."""
    try:
        system, label = classical_system(molsys)
    except (ValueError, KeyError):
        return None
    sim = openmm_setup.make_simulation(system, molsys, openmm.VerletIntegrator(settings.timestep_fs * unit.femtosecond),
                                 platform, precision)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    ms, steps = time_openmm(sim, settings)
    # One engine name for all systems (one line in the plot); the force field files are in "forcefield".
    return _row("classical amber14 (flexible)", "classical", molsys, ms, steps, settings, forcefield=label,
                platform=environment.platform_info(sim))


def measure_teacher(teacher, label: str, molsys: MolecularSystem, settings: ThroughputSettings) -> Dict[str, Any]:
    """One row for a teacher driving ASE MD on ``molsys`` (skipped above ``teacher_max_atoms``)."""
    engine = f"teacher {label} (ASE)"
    if molsys.n_atoms > settings.teacher_max_atoms:
        return _row(engine, "teacher", molsys, None, 0, settings,
                    note=f"skipped: {molsys.n_atoms} atoms > teacher_max_atoms = {settings.teacher_max_atoms}")
    try:
        ms, steps = time_ase(molsys, teacher.as_ase_calculator(), settings)
    except Exception as exc:  # a teacher failing on one system must not end the run
        return _row(engine, "teacher", molsys, None, 0, settings, note=f"failed: {type(exc).__name__}: {exc}")
    return _row(engine, "teacher", molsys, ms, steps, settings, teacher=teacher.describe().get("version"))


def speedups(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per system and student: reference cost / student cost for each teacher and classical row."""
    out = []
    for s in rows:
        if s["kind"] != "student" or s["ms_per_step"] is None:
            continue
        for ref in rows:
            if ref["kind"] == "student" or ref["system"] != s["system"] or ref["ms_per_step"] is None:
                continue
            out.append({"system": s["system"], "n_atoms": s["n_atoms"], "student": s["engine"],
                        "reference": ref["engine"], "speedup": ref["ms_per_step"] / s["ms_per_step"]})
    return out


def run_throughput(students: Sequence[Any], systems: Union[None, str, Sequence[Any]] = None,
                   settings: Optional[ThroughputSettings] = None, *, platform: Optional[str] = None,
                   precision: Optional[str] = None, backend: str = "torch",
                   show_progress: bool = True) -> List[Dict[str, Any]]:
    """Time every engine on every system; returns the rows (see :func:`_row` keys)."""
    from openmm_distill.protocols.teachers import get_protocol_teacher

    settings = settings or ThroughputSettings.quick()
    students = list(students) if isinstance(students, (list, tuple)) else split_list(students)
    molsystems = [resolve_system(s) for s in system_specs(systems, default=QUICK_SYSTEMS)]
    teachers = []
    for name in settings.teachers:
        weights = settings.orb_weights if name == "orb-v2" else None
        try:
            teachers.append(get_protocol_teacher(name, weights, allow_random_weights=True))
        except (ImportError, DistillError) as exc:
            teachers.append((None, f"{name}: unavailable ({exc})"))
    rows: List[Dict[str, Any]] = []
    total = len(molsystems) * (len(students) + len(teachers) + int(settings.classical))
    with output.progress(total=total, desc="throughput", enabled=show_progress, unit_name="run") as bar:
        for molsys in molsystems:
            for student in students:
                bar.set_postfix_str(f"{molsys.name}: student")
                rows.append(measure_student(student, molsys, settings, platform=platform, precision=precision,
                                            backend=backend))
                bar.update(1)
            if settings.classical:
                bar.set_postfix_str(f"{molsys.name}: classical")
                row = measure_classical(molsys, settings, platform=platform, precision=precision)
                if row is not None:
                    rows.append(row)
                bar.update(1)
            for teacher, label in teachers:
                bar.set_postfix_str(f"{molsys.name}: {label}")
                if teacher is None:
                    rows.append(_row(f"teacher {label.split(':')[0]} (ASE)", "teacher", molsys, None, 0, settings,
                                     note=label))
                else:
                    rows.append(measure_teacher(teacher, label, molsys, settings))
                bar.update(1)
    return rows


def summarize_throughput(rows: Sequence[Dict[str, Any]], ups: Sequence[Dict[str, Any]],
                         settings: ThroughputSettings) -> str:
    """Markdown: the cost table and the speedup table."""
    platform = next((r["platform"] for r in rows if r["kind"] == "student" and r.get("platform")), {})
    lines = [
        "# Throughput", "",
        f"MD cost per step at a {settings.timestep_fs:g} fs time step. Students and the classical force field run "
        f"in OpenMM (velocity Verlet, timed ≥ {settings.min_time_s:g} s after {settings.warmup_steps} warm-up "
        f"steps); teachers drive ASE's velocity Verlet through their ASE calculators ({settings.teacher_steps} "
        f"timed steps after one untimed step; skipped above {settings.teacher_max_atoms} atoms). Orb-v2 without "
        "pretrained weights is its architecture with random weights (same cost).",
        environment.platform_sentence(platform), "",
        output.markdown_table(["engine", "system", "atoms", "ms/step", "steps/s", "ns/day", "note"],
                              [[r["engine"], r["system"], r["n_atoms"], r["ms_per_step"], r["steps_per_s"],
                                r["ns_per_day"], r.get("note", "")] for r in rows]),
        "", "## Speedup of each student (reference ms/step ÷ student ms/step)", "",
        output.markdown_table(["system", "atoms", "student", "vs", "speedup"],
                              [[u["system"], u["n_atoms"], u["student"], u["reference"], f"{u['speedup']:.3g}x"]
                               for u in ups]) if ups else "No speedups (no pair of timed engines on a system).",
    ]
    return "\n".join(lines)


def run_throughput_protocol(students: Union[Any, Sequence[Any]], systems: Union[None, str, Sequence[Any]] = None,
                            settings: Optional[ThroughputSettings] = None, output_dir: Union[None, str, Path] = None,
                            *, platform: Optional[str] = None, precision: Optional[str] = None,
                            backend: str = "torch", show_progress: bool = True) -> ProtocolOutput:
    """Run :func:`run_throughput`; write ``throughput.json``, ``throughput.png`` (log-log) and ``summary.md``.

    Parameters
    ----------
    students : a student (name, path, CompiledStudent) or a sequence / comma-separated string of them
    systems : default :data:`QUICK_SYSTEMS`
    """
    settings = settings or ThroughputSettings.quick()
    student_list = list(students) if isinstance(students, (list, tuple)) else split_list(students) \
        if isinstance(students, str) else [students]
    output_dir = Path(output_dir) if output_dir is not None else output.default_output_dir("throughput",
                                                                                           student_list[0])
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = run_throughput(student_list, systems, settings, platform=platform, precision=precision, backend=backend,
                          show_progress=show_progress)
    ups = speedups(rows)
    png = plot_throughput(output_dir / "throughput.png", rows,
                          title=f"MD cost per step ({settings.timestep_fs:g} fs step)")
    payload = {"protocol": "throughput", "models": [openmm_setup.student_info(s) for s in student_list],
               "settings": asdict(settings), "environment": environment.environment_info(), "rows": rows,
               "speedups": ups}
    return output.finish("throughput", output_dir, payload, summarize_throughput(rows, ups, settings), [png])
