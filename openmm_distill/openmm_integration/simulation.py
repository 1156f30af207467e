"""Create a checked ``Simulation`` on the best platform."""
from __future__ import annotations

from typing import Optional

import openmm
from openmm import app

from openmm_distill.openmm_integration.checks import check_box, check_positions
from openmm_distill.openmm_integration.platforms import choose_platform


def create_simulation(topology: app.Topology, system: openmm.System, integrator: openmm.Integrator, positions,
                      *, platform: Optional[str] = None, precision: Optional[str] = None,
                      cutoff_nm: Optional[float] = None, box_vectors=None) -> app.Simulation:
    """A ``Simulation`` with positions set, after checking positions (and the box) first.

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
    plat, props = choose_platform(platform, precision)
    simulation = app.Simulation(topology, system, integrator, plat, props)
    if box is not None:
        simulation.context.setPeriodicBoxVectors(*box)
    simulation.context.setPositions(positions)
    return simulation
