"""The public facade: everything a user needs to run a student in OpenMM.

    import openmm_distill as od
    system = od.create_system(pdb.topology, "original")
    sim = od.create_simulation(pdb.topology, system, integrator, pdb.positions)

ML/MM: ``od.create_mixed_system(mm_system, topology, ligand_atoms, "original")``, the same System
as openmm-ml's ``MLPotential("openmm-distill-original").createMixedSystem(...)``. The default
``backend="auto"`` uses openmm-torch's TorchForce where its kernels loaded (``import openmm_distill``
before ``import openmm``), else ``openmm.PythonForce`` with one warning saying why.
"""
from openmm_distill.export.student import CompiledStudent, available_students, load_student
from openmm_distill.openmm_integration import (
    add_student_force,
    choose_platform,
    create_mixed_system,
    create_simulation,
    create_system,
)

__all__ = ["CompiledStudent", "add_student_force", "available_students", "choose_platform",
           "create_mixed_system", "create_simulation", "create_system", "load_student"]
