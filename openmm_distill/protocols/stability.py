"""Stability: NVT Langevin dynamics at several temperatures, watched for unphysical events.

Small students fail in MD in a few typical ways: forces blow up (NaN or huge),
a bond breaks or atoms fuse, a hydrogen flies off. A :class:`Watchdog` checks
the state every ``watchdog_interval_steps`` steps against the starting
structure's bonds (from the topology, or guessed from the starting geometry
by covalent radii) and stops the run at the first violation. The protocol
reports the time to failure (or survival), saves the trajectory as DCD and
analyses it with mdtraj (RMSD to the start, bond-length statistics).

Units: Angstrom and eV/Angstrom in the watchdog (as the thresholds are
stated), nm and kJ/mol/nm at the OpenMM boundary, time in ps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import openmm
from openmm import app, unit

from openmm_distill.errors import DistillError
from openmm_distill.protocols import common, parallel
from openmm_distill.protocols.common import KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM, MolecularSystem, ModelLike, ProtocolOutput
from openmm_distill.protocols.plots import plot_stability


@dataclass
class WatchdogThresholds:
    """Limits beyond which a trajectory counts as failed.

    Attributes
    ----------
    max_force_ev_per_angstrom : float
        Largest allowed force on any atom, eV/Angstrom (default 50; thermal
        forces in organic molecules at 500 K stay below ~10).
    max_bond_deviation_angstrom : float
        Largest allowed change of a starting bond's length, Angstrom (default
        0.5). Stretching breaks the bond; a compression this large means atoms
        are fusing, which is as unphysical.
    max_hydrogen_distance_angstrom : float
        Largest allowed distance of a hydrogen from its bonded partner, Angstrom (default 2.5).
    """

    max_force_ev_per_angstrom: float = 50.0
    max_bond_deviation_angstrom: float = 0.5
    max_hydrogen_distance_angstrom: float = 2.5


@dataclass
class WatchdogCheck:
    """The outcome of one watchdog check.

    Attributes
    ----------
    ok : bool
    reasons : list of str
        Human-readable violations (empty when ``ok``).
    max_force_ev_per_angstrom : float
        NaN when forces were not given or are not finite.
    max_bond_deviation_angstrom : float
        Largest ``|r - r0|`` over the starting bonds.
    worst_bond : tuple of int or None
        Atom indices of that bond.
    max_hydrogen_distance_angstrom : float
        Largest hydrogen-partner distance (NaN without hydrogen bonds).
    """

    ok: bool
    reasons: List[str]
    max_force_ev_per_angstrom: float
    max_bond_deviation_angstrom: float
    worst_bond: Optional[Tuple[int, int]]
    max_hydrogen_distance_angstrom: float


def minimum_image(displacements: np.ndarray, box: Optional[np.ndarray]) -> np.ndarray:
    """Displacements (M, 3) brought to their minimum image in a reduced-form box (rows = vectors), any length unit."""
    d = np.array(displacements, dtype=np.float64, copy=True)
    if box is None:
        return d
    b = np.asarray(box, dtype=np.float64).reshape(3, 3)
    # OpenMM's order for reduced triclinic boxes: c, then b, then a.
    for k in (2, 1, 0):
        d -= np.round(d[:, k] / b[k, k])[:, None] * b[k][None, :]
    return d


class Watchdog:
    """Checks MD states for non-finite or huge forces, broken/fused bonds and detached hydrogens.

    Parameters
    ----------
    atomic_numbers : array_like of int, shape (N,)
    bonds : array_like of int, shape (M, 2)
        Bonds of the starting structure (atom indices).
    reference_positions_angstrom : array_like, shape (N, 3)
        Starting positions, Angstrom; reference bond lengths come from here.
    thresholds : WatchdogThresholds, optional
    box_angstrom : array_like, shape (3, 3), optional
        Periodic box (rows, Angstrom) for minimum-image bond lengths.

    Examples
    --------
    >>> dog = Watchdog([8, 1], [[0, 1]], [[0, 0, 0], [0.96, 0, 0]])
    >>> dog.check([[0, 0, 0], [1.7, 0, 0]]).ok
    False
    """

    def __init__(self, atomic_numbers, bonds, reference_positions_angstrom,
                 thresholds: Optional[WatchdogThresholds] = None, box_angstrom=None):
        self.atomic_numbers = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        self.bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        self.thresholds = thresholds or WatchdogThresholds()
        self.box = None if box_angstrom is None else np.asarray(box_angstrom, dtype=np.float64).reshape(3, 3)
        self.reference_lengths = self.bond_lengths(reference_positions_angstrom)
        is_h = self.atomic_numbers[self.bonds] == 1 if len(self.bonds) else np.zeros((0, 2), dtype=bool)
        self.hydrogen_bonds = np.where(is_h.any(axis=1))[0] if len(self.bonds) else np.zeros(0, dtype=np.int64)

    @classmethod
    def for_system(cls, molsys: MolecularSystem, thresholds: Optional[WatchdogThresholds] = None) -> "Watchdog":
        """Watchdog for a :class:`MolecularSystem`'s topology bonds (or guessed bonds) and start geometry."""
        return cls(molsys.atomic_numbers, molsys.bonds(), molsys.positions_angstrom, thresholds, molsys.box_angstrom)

    def bond_lengths(self, positions_angstrom, box_angstrom=None) -> np.ndarray:
        """Lengths (M,) of the watched bonds, Angstrom, minimum image in a periodic box."""
        pos = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
        if not len(self.bonds):
            return np.zeros(0)
        box = self.box if box_angstrom is None else np.asarray(box_angstrom, dtype=np.float64)
        d = minimum_image(pos[self.bonds[:, 1]] - pos[self.bonds[:, 0]], box)
        return np.linalg.norm(d, axis=1)

    def check(self, positions_angstrom, forces_ev_per_angstrom=None, box_angstrom=None) -> WatchdogCheck:
        """Check one state.

        Parameters
        ----------
        positions_angstrom : array_like, shape (N, 3)
        forces_ev_per_angstrom : array_like, shape (N, 3), optional
        box_angstrom : array_like, shape (3, 3), optional
            Current box (default: the reference box).
        """
        t = self.thresholds
        reasons: List[str] = []
        pos = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
        max_force = float("nan")
        if forces_ev_per_angstrom is not None:
            f = np.asarray(forces_ev_per_angstrom, dtype=np.float64).reshape(-1, 3)
            if not np.all(np.isfinite(f)):
                bad = np.where(~np.isfinite(f).all(axis=1))[0]
                reasons.append(f"non-finite force on {bad.size} atom(s) (first: {bad[0]})")
            else:
                norms = np.linalg.norm(f, axis=1)
                worst = int(norms.argmax()) if norms.size else 0
                max_force = float(norms.max()) if norms.size else 0.0
                if max_force > t.max_force_ev_per_angstrom:
                    reasons.append(f"force {max_force:.3g} eV/Å on atom {worst} > {t.max_force_ev_per_angstrom:g} eV/Å")
        if not np.all(np.isfinite(pos)):
            reasons.append("non-finite positions")
            return WatchdogCheck(False, reasons, max_force, float("nan"), None, float("nan"))
        lengths = self.bond_lengths(pos, box_angstrom)
        max_dev, worst_bond, max_h = 0.0, None, float("nan")
        if lengths.size:
            dev = np.abs(lengths - self.reference_lengths)
            k = int(dev.argmax())
            max_dev, worst_bond = float(dev[k]), (int(self.bonds[k, 0]), int(self.bonds[k, 1]))
            if max_dev > t.max_bond_deviation_angstrom:
                change = "stretched" if lengths[k] > self.reference_lengths[k] else "compressed"
                reasons.append(f"bond {worst_bond[0]}-{worst_bond[1]} {change} by {max_dev:.3g} Å "
                               f"({self.reference_lengths[k]:.3g} -> {lengths[k]:.3g} Å) > "
                               f"{t.max_bond_deviation_angstrom:g} Å")
            if self.hydrogen_bonds.size:
                h_lengths = lengths[self.hydrogen_bonds]
                j = int(h_lengths.argmax())
                max_h = float(h_lengths[j])
                if max_h > t.max_hydrogen_distance_angstrom:
                    a, b = self.bonds[self.hydrogen_bonds[j]]
                    h, partner = (a, b) if self.atomic_numbers[a] == 1 else (b, a)
                    reasons.append(f"hydrogen {h} is {max_h:.3g} Å from its bonded partner {partner} > "
                                   f"{t.max_hydrogen_distance_angstrom:g} Å")
        return WatchdogCheck(not reasons, reasons, max_force, max_dev, worst_bond, max_h)


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
        return max(1, int(round(self.length_ps * 1000.0 / self.timestep_fs)))

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


