"""Where the pipeline's student starts: the shipped student of its size, a user's file, or random weights.

``training.init_from: shipped`` (the default) fine-tunes the shipped student whose
preset is the recipe's ``model.preset`` (``tiny`` -> ``openmm_distill/students/tiny.pt``):
it already knows organic chemistry, so a few molecules' data bring it close fast.
``scratch`` trains new weights; a path names a training checkpoint or a compiled
student; the trainer's ``model.init_from`` reads either (a compiled student carries its weights and
its teacher, so fine-tuning on another teacher's labels refits the energy zero).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from openmm_distill.errors import ConfigError, IncompatibleFileError


@dataclass(frozen=True)
class StartingStudent:
    """The student fine-tuning starts from.

    Attributes
    ----------
    label : str
        For messages: ``shipped 'tiny'`` or the file's path.
    path : pathlib.Path
        A compiled student or a training checkpoint.
    compiled : bool
        True for a compiled (TorchScript) file, False for a training checkpoint.
    elements : list of int
        Atomic numbers it knows.
    preset : str or None
    """

    label: str
    path: Path
    compiled: bool
    elements: List[int]
    preset: Optional[str]


def shipped_name(preset: str, teacher: Optional[dict] = None) -> str:
    """The shipped student to fine-tune for ``preset`` and the pipeline's ``teacher`` (``{name, options}``).

    A student distilled from that very teacher (``tiny-sevennet0`` for ``sevennet``) when one ships: it
    already knows that energy surface. Otherwise the GFN2-xTB student named ``preset``; the trainer then
    refits its energy zero to the new teacher.
    """
    from openmm_distill.export.student import CompiledStudent, available_students, resolve_student_path
    from openmm_distill.teachers import recorded_teacher

    if teacher:
        name, options = recorded_teacher(teacher.get("name"))[0], dict(teacher.get("options") or {})
        for candidate in available_students():
            if not candidate.startswith(preset + "-"):
                continue
            meta = CompiledStudent(resolve_student_path(candidate)).metadata
            recorded_name, recorded_options = recorded_teacher(meta.get("teacher"))
            if meta.get("preset") == preset and recorded_name == name and all(
                    recorded_options.get(k) == v for k, v in options.items() if k in recorded_options):
                return candidate
    return preset


def starting_student(init_from: str, preset: str, teacher: Optional[dict] = None) -> Optional[StartingStudent]:
    """The :class:`StartingStudent` of ``training.init_from`` (None for ``scratch``); ``shipped`` picks
    :func:`shipped_name` of ``preset`` and the pipeline's ``teacher``.

    Raises
    ------
    ConfigError
        No shipped student of ``preset``, or a file of another preset.
    MissingFileError, IncompatibleFileError
        A path that does not exist or is neither a checkpoint nor a compiled student.
    """
    from openmm_distill.export.student import CompiledStudent, available_students, resolve_student_path
    from openmm_distill.models.checkpoint import read_checkpoint

    if init_from == "scratch":
        return None
    if init_from == "shipped":
        if preset not in available_students():
            raise ConfigError(f"no shipped student of preset {preset!r} to start from (shipped: "
                              f"{', '.join(available_students())}); set training.init_from: scratch, or a recipe "
                              "of a shipped preset")
        name = shipped_name(preset, teacher)
        student = CompiledStudent(resolve_student_path(name))
        start = StartingStudent(f"shipped {name!r}", student.path, True, student.elements,
                                student.metadata.get("preset"))
    else:
        path = Path(init_from)
        try:
            payload = read_checkpoint(path)
            start = StartingStudent(str(path), path, False, list(payload["elements"]), payload.get("preset"))
        except IncompatibleFileError:
            student = CompiledStudent(path)
            start = StartingStudent(str(path), path, True, student.elements, student.metadata.get("preset"))
    if start.preset and start.preset != preset:
        raise ConfigError(f"training.init_from: {start.label} is a {start.preset!r} student but the recipe's "
                          f"model.preset is {preset!r}; use the recipe of {start.preset!r}")
    return start


def snapshot(start: StartingStudent, path: "str | os.PathLike") -> Path:
    """A copy of the starting student's file at ``path``: a resumed run keeps fine-tuning from it even when
    the shipped file changes with a new release. The trainer reads compiled students and checkpoints alike."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(start.path, path)
    return path
