"""Teachers for the protocols: by registry name, Orb-v2's architecture with random weights, and a
teacher itself as an OpenMM force, so the stability protocol can run the teacher like a student.

No pretrained Orb-v2 weights can be downloaded on machines without internet.
Its *cost* does not depend on the weights, so throughput measurements build
``orb_models.forcefield.pretrained.orb_v2_architecture`` with random weights,
save them as a local checkpoint and load that through the real teacher
adapter (:class:`openmm_distill.teachers.orb_v2.OrbV2Teacher`): the same code
path as the pretrained model. Accuracy against random weights measures
nothing, so :func:`get_protocol_teacher` refuses it unless asked.

Teacher stability. :func:`teacher_system` wraps a teacher's ASE calculator
(:meth:`~openmm_distill.teachers.base.Teacher.as_ase_calculator`) in an
``openmm.PythonForce``; :func:`run_teacher_stability_protocol` runs the
stability protocol on it, system by system, with the same integrator, watchdog
and analysis as a student's run, so a student's failure can be told apart from
its teacher's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill import units
from openmm_distill.errors import ConfigError
from openmm_distill.openmm_integration.python_backend import python_force
from openmm_distill.openmm_integration.system import atomic_numbers_of
from openmm_distill.teachers import recorded_teacher
from openmm_distill.teachers.orb_v2 import random_orb_v2_checkpoint  # noqa: F401  (re-exported)

import openmm
from openmm import unit


def get_protocol_teacher(name: str, weights_path: Optional[str] = None, *, allow_random_weights: bool = False,
                         **options: Any) -> Tuple[Any, str]:
    """A teacher and its label for tables.

    Parameters
    ----------
    name : str
        Registry name (``"gfn2-xtb"``, ``"orb-v2"``, ``"sevennet"``, ``"ase"``).
    weights_path : str, optional
        Orb-v2 checkpoint. Without it, ``allow_random_weights=True`` builds the
        architecture with random weights (for cost measurements only).
    options
        Passed to :func:`openmm_distill.teachers.get_teacher`.

    Returns
    -------
    (Teacher, str)
    """
    from openmm_distill.teachers import get_teacher

    key = str(name).strip().lower()
    if key == "orb-v2":
        label = "orb-v2"
        if weights_path is None:
            if not allow_random_weights:
                raise ConfigError("the orb-v2 teacher needs weights (--teacher-weights PATH); pretrained weights "
                                  "cannot be downloaded here and random weights are only good for timing")
            weights_path = random_orb_v2_checkpoint()
            label = "orb-v2 (architecture, random weights)"
        return get_teacher("orb-v2", weights_path=str(weights_path), **options), label
    if weights_path is not None:
        options = {**options, "weights_path": weights_path}
    label = f"{key} ({options['model']})" if options.get("model") else key
    return get_teacher(key, **options), label


def default_teacher_name(student_metadata: Dict[str, Any]) -> str:
    """The teacher recorded in a student's metadata (``teacher`` as a name or a dict), else ``"gfn2-xtb"``."""
    return recorded_teacher((student_metadata or {}).get("teacher"))[0]


def default_teacher_options(student_metadata: Dict[str, Any]) -> Dict[str, Any]:
    """Constructor options of the teacher recorded in a student's metadata (``{}`` when none are recorded)."""
    return recorded_teacher((student_metadata or {}).get("teacher"))[1]


def student_teacher(teacher, student_metadata: Dict[str, Any], weights_path: Optional[str] = None,
                    **options: Any) -> Tuple[Any, str]:
    """The teacher a protocol compares a student with, and its label: ``teacher`` as given (a Teacher object),
    by registry name with ``options``, or, when None, the teacher recorded in the student's metadata with the
    options it recorded (e.g. SevenNet's model)."""
    if teacher is not None and not isinstance(teacher, str):
        return teacher, getattr(teacher, "name", "teacher")
    if teacher is None:
        options = default_teacher_options(student_metadata)
    return get_protocol_teacher(teacher or default_teacher_name(student_metadata), weights_path, **options)


