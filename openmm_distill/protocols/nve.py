"""NVE energy conservation: thermalise with Langevin dynamics, then run velocity Verlet and fit the drift.

A conservative force field integrated with a small enough time step keeps
the total energy constant up to a bounded fluctuation; a steady drift means
the forces are not the gradient of the energy, are too rough for the time
step, or the arithmetic is too imprecise. The drift is the slope of a
straight line through the total energy, in meV/atom/ps (the ml-peg / MLIP
Audit convention), with its relative size in % of the mean kinetic energy.

Any OpenMM System works, not only a student: pass an ``openmm.System`` as the
model (the tests use a harmonic oscillator), or call
:func:`nve_energy_series` on a Simulation you built yourself.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from openmm_distill.errors import DistillError
from openmm_distill.md.loop import run_md
from openmm_distill.protocols import environment, openmm_setup, output, parallel
from openmm_distill.protocols.drift import DriftAnalysis, analyse_energy_series
from openmm_distill.protocols.openmm_setup import ModelLike
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.plots import plot_nve, plot_sweep
from openmm_distill.protocols.resume import open_records
from openmm_distill.systems.resolve import MolecularSystem, resolve_system, safe_name, system_specs
from openmm_distill.units import PICOSECOND_TO_FEMTOSECOND

import openmm
from openmm import app, unit


@dataclass
class NVESettings:
    """Settings of the NVE protocol.

    Attributes
    ----------
    temperature_k : float
        Temperature of the Langevin thermalisation and of the initial velocities, K.
    timestep_fs : float
        Time step of both integrators, fs (default 0.5 fs).
    equilibration_ps : float
        Langevin thermalisation before NVE, ps.
    length_ps : float
        NVE length, ps (quick 5 ps, full 100 ps).
    report_interval_fs : float
        Energies are recorded every this many fs.
    friction_per_ps : float
        Langevin friction, 1/ps.
    minimize_iterations : int
        Energy minimisation steps before thermalising (0 = none).
    seed : int
        Seed of the initial velocities and of the Langevin noise.
    max_abs_drift_mev_per_atom_per_ps : float
        Pass threshold on ``|drift|`` (default 0.1 meV/atom/ps).
    max_relative_drift_percent : float or None
        Optional second threshold on the drift over the run in % of the mean kinetic energy.
    """

    temperature_k: float = 300.0
    timestep_fs: float = 0.5
    equilibration_ps: float = 1.0
    length_ps: float = 5.0
    report_interval_fs: float = 5.0
    friction_per_ps: float = 1.0
    minimize_iterations: int = 0
    seed: int = 1
    max_abs_drift_mev_per_atom_per_ps: float = 0.1
    max_relative_drift_percent: Optional[float] = None

    @classmethod
    def quick(cls, **overrides) -> "NVESettings":
        """1 ps thermalisation + 5 ps NVE (about 20 s per small molecule on 2 CPU cores)."""
        return replace(cls(), **_given(overrides))

    @classmethod
    def full(cls, **overrides) -> "NVESettings":
        """10 ps thermalisation + 100 ps NVE, energies every 10 fs."""
        return replace(cls(equilibration_ps=10.0, length_ps=100.0, report_interval_fs=10.0), **_given(overrides))

    def steps(self, picoseconds: float) -> int:
        return max(0, int(round(picoseconds * PICOSECOND_TO_FEMTOSECOND / self.timestep_fs)))

    @property
    def report_every(self) -> int:
        """Steps between energy samples."""
        return max(1, int(round(self.report_interval_fs / self.timestep_fs)))


def _given(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Drop ``None`` values so CLI options left unset keep the preset's defaults."""
    return {k: v for k, v in overrides.items() if v is not None}


@dataclass
class EnergySeries:
    """Energies recorded along an MD run.

    Attributes
    ----------
    time_ps : numpy.ndarray, shape (T,)
        Time since the first sample, ps.
    potential_kj_per_mol, kinetic_kj_per_mol : numpy.ndarray, shape (T,)
    completed : bool
        False when the run stopped early (non-finite energy or an OpenMM error).
    message : str
        Why it stopped early.
    """

    time_ps: np.ndarray
    potential_kj_per_mol: np.ndarray
    kinetic_kj_per_mol: np.ndarray
    completed: bool = True
    message: str = ""

    @property
    def total_kj_per_mol(self) -> np.ndarray:
        return self.potential_kj_per_mol + self.kinetic_kj_per_mol