def _state_arrays(context: openmm.Context, periodic: bool):
    state = context.getState(getPositions=True, getForces=True, getEnergy=True)
    pos = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom) if periodic else None
    return (state, np.asarray(pos), np.asarray(forces) * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM,
            None if box is None else np.asarray(box))


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
    import time

    system = omm_system if omm_system is not None else common.build_system(model, molsys, backend)
    dt = settings.timestep_fs * unit.femtosecond
    integrator = openmm.LangevinMiddleIntegrator(temperature_k * unit.kelvin, settings.friction_per_ps / unit.picosecond, dt)
    integrator.setRandomNumberSeed(settings.seed)
    sim = common.make_simulation(system, molsys, integrator, platform, precision)
    info = common.platform_info(sim, model)
    if settings.minimize_iterations > 0:
        sim.minimizeEnergy(maxIterations=settings.minimize_iterations)
    sim.context.setVelocitiesToTemperature(temperature_k * unit.kelvin, settings.seed)
    dog = Watchdog.for_system(molsys, settings.thresholds)
    dof = common.degrees_of_freedom(system)

    dcd_handle = dcd = None
    pdb_path = None
    if trajectory_path is not None:
        trajectory_path = Path(trajectory_path)
        trajectory_path.parent.mkdir(parents=True, exist_ok=True)
        pdb_path = trajectory_path.with_suffix(".pdb")
        with open(pdb_path, "w") as handle:
            app.PDBFile.writeFile(molsys.topology, molsys.positions, handle)
        dcd_handle = open(trajectory_path, "wb")
        dcd = app.DCDFile(dcd_handle, molsys.topology, dt, 0,
                          settings.watchdog_interval_steps * settings.frame_every_checks)

    series: Dict[str, List[float]] = {k: [] for k in ("time_ps", "temperature_k", "potential_kj_per_mol",
                                                       "max_force_ev_per_angstrom", "max_bond_deviation_angstrom",
                                                       "max_hydrogen_distance_angstrom")}
    failure_time, reasons = None, []
    frame_times: List[float] = []
    n_checks = settings.n_steps // settings.watchdog_interval_steps
    k = settings.watchdog_interval_steps
    t_start = time.perf_counter()
    steps_done = 0
    try:
        with common.progress(total=n_checks * k, desc=f"{molsys.name} {temperature_k:g} K", enabled=show_progress,
                             unit_name="step") as bar:
            for check in range(n_checks + 1):
                if check > 0:
                    try:
                        sim.step(k)
                        steps_done += k
                    except openmm.OpenMMException as exc:
                        failure_time = (steps_done + k) * settings.timestep_fs / 1000.0
                        reasons = [f"OpenMM error: {exc}"]
                        break
                    bar.update(k)
                state, pos, forces, box = _state_arrays(sim.context, molsys.periodic)
                t_ps = steps_done * settings.timestep_fs / 1000.0
                result = dog.check(pos, forces, box)
                ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
                series["time_ps"].append(t_ps)
                series["temperature_k"].append(2.0 * ke / (dof * common.BOLTZMANN_KJ_PER_MOL_K))
                series["potential_kj_per_mol"].append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
                series["max_force_ev_per_angstrom"].append(result.max_force_ev_per_angstrom)
                series["max_bond_deviation_angstrom"].append(result.max_bond_deviation_angstrom)
                series["max_hydrogen_distance_angstrom"].append(result.max_hydrogen_distance_angstrom)
                # Frames on schedule, plus the failing frame (what went wrong is worth seeing).
                if dcd is not None and np.all(np.isfinite(pos)) and (check % settings.frame_every_checks == 0
                                                                    or not result.ok):
                    dcd.writeModel(pos * unit.angstrom, periodicBoxVectors=None if box is None else box * unit.angstrom)
                    frame_times.append(t_ps)
                if not result.ok:
                    failure_time, reasons = t_ps, result.reasons
                    break
    finally:
        if dcd_handle is not None:
            dcd_handle.close()
    elapsed = time.perf_counter() - t_start
    run = TemperatureRun(
        temperature_k=float(temperature_k), survived=failure_time is None, time_to_failure_ps=failure_time,
        simulated_ps=steps_done * settings.timestep_fs / 1000.0, failure_reasons=reasons, series=series,
        trajectory=None if trajectory_path is None else str(trajectory_path),
        topology_pdb=None if pdb_path is None else str(pdb_path),
        steps_per_second=steps_done / elapsed if elapsed > 0 and steps_done else float("nan"),
        thresholds=asdict(settings.thresholds))
    if trajectory_path is not None:
        run.analysis = analyse_trajectory(trajectory_path, pdb_path, dog, frame_times, periodic=molsys.periodic)
    return run, info


