"""openmm-ml entry points for openmm-distill's students.

    from openmmml import MLPotential
    potential = MLPotential("openmm-distill-original")   # or MLPotential("openmm-distill", student="my.pt")
    system = potential.createSystem(topology)            # backend="python" etc. pass through
    mixed = potential.createMixedSystem(topology, mm_system, ligand_atoms, interpolate=True)

Registered in pyproject.toml under ``openmmml.potentials``: ``openmm-distill`` (any compiled
student, ``student=`` a shipped name or a file) and ``openmm-distill-NAME`` per shipped student.

This module lives outside the ``openmm_distill`` package and imports nothing heavy on purpose:
openmm-ml loads every registered factory when it is imported, so registering must cost openmm-ml
users nothing and must not be able to fail. Torch and the package load in :meth:`createImpl`,
when a student is asked for.
"""
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

NAME = "openmm-distill"


def student_for(name: str, student=None) -> object:
    """The student that potential ``name`` (``openmm-distill`` or ``openmm-distill-SHIPPED``) asks for."""
    from openmm_distill.errors import ConfigError

    shipped = name[len(NAME) + 1:] if name.startswith(NAME + "-") else None
    if shipped is None and student is None:
        raise ConfigError(f"MLPotential({NAME!r}) needs student=: a shipped student's name or the path of a "
                          f"compiled student; or name a shipped one, e.g. MLPotential('{NAME}-original')")
    if shipped is not None and student is not None and str(student) != shipped:
        raise ConfigError(f"MLPotential({name!r}) is the shipped student {shipped!r}; student={student!r} "
                          f"contradicts it (use MLPotential({NAME!r}, student=...) for another)")
    return student if student is not None else shipped


class StudentPotentialImplFactory(MLPotentialImplFactory):
    """Creates the :class:`~openmm_distill.openmm_integration.openmmml_potential.StudentPotentialImpl`."""

    def createImpl(self, name: str, student=None, **args) -> MLPotentialImpl:
        if args:
            from openmm_distill.errors import ConfigError

            raise ConfigError(f"MLPotential({name!r}) takes only student=, not {sorted(args)}; pass backend= and "
                              "cuda_graphs= to createSystem / createMixedSystem")
        chosen = student_for(name, student)
        from openmm_distill.openmm_integration.openmmml_potential import StudentPotentialImpl

        return StudentPotentialImpl(chosen)
