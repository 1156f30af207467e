"""OpenMM side: add a compiled student to a System (TorchForce or PythonForce), checks, platforms."""
from openmm_distill.openmm_integration.checks import check_box, check_positions
from openmm_distill.openmm_integration.mixed import create_mixed_system
from openmm_distill.openmm_integration.platforms import available_platforms, choose_platform, describe_platform
from openmm_distill.openmm_integration.simulation import create_simulation
from openmm_distill.openmm_integration.system import (
    BACKENDS,
    add_student_force,
    atomic_numbers_of,
    create_system,
)

__all__ = ["BACKENDS", "add_student_force", "atomic_numbers_of", "available_platforms", "check_box",
           "check_positions", "choose_platform", "create_mixed_system", "create_simulation", "create_system",
           "describe_platform"]