def analyse_trajectory(dcd_path: Union[str, Path], pdb_path: Union[str, Path], watchdog: Watchdog,
                       frame_times_ps: Optional[Sequence[float]] = None, periodic: bool = False) -> Dict[str, Any]:
    """mdtraj analysis of a saved trajectory.

    Parameters
    ----------
    dcd_path, pdb_path : path
        Trajectory and a PDB with its topology.
    watchdog : Watchdog
        Supplies the bonds and their reference lengths (Angstrom).
    frame_times_ps : sequence of float, optional
        Time of each frame, ps (default: frame index).
    periodic : bool
        Minimum-image bond lengths.

    Returns
    -------
    dict
        ``n_frames``; ``time_ps`` and ``rmsd_angstrom`` per frame (heavy atoms when present, after optimal
        superposition on frame 0); ``rmsd_final_angstrom``, ``rmsd_max_angstrom``;
        bond statistics over all frames: ``bond_length_max_deviation_angstrom``,
        ``bond_length_mean_std_angstrom`` (mean over bonds of each bond's std
        over time) and ``bond_types`` (per element pair: mean and std of
        length, n bonds, Angstrom); ``radius_of_gyration_angstrom`` (mean,
        non-periodic systems only).
    """
    import mdtraj as md

    try:
        traj = md.load_dcd(str(dcd_path), top=str(pdb_path))
    except Exception as exc:  # an empty or truncated DCD after an early failure
        return {"n_frames": 0, "error": f"{type(exc).__name__}: {exc}"}
    if traj.n_frames == 0:
        return {"n_frames": 0}
    heavy = [a.index for a in traj.topology.atoms if a.element is not None and a.element.symbol != "H"]
    indices = heavy if len(heavy) >= 3 else None
    rmsd = md.rmsd(traj, traj, 0, atom_indices=indices) * 10.0
    out: Dict[str, Any] = {
        "n_frames": int(traj.n_frames),
        "time_ps": [float(x) for x in (frame_times_ps if frame_times_ps is not None and len(frame_times_ps) == traj.n_frames
                                       else range(traj.n_frames))],
        "rmsd_angstrom": rmsd.tolist(),
        "rmsd_final_angstrom": float(rmsd[-1]),
        "rmsd_max_angstrom": float(rmsd.max()),
    }
    if len(watchdog.bonds):
        lengths = md.compute_distances(traj, watchdog.bonds, periodic=periodic) * 10.0  # (F, M) Angstrom
        deviation = np.abs(lengths - watchdog.reference_lengths[None, :])
        out["bond_length_max_deviation_angstrom"] = float(deviation.max())
        out["bond_length_mean_std_angstrom"] = float(lengths.std(axis=0).mean())
        from openmm_distill.elements import symbol

        z = watchdog.atomic_numbers
        types: Dict[str, Dict[str, float]] = {}
        labels = np.array(["-".join(sorted((symbol(int(z[i])), symbol(int(z[j]))))) for i, j in watchdog.bonds])
        for label in sorted(set(labels.tolist())):
            values = lengths[:, labels == label]
            types[label] = {"mean": float(values.mean()), "std": float(values.std()),
                            "n_bonds": int((labels == label).sum())}
        out["bond_types"] = types
    if not periodic:
        out["radius_of_gyration_angstrom"] = float(md.compute_rg(traj).mean() * 10.0)
    return out


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
    molsys = common.resolve_system(system)
    try:
        omm_system = common.build_system(model, molsys, backend)
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