def nve_energy_series(simulation: Union[app.Simulation, openmm.Context], n_steps: int, report_every: int, *,
                      integrator: Optional[openmm.Integrator] = None, show_progress: bool = True,
                      desc: str = "NVE") -> EnergySeries:
    """Step a Simulation (or Context) and record potential and kinetic energy.

    Parameters
    ----------
    simulation : openmm.app.Simulation or openmm.Context
        Already set up: positions, velocities and an energy-conserving
        integrator (e.g. ``VerletIntegrator``) selected.
    n_steps : int
        MD steps to run.
    report_every : int
        Steps between samples; the state before the first step is sample 0.
    integrator : openmm.Integrator, optional
        Needed only when ``simulation`` is a bare Context.

    Notes
    -----
    Stops early, with ``completed=False``, at the first non-finite energy or
    OpenMM exception (e.g. "particle coordinate is NaN").
    """
    times, pot, kin = [], [], []
    start_ps: List[float] = []  # the Context's clock at the first sample

    def record(steps_done: int, state: openmm.State) -> bool:
        t = state.getTime().value_in_unit(unit.picosecond)
        if steps_done == 0:
            start_ps.append(t)
        e_pot = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        e_kin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        times.append(t - start_ps[0]), pot.append(e_pot), kin.append(e_kin)
        # The starting state is recorded as it is; a blow-up shows in a later sample.
        return steps_done == 0 or bool(np.isfinite(e_pot) and np.isfinite(e_kin))

    n_reports = n_steps // report_every
    with output.progress(total=n_reports * report_every, desc=desc, enabled=show_progress, unit_name="step") as bar:
        run = run_md(simulation, n_reports, report_every, record, integrator=integrator, progress=bar)
    message = ""
    if run.error:
        message = f"OpenMM error at t = {times[-1]:.4g} ps: {run.error}"
    elif run.stopped:
        message = f"non-finite energy at t = {times[-1]:.4g} ps"
    return EnergySeries(np.array(times), np.array(pot), np.array(kin), run.completed, message)


@dataclass
class NVEResult:
    """The NVE run of one system.

    Attributes
    ----------
    system : dict
        :meth:`MolecularSystem.describe`.
    status : str
        ``"ok"`` (ran to the end), ``"stopped"`` (blew up) or ``"skipped"`` (could not start).
    message : str
    analysis : DriftAnalysis or None
    series : EnergySeries or None
    platform : dict
        Platform, precision and the note on force precision.
    settings : NVESettings
    """

    system: Dict[str, Any]
    status: str
    message: str = ""
    analysis: Optional[DriftAnalysis] = None
    series: Optional[EnergySeries] = None
    platform: Dict[str, Any] = field(default_factory=dict)
    settings: Optional[NVESettings] = None

    @property
    def passed(self) -> bool:
        return self.status == "ok" and self.analysis is not None and self.analysis.passed

    def as_dict(self) -> Dict[str, Any]:
        return {"system": self.system, "status": self.status, "message": self.message, "passed": self.passed,
                "platform": self.platform, "analysis": None if self.analysis is None else self.analysis.as_dict()}


