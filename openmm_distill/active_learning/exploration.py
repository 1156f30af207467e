"""Exploration: run a student hot, keep where it goes, label that (one active-learning round).

A student trained on thermal geometries can still have holes: regions the data
never visited where its energy is too low. A stretched N-H bond that costs the
teacher several eV may cost the student almost nothing, and a 100 ps run at
500 K finds it. Molecular dynamics with the student itself walks into such
holes, so its trajectories are the geometries worth labelling.

:func:`explore` runs the stability protocol's watched Langevin MD
(:mod:`openmm_distill.md.langevin`, :mod:`openmm_distill.md.watchdog`) on
each molecule at high temperature. It keeps frames on a schedule, plus the
last frames before a watchdog failure and the failing frame itself, taken
from the running simulation (float64 positions), and returns them as
:class:`~openmm_distill.data.records.Geometry` records. Label them with the
teacher (:func:`openmm_distill.data.labelling.label`), merge them into the
training set and fine-tune the student from its checkpoint
(``model.init_from`` in the training recipe).

Explore training molecules only. Frames of a validation or test molecule in
the training set would leak it.

Units: Angstrom in the returned geometries; ps, fs and K in the settings.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from openmm_distill.api import create_system, load_student
from openmm_distill.data.records import Geometry
from openmm_distill.errors import ConfigError, DistillError
from openmm_distill.md.langevin import WatchedState, langevin_simulation, run_watched, steps_for
from openmm_distill.md.watchdog import Watchdog, WatchdogThresholds
from openmm_distill.protocols import parallel
from openmm_distill.protocols.output import progress
from openmm_distill.systems.resolve import resolve_system
from openmm_distill.units import PICOSECOND_TO_FEMTOSECOND


@dataclass(frozen=True)
class ExplorationSettings:
    """How each molecule is explored.

    Attributes
    ----------
    temperatures_k : tuple of float
        Langevin temperatures, K. Hotter than the production temperature,
        so that a short run visits what a long one would (default 800 K).
    length_ps : float
        Length of each run, ps (it stops earlier at a watchdog failure).
    timestep_fs, friction_per_ps : float
        Langevin integrator settings.
    frame_interval_fs : float
        Keep one frame this often, fs.
    frames_before_failure : int
        After a failure, also keep this many frames before it, at the watchdog
        interval (10 fs): the approach into the hole.
    max_isolation_angstrom : float
        Frames in which some atom has no other atom this close are dropped: an
        atom that has left the molecule (a failed run can fling a hydrogen
        thousands of Angstrom within one check) teaches the student nothing
        and the teacher's SCF may not converge there.
    watchdog_interval_fs : float
        How often the watchdog checks (and how fine the kept failure approach is), fs.
    seed : int
        Master seed; each molecule's runs are seeded from (seed, name).
    thresholds : WatchdogThresholds
        When a run counts as failed (the stability protocol's defaults).
    """

    temperatures_k: Tuple[float, ...] = (800.0,)
    length_ps: float = 4.0
    timestep_fs: float = 1.0
    friction_per_ps: float = 1.0
    frame_interval_fs: float = 200.0
    frames_before_failure: int = 5
    max_isolation_angstrom: float = 3.0
    watchdog_interval_fs: float = 10.0
    seed: int = 0
    thresholds: WatchdogThresholds = field(default_factory=WatchdogThresholds)

    def __post_init__(self) -> None:
        if not self.temperatures_k or any(not (0.0 < float(t) <= 5000.0) for t in self.temperatures_k):
            raise ConfigError(f"temperatures_k={self.temperatures_k!r}: need at least one, each in (0, 5000] K")
        for name, low, high in (("length_ps", 0.0, 1e4), ("timestep_fs", 0.0, 5.0), ("friction_per_ps", 0.0, 1e3),
                                ("frame_interval_fs", 0.0, 1e6), ("watchdog_interval_fs", 0.0, 1e4),
                                ("max_isolation_angstrom", 0.0, 1e3)):
            value = float(getattr(self, name))
            if not (low < value <= high):
                raise ConfigError(f"{name}={value!r} is out of range; allowed: ({low:g}, {high:g}]")
        if self.watchdog_interval_fs < self.timestep_fs:
            raise ConfigError(f"watchdog_interval_fs={self.watchdog_interval_fs!r} is shorter than the time step "
                              f"({self.timestep_fs!r} fs)")
        if self.frame_interval_fs < self.watchdog_interval_fs:
            raise ConfigError(f"frame_interval_fs={self.frame_interval_fs!r} is shorter than the watchdog interval "
                              f"({self.watchdog_interval_fs!r} fs)")
        if int(self.frames_before_failure) < 0:
            raise ConfigError(f"frames_before_failure={self.frames_before_failure!r} must be >= 0")

    @property
    def watchdog_steps(self) -> int:
        return max(1, int(round(self.watchdog_interval_fs / self.timestep_fs)))

    @property
    def checks_per_frame(self) -> int:
        return max(1, int(round(self.frame_interval_fs / (self.watchdog_steps * self.timestep_fs))))

    @property
    def n_steps(self) -> int:
        """MD steps of each run."""
        return steps_for(self.length_ps, self.timestep_fs)


def molecule_run_seed(seed: int, name: str) -> int:
    """A per-molecule seed for OpenMM's integrator and velocities (OpenMM wants 0 < seed < 2**31)."""
    return 1 + (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 2)


@dataclass
class ExploredRun:
    """What one run at one temperature gave."""

    molecule: str
    temperature_k: float
    survived: bool
    time_ps: float
    failure_reasons: List[str]
    n_frames_kept: int


def select_frames(n_frames: int, checks_per_frame: int, failed: bool, frames_before_failure: int) -> List[int]:
    """Indices of the trajectory frames to keep (one frame per watchdog check; the last is the failing one).

    Every ``checks_per_frame``-th frame from the start (frame 0, the starting structure, excepted:
    the training data has it already), and after a failure the failing frame and the
    ``frames_before_failure`` frames before it.

    >>> select_frames(31, 10, False, 3)
    [10, 20, 30]
    >>> select_frames(26, 10, True, 3)
    [10, 20, 22, 23, 24, 25]
    """
    keep = set(range(checks_per_frame, n_frames, checks_per_frame))
    if failed and n_frames > 1:
        keep.update(range(max(1, n_frames - 1 - frames_before_failure), n_frames))
    return sorted(keep)


def has_isolated_atom(positions_angstrom: np.ndarray, max_distance: float) -> bool:
    """Whether some atom has no other atom within ``max_distance`` Angstrom (a fragment has flown off).

    >>> has_isolated_atom(np.array([[0.0, 0, 0], [1.0, 0, 0], [9.0, 0, 0]]), 3.0)
    True
    """
    x = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
    if len(x) < 2:
        return False
    if not np.all(np.isfinite(x)):
        return True
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return bool((d.min(axis=1) > max_distance).any())


def explore_molecule(model, spec: Tuple[str, str], *, settings: ExplorationSettings, student_name: str,
                     show_progress: bool = True) -> Tuple[List[Geometry], List[ExploredRun]]:
    """Explore one molecule ``(name, smiles)`` at every temperature; returns kept geometries and run records."""
    name, smiles = spec
    molsys = replace(resolve_system(smiles), name=name, smiles=smiles)
    try:
        system = create_system(molsys.topology, load_student(model), remove_cm_motion=False)
    except (DistillError, ValueError) as exc:
        raise ConfigError(f"cannot explore {name} ({smiles}): {type(exc).__name__}: {exc}") from exc
    seed = molecule_run_seed(settings.seed, name)
    timestep_fs = float(settings.timestep_fs)
    step_ps = settings.watchdog_steps * timestep_fs / PICOSECOND_TO_FEMTOSECOND
    geometries: List[Geometry] = []
    runs: List[ExploredRun] = []
    for temperature_k in (float(t) for t in settings.temperatures_k):
        simulation = langevin_simulation(system, molsys.topology, molsys.positions, temperature_k=temperature_k,
                                         timestep_fs=timestep_fs, friction_per_ps=float(settings.friction_per_ps),
                                         seed=seed)
        # Positions at every watchdog check, Angstrom: frame k is check k (a failure with
        # non-finite positions leaves no frame).
        frames: List[np.ndarray] = []

        def keep(watched: WatchedState) -> None:
            if np.all(np.isfinite(watched.positions_angstrom)):
                frames.append(watched.positions_angstrom)

        n_checks = settings.n_steps // settings.watchdog_steps
        with progress(total=n_checks * settings.watchdog_steps, desc=f"{name} {temperature_k:g} K",
                      enabled=show_progress, unit_name="step") as bar:
            run = run_watched(simulation, Watchdog.for_system(molsys, settings.thresholds), n_steps=settings.n_steps,
                              check_interval_steps=settings.watchdog_steps, timestep_fs=timestep_fs,
                              periodic=molsys.periodic, on_check=keep, progress=bar)
        kept = select_frames(len(frames), settings.checks_per_frame, not run.survived,
                             int(settings.frames_before_failure))
        kept = [k for k in kept if not has_isolated_atom(frames[k], settings.max_isolation_angstrom)]
        for k in kept:
            provenance: Dict[str, Any] = {
                "method": "student_md", "student": student_name, "temperature_K": temperature_k,
                "time_ps": round(k * step_ps, 6), "timestep_fs": timestep_fs, "seed": seed,
                "run_failed": not run.survived}
            if not run.survived:
                provenance["failure"] = "; ".join(run.failure_reasons)
                provenance["failure_time_ps"] = run.time_to_failure_ps
            geometries.append(Geometry(
                key=f"{name}/explore/{student_name}/{temperature_k:g}K/{k}", molecule=name,
                atomic_numbers=np.asarray(molsys.atomic_numbers, dtype=np.int64),
                positions=np.array(frames[k], dtype=np.float64), smiles=smiles, provenance=provenance))
        runs.append(ExploredRun(name, temperature_k, run.survived,
                                run.simulated_ps if run.survived else float(run.time_to_failure_ps),
                                list(run.failure_reasons), len(kept)))
    return geometries, runs


@dataclass
class ExplorationResult:
    """All geometries kept and one record per (molecule, temperature) run."""

    geometries: List[Geometry]
    runs: List[ExploredRun]

    @property
    def n_failed(self) -> int:
        return sum(not r.survived for r in self.runs)

    def summary(self) -> str:
        lines = [f"explored {len({r.molecule for r in self.runs})} molecules in {len(self.runs)} runs: "
                 f"{self.n_failed} failed the watchdog; kept {len(self.geometries)} geometries"]
        for r in self.runs:
            if not r.survived:
                lines.append(f"  {r.molecule} at {r.temperature_k:g} K failed at {r.time_ps:.2f} ps: "
                             f"{'; '.join(r.failure_reasons)}")
        return "\n".join(lines)

    def runs_as_dicts(self) -> List[Dict[str, Any]]:
        return [asdict(r) for r in self.runs]


def _checked_molecules(molecules: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    molecules = [(str(n), str(s)) for n, s in molecules]
    names = [n for n, _ in molecules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"molecule names must be unique; repeated: {duplicates[:5]}")
    if not molecules:
        raise ConfigError("nothing to explore: no molecules given")
    return molecules


def explore(model, molecules: Sequence[Tuple[str, str]], settings: Optional[ExplorationSettings] = None, *,
            jobs: int = 1, show_progress: bool = True,
            on_molecule: Optional[Callable[[Tuple[str, str], List[Geometry], List[ExploredRun]], None]] = None,
            ) -> ExplorationResult:
    """Explore each ``(name, smiles)`` with the student; see the module docstring.

    Parameters
    ----------
    model : student name or compiled file (a name or path when ``jobs > 1``)
    molecules : sequence of (name, smiles)
        Training molecules (names unique).
    jobs : int
        Molecules run at once, one worker process each (one CPU thread each).
    on_molecule : callable, optional
        ``on_molecule((name, smiles), geometries, runs)`` as soon as a molecule is done.
    """
    settings = settings or ExplorationSettings()
    molecules = _checked_molecules(molecules)
    student_name = load_student(model).name

    def done(k: int, result: Tuple[List[Geometry], List[ExploredRun]]) -> None:
        if on_molecule is not None:
            on_molecule(molecules[k], *result)

    per_molecule = parallel.map_systems(explore_molecule, model, molecules, jobs=jobs, desc="exploration",
                                        show_progress=show_progress, on_result=done, settings=settings,
                                        student_name=student_name)
    geometries = [g for gs, _ in per_molecule for g in gs]
    runs = [r for _, rs in per_molecule for r in rs]
    return ExplorationResult(geometries, runs)


def explore_resumable(model, molecules: Sequence[Tuple[str, str]], settings: ExplorationSettings, cache_dir: str,
                      header: Dict[str, Any], *, jobs: int = 1, show_progress: bool = True,
                      log: Callable[[str], None] = lambda message: None) -> ExplorationResult:
    """:func:`explore`, keeping each molecule's frames in ``cache_dir`` as soon as that molecule is done.

    Run again after a kill (during the MD, or during the labelling that follows) with the same
    ``header`` (JSON-plain: what the frames depend on, e.g. student, settings and molecules) and only
    the molecules not yet explored run; a cache made with another header is discarded. Delete
    ``cache_dir`` once the frames are labelled.
    """
    molecules = _checked_molecules(molecules)
    header_path = os.path.join(cache_dir, "header.json")
    if os.path.isdir(cache_dir):
        try:
            with open(header_path) as handle:
                cached = json.load(handle)
        except (OSError, ValueError):
            cached = None
        if cached != header:
            log(f"{cache_dir} was explored with another student, settings or molecule list; exploring again")
            shutil.rmtree(cache_dir)
    if not os.path.isdir(cache_dir):
        os.makedirs(cache_dir)
        with open(f"{header_path}.tmp", "w") as handle:
            json.dump(header, handle)
        os.replace(f"{header_path}.tmp", header_path)

    def path_of(k: int) -> str:
        return os.path.join(cache_dir, f"{k:06d}.json.gz")

    index = {m: k for k, m in enumerate(molecules)}
    todo = [m for k, m in enumerate(molecules) if not os.path.exists(path_of(k))]
    if len(todo) < len(molecules):
        log(f"reusing {len(molecules) - len(todo)} of {len(molecules)} molecules explored by an unfinished "
            f"earlier run ({cache_dir}); --no-resume explores again")
    if todo:
        log(f"exploring {len(todo)} molecules")
        explore(model, todo, settings, jobs=jobs, show_progress=show_progress,
                on_molecule=lambda m, geometries, runs: write_frames(
                    path_of(index[m]), {"runs": [asdict(r) for r in runs]}, geometries))
    geometries: List[Geometry] = []
    runs: List[ExploredRun] = []
    for k in range(len(molecules)):
        kept, frames = read_frames(path_of(k))
        geometries += frames
        runs += [ExploredRun(**r) for r in kept["runs"]]
    return ExplorationResult(geometries, runs)


# Explored frames are cached until they are labelled (explore_resumable), so that
# a killed job resumes without running the same MD again.
FRAMES_FORMAT = "openmm-distill explored frames 1"


def write_frames(path: str, header: Dict[str, Any], geometries: Sequence[Geometry]) -> None:
    """Write explored geometries (gzipped JSON, exact float64 positions) with a header saying how they were made."""
    frames = [{"key": g.key, "molecule": g.molecule, "smiles": g.smiles, "charge": int(g.charge),
               "atomic_numbers": np.asarray(g.atomic_numbers).tolist(),
               "positions": np.asarray(g.positions, dtype=np.float64).tolist(),
               "box": None if g.box is None else np.asarray(g.box, dtype=np.float64).tolist(),
               "provenance": g.provenance} for g in geometries]
    tmp = f"{path}.tmp"
    with gzip.open(tmp, "wt") as handle:
        json.dump({"format": FRAMES_FORMAT, "header": header, "frames": frames}, handle)
    # Written whole or not at all: a killed write leaves no cache that looks complete.
    os.replace(tmp, path)


def read_frames(path: str) -> Tuple[Dict[str, Any], List[Geometry]]:
    """The header and geometries written by :func:`write_frames`."""
    try:
        with gzip.open(path, "rt") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not a readable explored-frames file: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FRAMES_FORMAT:
        raise ConfigError(f"{path} is not an explored-frames file of format {FRAMES_FORMAT!r}")
    geometries = [Geometry(key=f["key"], molecule=f["molecule"], smiles=f["smiles"], charge=f["charge"],
                           atomic_numbers=np.asarray(f["atomic_numbers"], dtype=np.int64),
                           positions=np.asarray(f["positions"], dtype=np.float64),
                           box=None if f["box"] is None else np.asarray(f["box"], dtype=np.float64),
                           provenance=f["provenance"]) for f in data["frames"]]
    return data["header"], geometries