def summarize_stability(records: Sequence[Dict[str, Any]], settings: StabilitySettings, model_name: str) -> str:
    """Markdown summary, one row per system and temperature, from records (:meth:`StabilityResult.as_dict`)."""
    t = settings.thresholds
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["system"]["name"], r["system"]["n_atoms"], "—", "skipped", None, None, None, None,
                         r["message"]])
            continue
        for run in r["runs"]:
            a = run["analysis"] or {}
            rows.append([r["system"]["name"], r["system"]["n_atoms"], f"{run['temperature_k']:g}",
                         "survived" if run["survived"] else "FAILED",
                         run["simulated_ps"] if run["survived"] else run["time_to_failure_ps"],
                         a.get("rmsd_max_angstrom"), a.get("bond_length_max_deviation_angstrom"),
                         run["steps_per_second"], "; ".join(run["failure_reasons"])])
    platform = next((r["platform"] for r in records if r["platform"]), {})
    lines = [
        f"# NVT stability: {model_name}", "",
        f"Langevin dynamics (`LangevinMiddleIntegrator`, friction {settings.friction_per_ps:g}/ps, "
        f"{settings.timestep_fs:g} fs) for {settings.length_ps:g} ps at each of "
        f"{', '.join(f'{x:g}' for x in settings.temperatures_k)} K.",
        common.platform_sentence(platform), "",
        f"Watchdog every {settings.watchdog_interval_steps} steps: stop on non-finite forces or positions, a force "
        f"above {t.max_force_ev_per_angstrom:g} eV/Å, a starting bond changed by more than "
        f"{t.max_bond_deviation_angstrom:g} Å, or a hydrogen more than {t.max_hydrogen_distance_angstrom:g} Å "
        "from its bonded partner. Bonds come from the topology (or are guessed from the starting geometry).", "",
        common.markdown_table(["system", "atoms", "T (K)", "result", "time survived / to failure (ps)",
                               "max RMSD (Å)", "max bond change (Å)", "steps/s", "failure"], rows),
    ]
    return "\n".join(lines)