class TeacherComputation:
    """``computation(state) -> (energy kJ/mol, forces kJ/mol/nm)`` for ``openmm.PythonForce``, from a teacher.

    The teacher runs through its ASE calculator (Angstrom and eV inside;
    OpenMM's nm and kJ/mol converted here, at the boundary).
    """

    def __init__(self, teacher, atomic_numbers: Sequence[int], periodic: bool, charge: Optional[int] = None) -> None:
        from ase import Atoms

        self.teacher = teacher
        self.periodic = bool(periodic)
        self._atoms = Atoms(numbers=np.asarray(atomic_numbers, dtype=np.int64), pbc=self.periodic)
        if charge is not None:
            self._atoms.info["charge"] = int(charge)  # read by the teacher's calculator
        self._atoms.calc = teacher.as_ase_calculator()

    def __call__(self, state: openmm.State):
        self._atoms.positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * units.NM_TO_ANGSTROM
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            self._atoms.cell = np.asarray(box) * units.NM_TO_ANGSTROM
        energy_ev = self._atoms.get_potential_energy()
        forces = self._atoms.get_forces() * units.EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM
        return energy_ev * units.EV_TO_KJ_PER_MOL, np.asarray(forces, dtype=np.float64)


def teacher_system(teacher, molsys) -> openmm.System:
    """An OpenMM System whose only interaction is ``teacher`` (masses from the topology's elements).

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher
    molsys : openmm_distill.systems.resolve.MolecularSystem

    Raises
    ------
    TeacherError
        If the teacher cannot evaluate the starting structure (an element it
        does not know, a charged molecule it refuses): checked once here, before any Context exists.
    """
    system = openmm.System()
    for atom in molsys.topology.atoms():
        system.addParticle(atom.element.mass)
    periodic = molsys.box_nm is not None
    if periodic:
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in molsys.box_nm))
    numbers = atomic_numbers_of(molsys.topology)
    box = None if not periodic else np.asarray(molsys.box_nm) * units.NM_TO_ANGSTROM
    charge = formal_charge(getattr(molsys, "smiles", ""))
    teacher.compute(numbers, np.asarray(molsys.positions_nm) * units.NM_TO_ANGSTROM, box, charge=charge)
    computation = TeacherComputation(teacher, numbers, periodic, charge)
    force = python_force(computation, periodic, f"the {teacher.name} teacher")
    force.setName(f"teacher {teacher.name} ({teacher.version}; ASE calculator, PythonForce)")
    system.addForce(force)
    return system


def formal_charge(smiles: str) -> Optional[int]:
    """Formal charge of a molecule from its SMILES, None when unknown (teachers refuse what they cannot model)."""
    if not smiles:
        return None
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else int(Chem.GetFormalCharge(mol))


def run_teacher_stability_protocol(teacher, systems: Union[None, str, Sequence[Any]] = None, settings=None,
                                   output_dir: Union[None, str, Path] = None, *, platform: Optional[str] = None,
                                   show_progress: bool = True):
    """The stability protocol with a teacher itself as the force field, one system at a time.

    Each system gets its own System (:func:`teacher_system`) and output folder
    ``output_dir/<system>/``; with several systems the parts are joined into
    ``output_dir`` by :func:`openmm_distill.protocols.merge.merge_outputs`
    (one ``stability.json`` and ``summary.md``). A system the teacher cannot
    evaluate at its start is reported and skipped.

    Parameters
    ----------
    teacher : openmm_distill.teachers.Teacher
    systems : as for :func:`openmm_distill.protocols.stability.run_stability_protocol`
    settings : StabilitySettings, optional
        Default: the quick settings.
    output_dir : path
        Default ``runs/protocols/teacher-<name>/stability``.

    Returns
    -------
    ProtocolOutput
        Of the merged folder (or of the one part when there is one system).
    """
    from openmm_distill.errors import DistillError
    from openmm_distill.protocols.merge import merge_outputs
    from openmm_distill.protocols.stability import run_stability_protocol
    from openmm_distill.systems.resolve import resolve_system, safe_name, system_specs

    if output_dir is None:
        output_dir = Path("runs/protocols") / f"teacher-{teacher.name}" / "stability"
    output_dir = Path(output_dir)
    parts: List[Path] = []
    outputs = []
    skipped: Dict[str, str] = {}
    for spec in system_specs(systems):
        molsys = resolve_system(spec)
        try:
            system = teacher_system(teacher, molsys)
        except DistillError as exc:
            skipped[molsys.name] = str(exc)
            continue
        part = output_dir / safe_name(molsys.name)
        outputs.append(run_stability_protocol(system, [molsys], settings, part, platform=platform,
                                              show_progress=show_progress))
        parts.append(part)
    if not parts:
        raise ConfigError(f"the {teacher.name} teacher could not start on any of the systems: {skipped}")
    out = outputs[0] if len(parts) == 1 else merge_outputs(parts, output_dir)
    out.results["skipped_systems"] = skipped
    out.summary += "".join(f"\nskipped {name}: {reason}" for name, reason in skipped.items())
    return out
