"""Stability: NVT Langevin dynamics at several temperatures, watched for unphysical events.

Each run is a watched Langevin run (:mod:`openmm_distill.md.langevin`): the
:class:`~openmm_distill.md.watchdog.Watchdog` checks the state every
``watchdog_interval_steps`` steps against the starting structure's bonds and
stops the run at the first violation. The protocol reports the time to
failure (or survival), saves the trajectory as DCD and analyses it with
mdtraj (:mod:`openmm_distill.protocols.trajectory_analysis`); the Markdown
summary is :mod:`openmm_distill.protocols.stability_summary`'s.

Units: Angstrom and eV/Angstrom in the watchdog (as the thresholds are
stated), nm and kJ/mol/nm at the OpenMM boundary, time in ps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill.errors import DistillError
from openmm_distill.md.langevin import WatchedState, langevin_simulation, run_watched, steps_for
from openmm_distill.md.watchdog import Watchdog, WatchdogThresholds
from openmm_distill.protocols import environment, openmm_setup, output, parallel
from openmm_distill.protocols.openmm_setup import ModelLike
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.plots import plot_stability
from openmm_distill.protocols.resume import open_records
from openmm_distill.protocols.stability_summary import plot_stability_sweep, summarize_stability
from openmm_distill.protocols.trajectory_analysis import analyse_trajectory
from openmm_distill.systems.resolve import MolecularSystem, resolve_system, safe_name, system_specs
from openmm_distill.units import BOLTZMANN_KJ_PER_MOL_K

import openmm
from openmm import app, unit


@dataclass
class StabilitySettings:
    """Settings of the stability protocol.

    Attributes
    ----------
    temperatures_k : tuple of float
        Langevin temperatures, K (default 300 and 500 K).
    length_ps : float
        Length of each run, ps (quick 2 ps, full 100 ps).
    timestep_fs : float
    friction_per_ps : float
    watchdog_interval_steps : int
        Steps between watchdog checks (K).
    frame_interval_fs : float
        Trajectory frame interval, fs (rounded to a multiple of the watchdog interval).
    minimize_iterations : int
        Energy minimisation before MD (0 = start from the given structure).
    seed : int
    thresholds : WatchdogThresholds
    """

    temperatures_k: Tuple[float, ...] = (300.0, 500.0)
    length_ps: float = 2.0
    timestep_fs: float = 0.5
    friction_per_ps: float = 1.0
    watchdog_interval_steps: int = 20
    frame_interval_fs: float = 50.0
    minimize_iterations: int = 0
    seed: int = 1
    thresholds: WatchdogThresholds = field(default_factory=WatchdogThresholds)

    @classmethod
    def quick(cls, **overrides) -> "StabilitySettings":
        """2 ps at 300 K and at 500 K, watchdog every 10 fs, frames every 50 fs."""
        return replace(cls(), **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def full(cls, **overrides) -> "StabilitySettings":
        """100 ps at 300 K and at 500 K, watchdog every 25 fs, frames every 250 fs."""
        base = cls(length_ps=100.0, watchdog_interval_steps=50, frame_interval_fs=250.0)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def n_steps(self) -> int:
        return steps_for(self.length_ps, self.timestep_fs)

    @property
    def frame_every_checks(self) -> int:
        steps = max(1, int(round(self.frame_interval_fs / self.timestep_fs)))
        return max(1, int(round(steps / self.watchdog_interval_steps)))


@dataclass
class TemperatureRun:
    """One NVT run of one system at one temperature.

    Attributes
    ----------
    temperature_k : float
    survived : bool
    time_to_failure_ps : float or None
        Time of the first failed check (None if it survived).
    simulated_ps : float
    failure_reasons : list of str
    series : dict
        Per check: ``time_ps``, ``temperature_k``, ``potential_kj_per_mol``,
        ``max_force_ev_per_angstrom``, ``max_bond_deviation_angstrom``,
        ``max_hydrogen_distance_angstrom``.
    trajectory : str or None
        DCD file (frames every ``frame_interval_fs``; the failing frame appended).
    topology_pdb : str or None
        PDB of the starting structure (topology for the DCD).
    analysis : dict
        mdtraj analysis of the trajectory (see :func:`analyse_trajectory`).
    steps_per_second : float
    """

    temperature_k: float
    survived: bool
    time_to_failure_ps: Optional[float]
    simulated_ps: float
    failure_reasons: List[str]
    series: Dict[str, List[float]]
    trajectory: Optional[str] = None
    topology_pdb: Optional[str] = None
    analysis: Dict[str, Any] = field(default_factory=dict)
    steps_per_second: float = float("nan")
    thresholds: Dict[str, float] = field(default_factory=dict)

    def as_dict(self, include_series: bool = True) -> Dict[str, Any]:
        d = asdict(self)
        if not include_series:
            d.pop("series")
        return d


@dataclass
class StabilityResult:
    """All temperatures of one system."""

    system: Dict[str, Any]
    status: str
    message: str = ""
    runs: List[TemperatureRun] = field(default_factory=list)
    platform: Dict[str, Any] = field(default_factory=dict)

    def survived(self, temperature_k: Optional[float] = None) -> bool:
        """Whether every run (or the run at ``temperature_k``) survived."""
        runs = [r for r in self.runs if temperature_k is None or abs(r.temperature_k - temperature_k) < 1e-6]
        return self.status == "ok" and bool(runs) and all(r.survived for r in runs)

    def as_dict(self) -> Dict[str, Any]:
        return {"system": self.system, "status": self.status, "message": self.message, "platform": self.platform,
                "survived_all": self.survived(), "runs": [r.as_dict() for r in self.runs]}


def run_temperature(model: ModelLike, molsys: MolecularSystem, temperature_k: float, settings: StabilitySettings,
                    *, omm_system: Optional[openmm.System] = None, platform: Optional[str] = None,
                    precision: Optional[str] = None, backend: str = "torch",
                    trajectory_path: Union[None, str, Path] = None, show_progress: bool = True
                    ) -> Tuple[TemperatureRun, Dict[str, Any]]:
    """One Langevin NVT run under the watchdog; returns the run and the platform info.

    Parameters
    ----------
    trajectory_path : path, optional
        Where to write the DCD (the starting PDB goes next to it, same stem).
    """
    system = omm_system if omm_system is not None else openmm_setup.build_system(model, molsys, backend)
    sim = langevin_simulation(system, molsys.topology, molsys.positions, temperature_k=temperature_k,
                              timestep_fs=settings.timestep_fs, friction_per_ps=settings.friction_per_ps,
                              seed=settings.seed, platform=platform, precision=precision,
                              minimize_iterations=settings.minimize_iterations)
    info = environment.platform_info(sim, model)
    dog = Watchdog.for_system(molsys, settings.thresholds)
    dof = openmm_setup.degrees_of_freedom(system)
    series: Dict[str, List[float]] = {k: [] for k in ("time_ps", "temperature_k", "potential_kj_per_mol",
                                                       "max_force_ev_per_angstrom", "max_bond_deviation_angstrom",
                                                       "max_hydrogen_distance_angstrom")}
    frame_times: List[float] = []
    dcd_handle = dcd = pdb_path = None
    if trajectory_path is not None:
        trajectory_path = Path(trajectory_path)
        trajectory_path.parent.mkdir(parents=True, exist_ok=True)
        pdb_path = trajectory_path.with_suffix(".pdb")
        with open(pdb_path, "w") as handle:
            app.PDBFile.writeFile(molsys.topology, molsys.positions, handle)
        dcd_handle = open(trajectory_path, "wb")
        dcd = app.DCDFile(dcd_handle, molsys.topology, settings.timestep_fs * unit.femtosecond, 0,
                          settings.watchdog_interval_steps * settings.frame_every_checks)

    def record(watched: WatchedState) -> None:
        state, check = watched.state, watched.check
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        series["time_ps"].append(watched.time_ps)
        series["temperature_k"].append(2.0 * kinetic / (dof * BOLTZMANN_KJ_PER_MOL_K))
        series["potential_kj_per_mol"].append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        series["max_force_ev_per_angstrom"].append(check.max_force_ev_per_angstrom)
        series["max_bond_deviation_angstrom"].append(check.max_bond_deviation_angstrom)
        series["max_hydrogen_distance_angstrom"].append(check.max_hydrogen_distance_angstrom)
        # Frames on schedule, plus the failing frame (what went wrong is worth seeing).
        pos, box = watched.positions_angstrom, watched.box_angstrom
        if dcd is not None and np.all(np.isfinite(pos)) and (watched.index % settings.frame_every_checks == 0
                                                            or not check.ok):
            dcd.writeModel(pos * unit.angstrom, periodicBoxVectors=None if box is None else box * unit.angstrom)
            frame_times.append(watched.time_ps)

    try:
        with output.progress(total=settings.n_steps // settings.watchdog_interval_steps
                             * settings.watchdog_interval_steps, desc=f"{molsys.name} {temperature_k:g} K",
                             enabled=show_progress, unit_name="step") as bar:
            watched_run = run_watched(sim, dog, n_steps=settings.n_steps,
                                      check_interval_steps=settings.watchdog_interval_steps,
                                      timestep_fs=settings.timestep_fs, periodic=molsys.periodic, on_check=record,
                                      progress=bar)
    finally:
        if dcd_handle is not None:
            dcd_handle.close()
    run = TemperatureRun(
        temperature_k=float(temperature_k), survived=watched_run.survived,
        time_to_failure_ps=watched_run.time_to_failure_ps, simulated_ps=watched_run.simulated_ps,
        failure_reasons=watched_run.failure_reasons, series=series,
        trajectory=None if trajectory_path is None else str(trajectory_path),
        topology_pdb=None if pdb_path is None else str(pdb_path),
        steps_per_second=watched_run.steps_per_second, thresholds=asdict(settings.thresholds))
    if trajectory_path is not None:
        run.analysis = analyse_trajectory(trajectory_path, pdb_path, dog, frame_times, periodic=molsys.periodic)
    return run, info


def run_stability(model: ModelLike, system: Union[str, MolecularSystem], settings: Optional[StabilitySettings] = None,
                  *, output_dir: Union[None, str, Path] = None, platform: Optional[str] = None,
                  precision: Optional[str] = None, backend: str = "torch", show_progress: bool = True
                  ) -> StabilityResult:
    """Run every temperature of ``settings`` for one system.

    Parameters
    ----------
    model : student name, compiled file, CompiledStudent, or openmm.System
    system : str or MolecularSystem
    output_dir : path, optional
        Where the DCD/PDB files go (``stability_<system>_<T>K.dcd``); none are written without it.
    """
    settings = settings or StabilitySettings.quick()
    molsys = resolve_system(system)
    try:
        omm_system = openmm_setup.build_system(model, molsys, backend)
    except (DistillError, ValueError) as exc:
        return StabilityResult(molsys.describe(), "skipped", f"{type(exc).__name__}: {exc}")
    result = StabilityResult(molsys.describe(), "ok")
    for temperature in settings.temperatures_k:
        path = None
        if output_dir is not None:
            path = Path(output_dir) / f"stability_{molsys.file_stem}_{temperature:g}K.dcd"
        run, info = run_temperature(model, molsys, temperature, settings, omm_system=omm_system, platform=platform,
                                    precision=precision, backend=backend, trajectory_path=path,
                                    show_progress=show_progress)
        result.runs.append(run)
        result.platform = info
    return result


def run_stability_protocol(model: ModelLike, systems: Union[None, str, Sequence[Any]] = None,
                           settings: Optional[StabilitySettings] = None, output_dir: Union[None, str, Path] = None, *,
                           platform: Optional[str] = None, precision: Optional[str] = None, backend: str = "torch",
                           show_progress: bool = True, jobs: int = 1, resume: bool = True) -> ProtocolOutput:
    """Run :func:`run_stability` on each system; write ``stability.json``, DCD/PDB and PNG per system, ``summary.md``
    and, for two or more systems, ``stability_overview.png`` (largest bond change against size).

    ``jobs`` systems run at once, one worker process each (see :mod:`openmm_distill.protocols.parallel`).
    With ``resume`` (the default) the systems that a killed run of the same student and settings
    finished in ``output_dir`` are reused, not simulated again (:mod:`openmm_distill.protocols.resume`).
    """
    settings = settings or StabilitySettings.quick()
    output_dir = Path(output_dir) if output_dir is not None else output.default_output_dir("stability", model)
    output_dir.mkdir(parents=True, exist_ok=True)
    specs = system_specs(systems)
    records, todo = open_records("stability", model, specs, output_dir, settings, platform=platform,
                                 precision=precision, backend=backend, resume=resume)

    def keep(k: int, result: StabilityResult) -> None:
        files = [Path(p) for run in result.runs for p in (run.trajectory, run.topology_pdb) if p]
        if result.runs:
            stem = safe_name(result.system["name"])
            files.append(plot_stability(output_dir / f"stability_{stem}.png", [r.as_dict() for r in result.runs],
                                        title=f"{result.system['name']}: NVT stability"))
        records.keep(todo[k], result.as_dict(), files)

    parallel.map_systems(run_stability, model, todo, jobs=jobs, desc="stability", show_progress=show_progress,
                         on_result=keep, settings=settings, output_dir=output_dir, platform=platform,
                         precision=precision, backend=backend)
    systems_out = records.records(specs)
    payload = {"protocol": "stability", "model": openmm_setup.student_info(model), "settings": asdict(settings),
               "environment": environment.environment_info(),
               "all_survived": bool(systems_out) and all(r["survived_all"] for r in systems_out),
               "systems": systems_out}
    name = openmm_setup.model_label(model)
    overview = plot_stability_sweep(output_dir / "stability_overview.png", systems_out, settings, name)
    return output.finish("stability", output_dir, payload, summarize_stability(systems_out, settings, name),
                         records.files(specs) + ([overview] if overview else []))
