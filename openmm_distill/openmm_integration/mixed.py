"""ML/MM: an ML region described by a student inside a System modelled by a conventional force field.

The mixing itself is openmm-ml's mechanical embedding (one implementation, shared with
``MLPotential(...).createMixedSystem``); this module adds the checks and keyword names of
this package, and refuses ML regions that cut covalent bonds.
"""
from __future__ import annotations

from typing import Iterable

from openmm_distill.errors import ConfigError
from openmm_distill.openmm_integration.openmmml_potential import StudentPotentialImpl
from openmm_distill.openmm_integration.system import ml_particle_indices

import openmm
from openmm import app
from openmmml.embeddings.mechanicalembedding import MechanicalEmbedding
from openmmml.embeddings.utilities import findLinkBonds


def create_mixed_system(mm_system: openmm.System, topology: app.Topology, ml_atoms: Iterable[int], student, *,
                        backend: str = "auto", cuda_graphs: bool = False, remove_constraints: bool = True,
                        force_group: int = 0, interpolate: bool = False) -> openmm.System:
    """ML/MM with mechanical embedding: a copy of ``mm_system`` where the student describes ``ml_atoms``.

    Built by openmm-ml's own mechanical embedding, so it is the System that
    ``MLPotential('openmm-distill', student=...).createMixedSystem(topology, mm_system, ml_atoms)`` gives:
    MM bonds, angles, torsions and CMAP terms inside the ML region are removed, nonbonded pairs inside it
    become exclusions (``NonbondedForce`` and ``CustomNonbondedForce``), and everything between the ML and
    MM regions stays MM. The MM System's ``CMMotionRemover``, if it has one, is kept.

    Parameters
    ----------
    mm_system : the System modelling the whole topology with a conventional force field (not modified)
    topology : its Topology (bonds are needed to find the terms inside the ML region)
    ml_atoms : particle indices of the ML region, in the order the student sees them
    student : shipped student name, compiled file path, or :class:`CompiledStudent`
    backend, cuda_graphs : as in :func:`add_student_force`
    remove_constraints : remove constraints between two ML atoms (as openmm-ml does by default)
    force_group : force group of the student's force
    interpolate : add a global parameter ``lambda_interpolate``: 1 gives the mixed System, 0 the MM one

    The ML region must not cut covalent bonds: openmm-ml caps cut bonds with link-atom hydrogens, which
    adds particles; for that, call openmm-ml's ``createMixedSystem(..., returnInfo=True)`` and simulate the
    topology it returns.
    """
    ml = ml_particle_indices(ml_atoms, mm_system.getNumParticles())
    if topology.getNumAtoms() != mm_system.getNumParticles():
        raise ConfigError(f"the topology has {topology.getNumAtoms()} atoms but the MM System "
                          f"{mm_system.getNumParticles()} particles")
    cut = findLinkBonds(topology, ml)
    if cut:
        atoms = list(topology.atoms())
        shown = ", ".join(f"{atoms[i].name}{atoms[i].residue.id}-{atoms[j].name}{atoms[j].residue.id} ({i}-{j})"
                          for i, j in cut[:3]) + (" ..." if len(cut) > 3 else "")
        raise ConfigError(f"the ML region cuts {len(cut)} covalent bond(s) ({shown}); "
                          "choose whole molecules, or cap the cut bonds with link atoms through openmm-ml: "
                          "MLPotential('openmm-distill', student=...).createMixedSystem(..., returnInfo=True)")
    system = MechanicalEmbedding().createMixedSystem(StudentPotentialImpl(student), topology, mm_system, ml,
                                                     int(force_group), bool(interpolate), backend=backend,
                                                     cuda_graphs=cuda_graphs)
    if remove_constraints:
        inside = set(ml)
        for k in reversed(range(system.getNumConstraints())):
            i, j, _ = system.getConstraintParameters(k)
            if i in inside and j in inside:
                system.removeConstraint(k)
    return system
