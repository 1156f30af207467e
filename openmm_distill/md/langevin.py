"""Langevin (NVT) dynamics under the watchdog: the stability protocol's runs and exploration's.

:func:`langevin_simulation` sets a run up (integrator, Simulation, optional
minimisation, velocities); :func:`run_watched` steps it with
:func:`openmm_distill.md.loop.run_md`, checks every ``check_interval_steps``
steps with a :class:`~openmm_distill.md.watchdog.Watchdog`, hands each check
to a callback (the stability protocol records a time series and writes DCD
frames; exploration keeps positions) and stops at the first failure.

Units: nm, kJ/mol and K at the OpenMM boundary; Angstrom and eV/Angstrom in
what the callback gets (the watchdog's units); fs and ps for times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import numpy as np

from openmm_distill.md.loop import run_md
from openmm_distill.md.watchdog import Watchdog, WatchdogCheck
from openmm_distill.openmm_integration.simulation import create_simulation
from openmm_distill.units import (
    EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM,
    FEMTOSECOND_TO_PICOSECOND,
    PICOSECOND_TO_FEMTOSECOND,
)

import openmm
from openmm import app, unit


def steps_for(length_ps: float, timestep_fs: float) -> int:
    """MD steps of a run ``length_ps`` long at a ``timestep_fs`` step (at least one)."""
    return max(1, int(round(length_ps * PICOSECOND_TO_FEMTOSECOND / timestep_fs)))


def langevin_simulation(system: openmm.System, topology: app.Topology, positions, *, temperature_k: float,
                        timestep_fs: float, friction_per_ps: float, seed: int, platform: Optional[str] = None,
                        precision: Optional[str] = None, minimize_iterations: int = 0) -> app.Simulation:
    """A Simulation with a seeded ``LangevinMiddleIntegrator``, minimised if asked, velocities at ``temperature_k``.

    Parameters
    ----------
    positions : positions with units, or an (N, 3) array in nm
    temperature_k : float
        Bath temperature and the temperature of the initial velocities, K.
    timestep_fs, friction_per_ps : float
    seed : int
        Seed of the Langevin noise and of the initial velocities (0 < seed < 2**31).
    platform, precision : str, optional
        See :func:`openmm_distill.openmm_integration.simulation.create_simulation`.
    minimize_iterations : int
        Energy minimisation before the velocities are drawn (0 = none).
    """
    integrator = openmm.LangevinMiddleIntegrator(temperature_k * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = create_simulation(topology, system, integrator, positions, platform=platform, precision=precision)
    if minimize_iterations > 0:
        simulation.minimizeEnergy(maxIterations=minimize_iterations)
    simulation.context.setVelocitiesToTemperature(temperature_k * unit.kelvin, seed)
    return simulation


@dataclass
class WatchedState:
    """One watchdog check, as :func:`run_watched` hands it to its callback.

    Attributes
    ----------
    index : int
        Check number; 0 is the starting state.
    time_ps : float
    state : openmm.State
        With positions, forces and energies.
    positions_angstrom, forces_ev_per_angstrom : numpy.ndarray, shape (N, 3)
    box_angstrom : numpy.ndarray, shape (3, 3), or None
        Box vectors as rows (periodic runs only).
    check : WatchdogCheck
    """

    index: int
    time_ps: float
    state: openmm.State
    positions_angstrom: np.ndarray
    forces_ev_per_angstrom: np.ndarray
    box_angstrom: Optional[np.ndarray]
    check: WatchdogCheck


@dataclass
class WatchedRun:
    """How a watched run ended.

    Attributes
    ----------
    survived : bool
    time_to_failure_ps : float or None
        Time of the first failed check, or of the chunk an OpenMM error stopped (None if it survived).
    simulated_ps : float
        Time actually simulated.
    failure_reasons : list of str
    steps_per_second : float
    """

    survived: bool
    time_to_failure_ps: Optional[float]
    simulated_ps: float
    failure_reasons: List[str]
    steps_per_second: float


def run_watched(simulation: app.Simulation, watchdog: Watchdog, *, n_steps: int, check_interval_steps: int,
                timestep_fs: float, periodic: bool, on_check: Optional[Callable[[WatchedState], Any]] = None,
                progress: Optional[Any] = None) -> WatchedRun:
    """Run ``n_steps`` (rounded down to whole checks), checking every ``check_interval_steps`` steps.

    Parameters
    ----------
    simulation : openmm.app.Simulation
        Set up, e.g. by :func:`langevin_simulation`.
    watchdog : Watchdog
    periodic : bool
        Read the box from each state (minimum-image bond lengths).
    on_check : callable, optional
        Called with a :class:`WatchedState` for every check, the failing one included.
    progress : object with ``update(n)``, optional
    """
    step_ps = timestep_fs * FEMTOSECOND_TO_PICOSECOND
    failure: List[Any] = []

    def on_state(steps_done: int, state: openmm.State) -> bool:
        positions = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        forces_kj = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        forces = np.asarray(forces_kj) / EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM
        box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)) if periodic else None
        time_ps = steps_done * step_ps
        check = watchdog.check(positions, forces, box)
        if on_check is not None:
            on_check(WatchedState(steps_done // check_interval_steps, time_ps, state, positions, forces, box, check))
        if not check.ok:
            failure.extend([time_ps, check.reasons])
        return check.ok

    start = time.perf_counter()
    run = run_md(simulation, n_steps // check_interval_steps, check_interval_steps, on_state,
                 state_options={"getPositions": True, "getForces": True, "getEnergy": True}, progress=progress)
    elapsed = time.perf_counter() - start
    if run.error:
        # The failing chunk's end: the error surfaced somewhere inside it.
        failure = [(run.steps_done + check_interval_steps) * step_ps, [f"OpenMM error: {run.error}"]]
    return WatchedRun(
        survived=not failure, time_to_failure_ps=failure[0] if failure else None,
        simulated_ps=run.steps_done * step_ps, failure_reasons=failure[1] if failure else [],
        steps_per_second=run.steps_done / elapsed if elapsed > 0 and run.steps_done else float("nan"))
