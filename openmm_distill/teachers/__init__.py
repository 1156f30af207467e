"""Teachers: reference force fields that label structures (eV, eV/Angstrom).

>>> from openmm_distill.teachers import get_teacher
>>> teacher = get_teacher("gfn2-xtb")
>>> result = teacher.compute(numbers, positions_angstrom)   # doctest: +SKIP
>>> result.energy, result.forces                             # eV, eV/Angstrom  # doctest: +SKIP
"""
from openmm_distill.teachers.base import Teacher, TeacherCalculator, TeacherResult
from openmm_distill.teachers.registry import (
    DEFAULT_TEACHER,
    MODEL_CHOOSING_SETTINGS,
    TEACHERS,
    available_teachers,
    get_teacher,
    recorded_teacher,
    teacher_label,
)

__all__ = [
    "DEFAULT_TEACHER",
    "MODEL_CHOOSING_SETTINGS",
    "TEACHERS",
    "Teacher",
    "TeacherCalculator",
    "TeacherResult",
    "available_teachers",
    "get_teacher",
    "recorded_teacher",
    "teacher_label",
]