def run_stability_protocol(model: ModelLike, systems: Union[None, str, Sequence[Any]] = None,
                           settings: Optional[StabilitySettings] = None, output_dir: Union[None, str, Path] = None, *,
                           platform: Optional[str] = None, precision: Optional[str] = None, backend: str = "torch",
                           show_progress: bool = True, jobs: int = 1) -> ProtocolOutput:
    """Run :func:`run_stability` on each system; write ``stability.json``, DCD/PDB and PNG per system, ``summary.md``.

    ``jobs`` systems run at once, one worker process each (see :mod:`openmm_distill.protocols.parallel`).
    """
    settings = settings or StabilitySettings.quick()
    output_dir = Path(output_dir) if output_dir is not None else common.default_output_dir("stability", model)
    output_dir.mkdir(parents=True, exist_ok=True)
    results: List[StabilityResult] = parallel.map_systems(
        run_stability, model, common.system_specs(systems), jobs=jobs, desc="stability", show_progress=show_progress,
        settings=settings, output_dir=output_dir, platform=platform, precision=precision, backend=backend)
    files: List[Path] = []
    for result in results:
        for run in result.runs:
            files += [Path(p) for p in (run.trajectory, run.topology_pdb) if p]
        if result.runs:
            stem = common.safe_name(result.system["name"])
            files.append(plot_stability(output_dir / f"stability_{stem}.png", [r.as_dict() for r in result.runs],
                                        title=f"{result.system['name']}: NVT stability"))
    payload = {"protocol": "stability", "model": common.student_info(model), "settings": asdict(settings),
               "environment": common.environment_info(),
               "all_survived": bool(results) and all(r.survived() for r in results),
               "systems": [r.as_dict() for r in results]}
    return common.finish("stability", output_dir, payload,
                         summarize_stability(payload["systems"], settings, common.model_label(model)), files)
