"""Create a checked ``Simulation`` on the best platform."""
from __future__ import annotations

from typing import List, Optional

from openmm_distill.openmm_integration.checks import check_box, check_positions, check_separated
from openmm_distill.openmm_integration.platforms import choose_platform

import openmm
from openmm import app, unit


def atoms_that_must_not_touch(system: openmm.System) -> List[int]:
    """Particles that are atoms: not virtual sites, not massless, not Drude particles (which start on their
    parent atom by design)."""
    drude = set()
    for force in system.getForces():
        if type(force).__name__ == "DrudeForce":
            drude.update(force.getParticleParameters(k)[0] for k in range(force.getNumParticles()))
    return [i for i in range(system.getNumParticles())
            if not system.isVirtualSite(i) and i not in drude
            and system.getParticleMass(i).value_in_unit(unit.dalton) > 0]


def create_simulation(topology: app.Topology, system: openmm.System, integrator: openmm.Integrator, positions,
                      *, platform: Optional[str] = None, precision: Optional[str] = None,
                      cutoff_nm: Optional[float] = None, box_vectors=None) -> app.Simulation:
    """A ``Simulation`` with positions set, after checking positions (finite, no two atoms within
    0.01 nm of each other) and the box first.

    Parameters
    ----------
    platform : platform name; default the best available (CUDA, OpenCL, CPU, Reference)
    precision : "single", "mixed" or "double" on CUDA/OpenCL (default mixed)
    cutoff_nm : student cutoff, to check ``box_vectors`` against (optional)
    box_vectors : periodic box for this run; default the topology's box
    """
    check_positions(positions, system.getNumParticles())
    box = box_vectors if box_vectors is not None else topology.getPeriodicBoxVectors()
    if box is not None and cutoff_nm is not None:
        check_box(box, cutoff_nm)
    periodic_box = box if system.usesPeriodicBoundaryConditions() else None
    check_separated(positions, periodic_box, atoms_that_must_not_touch(system))
    plat, props = choose_platform(platform, precision)
    simulation = app.Simulation(topology, system, integrator, plat, props)
    if box is not None:
        simulation.context.setPeriodicBoxVectors(*box)
    simulation.context.setPositions(positions)
    return simulation