def run_nve(model: ModelLike, system: Union[str, MolecularSystem], settings: Optional[NVESettings] = None, *,
            platform: Optional[str] = None, precision: Optional[str] = None, backend: str = "torch",
            show_progress: bool = True) -> NVEResult:
    """Thermalise, then run NVE and analyse the total-energy drift of one system.

    Parameters
    ----------
    model : student name, compiled file, CompiledStudent, or openmm.System
        An ``openmm.System`` is simulated as given (its particles must match ``system``).
    system : str or MolecularSystem
        See :func:`openmm_distill.systems.resolve.resolve_system`.
    settings : NVESettings, optional
        Default :meth:`NVESettings.quick`.
    platform, precision : str, optional
        OpenMM platform (default the best available) and, on CUDA/OpenCL,
        precision (default ``"mixed"``; ``"double"`` for the strictest test).
    backend : {"torch", "python"}
        How a student enters the System.

    Returns
    -------
    NVEResult
        Errors that prevent the run (unsupported element, box too small) give
        ``status="skipped"`` with the message, so a multi-system run goes on.
    """
    settings = settings or NVESettings.quick()
    molsys = resolve_system(system)
    try:
        omm_system = openmm_setup.build_system(model, molsys, backend)
    except (DistillError, ValueError) as exc:
        return NVEResult(molsys.describe(), "skipped", f"{type(exc).__name__}: {exc}", settings=settings)
    dt = settings.timestep_fs * unit.femtosecond
    # One Context, two integrators: Langevin (0) to thermalise, velocity Verlet (1) for NVE.
    # Switching integrators keeps positions and velocities without building a second Context.
    integrator = openmm.CompoundIntegrator()
    langevin = openmm.LangevinMiddleIntegrator(settings.temperature_k * unit.kelvin,
                                               settings.friction_per_ps / unit.picosecond, dt)
    langevin.setRandomNumberSeed(settings.seed)
    integrator.addIntegrator(langevin)
    integrator.addIntegrator(openmm.VerletIntegrator(dt))
    integrator.setCurrentIntegrator(0)
    sim = openmm_setup.make_simulation(omm_system, molsys, integrator, platform, precision)
    info = environment.platform_info(sim, model)
    if settings.minimize_iterations > 0:
        sim.minimizeEnergy(maxIterations=settings.minimize_iterations)
    sim.context.setVelocitiesToTemperature(settings.temperature_k * unit.kelvin, settings.seed)
    n_eq = settings.steps(settings.equilibration_ps)
    chunk = max(1, settings.report_every * 20)
    try:
        with output.progress(total=n_eq, desc=f"{molsys.name}: thermalise", enabled=show_progress,
                             unit_name="step") as bar:
            for done in range(0, n_eq, chunk):
                sim.step(min(chunk, n_eq - done))
                bar.update(min(chunk, n_eq - done))
    except openmm.OpenMMException as exc:
        return NVEResult(molsys.describe(), "stopped", f"thermalisation failed: {exc}", platform=info,
                         settings=settings)
    integrator.setCurrentIntegrator(1)
    series = nve_energy_series(sim, settings.steps(settings.length_ps), settings.report_every,
                               show_progress=show_progress, desc=f"{molsys.name}: NVE")
    analysis = analyse_energy_series(
        series.time_ps, series.potential_kj_per_mol, series.kinetic_kj_per_mol, molsys.n_atoms,
        max_abs_drift_mev_per_atom_per_ps=settings.max_abs_drift_mev_per_atom_per_ps,
        max_relative_drift_percent=settings.max_relative_drift_percent,
        degrees_of_freedom=openmm_setup.degrees_of_freedom(omm_system))
    if not series.completed:
        analysis.passed = False
        analysis.reasons.append(series.message)
    return NVEResult(molsys.describe(), "ok" if series.completed else "stopped", series.message, analysis, series,
                     info, settings)


def _write_series_csv(path: Path, series: EnergySeries) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_ps", "potential_kj_per_mol", "kinetic_kj_per_mol", "total_kj_per_mol"])
        for row in zip(series.time_ps, series.potential_kj_per_mol, series.kinetic_kj_per_mol, series.total_kj_per_mol):
            writer.writerow([f"{v:.8g}" for v in row])
    return path


def summarize_nve(records: Sequence[Dict[str, Any]], settings: NVESettings, model_name: str) -> str:
    """Markdown summary from per-system records (:meth:`NVEResult.as_dict`, as in ``nve.json``)."""
    rows = []
    for r in records:
        a = r["analysis"]
        verdict = "PASS" if r["passed"] else ("skipped" if r["status"] == "skipped" else "FAIL")
        rows.append([r["system"]["name"], r["system"]["n_atoms"],
                     None if a is None else a["drift_mev_per_atom_per_ps"],
                     None if a is None else a["relative_drift_percent"],
                     None if a is None else a["total_energy_std_mev_per_atom"],
                     None if a is None else a["max_excursion_mev_per_atom"],
                     None if a is None else a["mean_temperature_k"], verdict,
                     "; ".join(a["reasons"]) if a is not None and a["reasons"] else r["message"]])
    platform = next((r["platform"] for r in records if r["platform"]), {})
    lines = [
        f"# NVE energy conservation: {model_name}", "",
        f"Thermalised {settings.equilibration_ps:g} ps with Langevin dynamics at {settings.temperature_k:g} K "
        f"(friction {settings.friction_per_ps:g}/ps), then {settings.length_ps:g} ps of velocity Verlet "
        f"(`VerletIntegrator`), time step {settings.timestep_fs:g} fs, energies every {settings.report_interval_fs:g} fs.",
        environment.platform_sentence(platform),
        "",
        f"Pass: |drift| <= {settings.max_abs_drift_mev_per_atom_per_ps:g} meV/atom/ps"
        + (f" and |relative drift| <= {settings.max_relative_drift_percent:g}% of <KE>"
           if settings.max_relative_drift_percent is not None else "")
        + ". Drift = slope of a linear fit of the total energy; relative drift = drift x run length "
          "in % of the mean kinetic energy; fluctuation = std of the total energy; excursion = "
          "max |E_tot(t) - E_tot(0)|.", "",
        output.markdown_table(["system", "atoms", "drift (meV/atom/ps)", "rel. drift (% KE)",
                               "std E_tot (meV/atom)", "max excursion (meV/atom)", "<T> (K)", "result", "notes"],
                              rows),
    ]
    return "\n".join(lines)


