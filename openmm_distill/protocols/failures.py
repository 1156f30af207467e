"""Whose failure is it? A stability run that broke, looked at again with the teacher.

When a student's NVT run fails (a bond stretched past the watchdog's limit), either the student
made an unphysical geometry too easy, or its teacher allows that geometry too. Running the
teacher's own MD as far as the failure costs hours (SevenNet-0 makes 6-10 steps/s on one core at
30 atoms); single points on the last frames before the failure cost seconds. For each failed run
this computes student and teacher energies and forces on the last ``window`` frames of its
trajectory (the failing frame last) and compares them:

* the student's energy error ``E_student - E_teacher`` on ``baseline`` frames spread evenly over the
  run before the window gives its usual error on its own thermal trajectory (median and robust
  spread; the median absorbs the two models' energy zeros); at the failing frame the error is
  ``delta`` away from that median. ``delta`` below ``-max(3 spread, 0.1 eV)`` means the student puts the failing geometry
  too low: **student error**. Otherwise the teacher agrees within the student's usual error, and
  the teacher's own MD (``protocols/teacher_stability.py``) is what can tell more;
* along the bond that changed most, the force each model puts on its two atoms (positive
  stretches the bond, negative pulls it back).

Units: eV and Angstrom inside and in the JSON; time in ps.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill.errors import ConfigError, MissingFileError
from openmm_distill.md.watchdog import Watchdog
from openmm_distill.protocols import output
from openmm_distill.protocols.output import ProtocolOutput, markdown_table
from openmm_distill.units import NM_TO_ANGSTROM

# The failing frame is a student error when it sits this far below the student's usual energy error.
SPREADS = 3.0
MIN_GAP_EV = 0.1
STUDENT_ERROR = "student error"
TEACHER_AGREES = "teacher agrees"


@dataclass
class FailureCheck:
    """Student and teacher on the last frames of one failed run (eV, Angstrom, ps).

    Attributes
    ----------
    system, temperature_k, time_to_failure_ps, failure_reasons : from the stability record
    bond : the two atoms (0-based) of the bond that changed most at the failing frame, and their names
    bond_length_start, bond_length_failure : Angstrom
    time_ps : times of the frames looked at (the failing frame last)
    student_energy_ev, teacher_energy_ev : relative to the first frame looked at
    error_median_ev, error_spread_ev : median of ``E_student - E_teacher`` over the baseline frames (the
        student's usual error on this run, with the two energy zeros' offset) and its spread (1.4826 times
        the median absolute deviation: the standard deviation of a normal distribution, robust to outliers)
    baseline_frames : how many frames (before the window) gave that mean and spread
    delta_ev : ``E_student - E_teacher`` at the failing frame minus that mean
    student_bond_force, teacher_bond_force : eV/Angstrom along the bond at the failing frame
        (positive: stretching it further, negative: pulling it back)
    verdict : ``"student error"`` or ``"teacher agrees"``
    """

    system: str
    temperature_k: float
    time_to_failure_ps: Optional[float]
    failure_reasons: List[str]
    bond: List[Any]
    bond_length_start: float
    bond_length_failure: float
    time_ps: List[float]
    student_energy_ev: List[float]
    teacher_energy_ev: List[float]
    error_median_ev: float
    error_spread_ev: float
    baseline_frames: int
    delta_ev: float
    student_bond_force: float
    teacher_bond_force: float
    verdict: str

    def explanation(self) -> str:
        if self.verdict == STUDENT_ERROR:
            return (f"the student puts the failing geometry {-self.delta_ev:.2f} eV too low against the teacher "
                    f"(its usual error here: {self.error_spread_ev:.2f} eV)")
        return (f"the teacher agrees within the student's usual error ({self.delta_ev:+.2f} eV against "
                f"{self.error_spread_ev:.2f} eV): its own MD (protocols/teacher_stability.py) can tell more")


def failed_runs(folder: Union[str, Path]) -> Tuple[List[Tuple[Dict[str, Any], Dict[str, Any]]], Dict[str, Any]]:
    """``(system, run)`` pairs of the failed runs in a stability output folder, and the model recorded there.

    Reads ``stability.json``, or, while a sweep is still running (or was killed), the per-system records
    under ``systems/``; the model is then unknown (``{}``).
    """
    folder = Path(folder)
    summary = folder / "stability.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        if data.get("protocol") != "stability":
            raise ConfigError(f"{summary} is a {data.get('protocol')!r} result, not a stability run")
        systems, model = data["systems"], data.get("model") or {}
    elif (folder / "systems").is_dir():
        systems = [json.loads(p.read_text())["record"] for p in sorted((folder / "systems").glob("*.json"))]
        model = {}
    else:
        raise MissingFileError(f"{str(folder)!r} holds no stability.json and no systems/ records: give the output "
                               "folder of `openmm-distill protocol stability`")
    return [(s["system"], run) for s in systems if s.get("status") == "ok"
            for run in s.get("runs", []) if not run.get("survived") and run.get("trajectory")], model


def _frames(run: Dict[str, Any], window: int, baseline: int):
    """The run's starting system and the frames looked at: ``baseline`` frames spread evenly before the last
    ``window`` frames, then those (MolecularSystem, positions [F, N, 3] Angstrom, boxes [F, 3, 3] Angstrom or
    None, times [F] ps, how many of the F frames are baseline frames)."""
    import mdtraj

    from openmm_distill.systems.resolve import resolve_system

    for key in ("trajectory", "topology_pdb"):
        if not run.get(key) or not Path(run[key]).is_file():
            raise MissingFileError(f"the run's {key} file {run.get(key)!r} is missing")
    start = resolve_system(run["topology_pdb"])
    traj = mdtraj.load_dcd(run["trajectory"], top=run["topology_pdb"])
    first = max(0, traj.n_frames - window)
    before = np.unique(np.linspace(0, first - 1, baseline).round().astype(int)) if first else np.zeros(0, int)
    picked = np.concatenate([before, np.arange(first, traj.n_frames)])
    positions = traj.xyz[picked].astype(np.float64) * NM_TO_ANGSTROM
    boxes = None
    if traj.unitcell_vectors is not None and start.box_nm is not None:
        boxes = traj.unitcell_vectors[picked].astype(np.float64) * NM_TO_ANGSTROM
    times = list((run.get("analysis") or {}).get("time_ps") or [])
    if len(times) != traj.n_frames:  # no analysis recorded: frames counted back from the failing one
        times = list(range(1 - traj.n_frames, 1))
    return start, positions, boxes, [float(times[k]) for k in picked], len(before)


def _bond_force(forces: np.ndarray, positions: np.ndarray, a: int, b: int) -> float:
    """Force along the bond a-b, eV/Angstrom: positive stretches it, negative pulls it back."""
    axis = positions[b] - positions[a]
    axis = axis / np.linalg.norm(axis)
    return float(0.5 * np.dot(forces[b] - forces[a], axis))


def check_failed_run(system: Dict[str, Any], run: Dict[str, Any], student, teacher, window: int = 15,
                     baseline: int = 40) -> FailureCheck:
    """Student and teacher on the last ``window`` frames of one failed run.

    Parameters
    ----------
    system, run : a system's record and one of its failed runs (from :func:`failed_runs`)
    student : shipped name, compiled file or CompiledStudent
    teacher : a :class:`~openmm_distill.teachers.base.Teacher`
    window : the last frames looked at, the failing one last (at least 2)
    baseline : frames spread evenly over the run before the window, for the student's usual error (at least 3)
    """
    from openmm_distill.export.predict import energy_and_forces
    from openmm_distill.export.student import load_student
    from openmm_distill.protocols.teachers import formal_charge

    if window < 2 or baseline < 3:
        raise ConfigError(f"window must be at least 2 frames and baseline at least 3, got {window} and {baseline}")
    start, positions, boxes, times, n_base = _frames(run, window, baseline)
    if n_base < 3:
        raise ConfigError(f"{system['name']}: the run failed after {len(positions)} trajectory frames, too few to "
                          f"measure the student's usual error before the last {window}; try a smaller window")
    numbers = np.asarray(start.atomic_numbers, dtype=np.int64)
    module = load_student(student).bound_module(numbers)
    charge = formal_charge(system.get("smiles") or "")
    e_s, e_t, f_s, f_t = [], [], None, None
    for k, pos in enumerate(positions):
        box = None if boxes is None else boxes[k]
        energy, forces = energy_and_forces(module, pos, box)
        label = teacher.compute(numbers, pos, box, charge=charge)
        e_s.append(energy)
        e_t.append(label.energy)
        f_s, f_t = forces, label.forces
    e_s, e_t = np.asarray(e_s), np.asarray(e_t)
    error = e_s - e_t
    # Median and median absolute deviation: one earlier excursion (a near-failure the run survived) must not
    # pass for the student's usual error.
    usual = float(np.median(error[:n_base]))
    spread = float(1.4826 * np.median(np.abs(error[:n_base] - usual)))
    delta = float(error[-1] - usual)
    e_s, e_t, times = e_s[n_base:], e_t[n_base:], times[n_base:]  # the window, for the table and plot
    # The bond that changed most, as the watchdog judges it (the same bonds and reference lengths).
    dog = Watchdog.for_system(start)
    if not len(dog.bonds):
        raise ConfigError(f"{system['name']}: no bonds to look at (a single atom?)")
    lengths = dog.bond_lengths(positions[-1], None if boxes is None else boxes[-1])
    k = int(np.argmax(np.abs(lengths - dog.reference_lengths)))
    a, b = (int(x) for x in dog.bonds[k])
    names = [atom.name for atom in start.topology.atoms()]
    verdict = STUDENT_ERROR if delta < -max(SPREADS * spread, MIN_GAP_EV) else TEACHER_AGREES
    return FailureCheck(
        system=system["name"], temperature_k=float(run["temperature_k"]),
        time_to_failure_ps=run.get("time_to_failure_ps"), failure_reasons=list(run.get("failure_reasons") or []),
        bond=[a, b, f"{names[a]}-{names[b]}"], bond_length_start=float(dog.reference_lengths[k]),
        bond_length_failure=float(lengths[k]), time_ps=times, student_energy_ev=(e_s - e_s[0]).tolist(),
        teacher_energy_ev=(e_t - e_t[0]).tolist(), error_median_ev=usual, error_spread_ev=spread,
        baseline_frames=n_base, delta_ev=delta,
        student_bond_force=_bond_force(f_s, positions[-1], a, b), teacher_bond_force=_bond_force(f_t, positions[-1], a, b),
        verdict=verdict)


def plot_failure(path: Path, check: FailureCheck, student_label: str, teacher_label: str) -> Path:
    """Student and teacher energy over the frames before the failure (relative to the first frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(check.time_ps, check.teacher_energy_ev, "o-", color="black", label=f"teacher ({teacher_label})")
    ax.plot(check.time_ps, check.student_energy_ev, "s--", color="tab:blue", label=f"student ({student_label})")
    ax.axvline(check.time_ps[-1], color="tab:red", lw=0.8)
    ax.set_xlabel("time (ps); red line: the failing frame")
    ax.set_ylabel("energy - first frame's (eV)")
    ax.set_title(f"{check.system}, {check.temperature_k:g} K: {check.bond[2]} "
                 f"{check.bond_length_start:.2f} -> {check.bond_length_failure:.2f} Å; {check.verdict}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _summary(checks: Sequence[FailureCheck], student_label: str, teacher_label: str, window: int,
             baseline: int) -> str:
    header = ["system", "T (K)", "failed at (ps)", "bond", "length (Å)", "student ΔE (eV)", "teacher ΔE (eV)",
              "delta (eV)", "usual error (eV)", "delta / usual", "bond force student / teacher (eV/Å)", "verdict"]
    rows = [[c.system, c.temperature_k, c.time_to_failure_ps, c.bond[2],
             f"{c.bond_length_start:.2f} -> {c.bond_length_failure:.2f}", c.student_energy_ev[-1],
             c.teacher_energy_ev[-1], c.delta_ev, c.error_spread_ev,
             c.delta_ev / c.error_spread_ev if c.error_spread_ev > 0 else None,
             f"{c.student_bond_force:+.2f} / {c.teacher_bond_force:+.2f}", c.verdict] for c in checks]
    lines = [f"# Failed runs of {student_label}, looked at with {teacher_label}", "",
             f"The last {window} trajectory frames of each failed run (the failing frame last), energies relative "
             "to the first of them. delta: the student's energy error at the failing frame minus its median error "
             f"on {baseline} frames spread over the run before; the usual error is their robust spread (1.4826 x "
             "the median absolute deviation). "
             f"Below -max({SPREADS:g} x the usual error, {MIN_GAP_EV:g} eV) the student made the failing geometry "
             "too easy. Bond force: along the bond that changed most, positive stretches it.",
             ""]
    lines += [markdown_table(header, rows) if rows else "No run failed: nothing to look at.", ""]
    lines += [f"- {c.system} at {c.temperature_k:g} K: {c.explanation()}." for c in checks]
    return "\n".join(lines)


def run_failure_check(folder: Union[str, Path], student=None, teacher=None, *, teacher_options=None,
                      window: int = 15, baseline: int = 40, output_dir: Union[None, str, Path] = None,
                      show_progress: bool = True) -> ProtocolOutput:
    """Look at every failed run of a stability output folder with the teacher; writes ``failures.json``,
    ``summary.md`` and a PNG per failed run to ``output_dir`` (default ``<folder>/failures``).

    Parameters
    ----------
    folder : output folder of the stability protocol (finished, or a sweep's ``systems/`` records)
    student : default the student recorded in ``folder/stability.json``
    teacher : registry name or Teacher; default the teacher recorded in the student's metadata
    teacher_options : options for a teacher given by name (e.g. ``{"model": "7net-0"}``)
    window : trajectory frames looked at per failed run, the failing one last
    baseline : frames spread over each run before the window that measure the student's usual energy error
    """
    from openmm_distill.export.student import load_student
    from openmm_distill.protocols.teachers import student_teacher

    runs, model = failed_runs(folder)
    student = student or model.get("path")
    if not student:
        raise ConfigError(f"{str(folder)!r} has no stability.json that names its student (a sweep still running?): "
                          "name it with --student")
    loaded = load_student(student)
    teacher, teacher_label = student_teacher(teacher, loaded.metadata, **(teacher_options or {}))
    output_dir = Path(output_dir) if output_dir is not None else Path(folder) / "failures"
    checks, files = [], []
    for system, run in output.progress(runs, desc="failed runs", enabled=show_progress):
        check = check_failed_run(system, run, loaded, teacher, window, baseline)
        checks.append(check)
        stem = f"failure_{Path(run['trajectory']).stem}"
        files.append(plot_failure(output_dir / f"{stem}.png", check, loaded.name, teacher_label))
    payload = {"protocol": "failures", "folder": str(folder), "student": loaded.name, "student_path": str(loaded.path),
               "teacher": {**teacher.describe(), "label": teacher_label}, "window_frames": window,
               "baseline_frames": baseline,
               "rule": {"spreads": SPREADS, "min_gap_ev": MIN_GAP_EV},
               "failed_runs": [asdict(c) for c in checks]}
    return output.finish("failures", output_dir, payload, _summary(checks, loaded.name, teacher_label, window, baseline), files)