def plot_nve_sweep(path: Path, records: Sequence[Dict[str, Any]], settings: NVESettings,
                   model_name: str) -> Optional[Path]:
    """|drift| of every system against its size, with the pass threshold (None for fewer than two systems)."""
    if len(records) < 2:
        return None
    return plot_sweep(path, [r["system"]["name"] for r in records], [r["system"]["n_atoms"] for r in records],
                      [None if r["analysis"] is None else abs(r["analysis"]["drift_mev_per_atom_per_ps"])
                       for r in records], [r["passed"] for r in records],
                      settings.max_abs_drift_mev_per_atom_per_ps, ylabel="|drift| (meV/atom/ps)",
                      title=f"{model_name}: NVE, {settings.length_ps:g} ps", log=True)


def run_nve_protocol(model: ModelLike, systems: Union[None, str, Sequence[Any]] = None,
                     settings: Optional[NVESettings] = None, output_dir: Union[None, str, Path] = None, *,
                     platform: Optional[str] = None, precision: Optional[str] = None, backend: str = "torch",
                     show_progress: bool = True, jobs: int = 1, resume: bool = True) -> ProtocolOutput:
    """Run :func:`run_nve` on each system and write ``nve.json``, one PNG and CSV per system, ``summary.md``
    and, for two or more systems, ``nve_overview.png`` (:func:`plot_nve_sweep`).

    Parameters
    ----------
    systems : comma-separated string or sequence, optional
        Default :data:`openmm_distill.systems.resolve.DEFAULT_SYSTEMS`.
    output_dir : path, optional
        Default ``runs/protocols/<student>/nve``.
    jobs : int
        Systems simulated at once, one worker process (one thread) each; see
        :func:`openmm_distill.protocols.parallel.map_systems`.
    resume : bool
        Reuse the systems a killed run of the same student and settings finished in ``output_dir``
        (see :mod:`openmm_distill.protocols.resume`); False measures everything again.
    """
    settings = settings or NVESettings.quick()
    output_dir = Path(output_dir) if output_dir is not None else output.default_output_dir("nve", model)
    output_dir.mkdir(parents=True, exist_ok=True)
    specs = system_specs(systems)
    records, todo = open_records("NVE", model, specs, output_dir, settings, platform=platform,
                                 precision=precision, backend=backend, resume=resume)

    def keep(k: int, result: NVEResult) -> None:
        files: List[Path] = []
        if result.series is not None and result.analysis is not None:
            stem = safe_name(result.system["name"])
            files.append(_write_series_csv(output_dir / f"nve_{stem}.csv", result.series))
            files.append(plot_nve(output_dir / f"nve_{stem}.png", result.series.time_ps,
                                  result.series.potential_kj_per_mol, result.series.kinetic_kj_per_mol,
                                  result.system["n_atoms"], result.analysis.drift_mev_per_atom_per_ps,
                                  settings.max_abs_drift_mev_per_atom_per_ps,
                                  title=f"{result.system['name']}: NVE, {settings.timestep_fs:g} fs"))
        records.keep(todo[k], result.as_dict(), files)

    parallel.map_systems(run_nve, model, todo, jobs=jobs, desc="NVE", show_progress=show_progress, on_result=keep,
                         settings=settings, platform=platform, precision=precision, backend=backend)
    systems_out = records.records(specs)
    name = openmm_setup.model_label(model)
    payload = {"protocol": "nve", "model": openmm_setup.student_info(model), "settings": asdict(settings),
               "environment": environment.environment_info(),
               "all_passed": bool(systems_out) and all(r["passed"] for r in systems_out),
               "systems": systems_out}
    overview = plot_nve_sweep(output_dir / "nve_overview.png", systems_out, settings, name)
    return output.finish("nve", output_dir, payload, summarize_nve(systems_out, settings, name),
                         records.files(specs) + ([overview] if overview else []))
