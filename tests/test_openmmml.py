"""The students through the real openmm-ml: entry points, createSystem, createMixedSystem (alanine dipeptide in
TIP3P water, amber14), interpolation, and this package's create_mixed_system agreeing with openmm-ml's."""
import importlib.metadata
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import openmm_distill as od
from openmm_distill.errors import ConfigError, DistillError
from openmm_distill.export.student import available_students
from openmm_distill.openmm_integration.system import student_backends
from openmm_distill.systems.catalog import systems_dir

import openmm
from openmm import app, unit
from openmmml import MLPotential

ROOT = Path(__file__).resolve().parents[1]
STUDENT = "original"  # a real shipped student; 22 ML atoms keep it cheap
KJ = unit.kilojoule_per_mole


def energy_forces(system, positions, groups=-1, **parameters):
    """Energy (kJ/mol) and forces (kJ/mol/nm) on the Reference platform (double precision throughout)."""
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(positions)
    for name, value in parameters.items():
        ctx.setParameter(name, value)
    state = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    forces = state.getForces(asNumpy=True).value_in_unit(KJ / unit.nanometer)
    return state.getPotentialEnergy().value_in_unit(KJ), forces


def same_xml(a, b):
    """Two Systems serialise alike (TorchForce's embedded archive aside: torch.jit.save writes a random id)."""
    def text(system):
        return re.sub(r'encodedFileContents="[0-9a-f]*"', "", openmm.XmlSerializer.serialize(system))
    return text(a) == text(b)


def ml_constraints(system, ml):
    inside = set(ml)
    return [k for k in range(system.getNumConstraints()) if set(system.getConstraintParameters(k)[:2]) <= inside]


@pytest.fixture(scope="module")
def solvated():
    """Alanine dipeptide (the committed structure) in a 2.1 nm box of TIP3P water, amber14, PME, H-bond
    constraints; the ML region is the dipeptide. The PME cutoff (1.0 nm) exceeds every distance inside the
    dipeptide (0.89 nm), so turning an ML-ML pair into an exclusion removes exactly its Coulomb + LJ energy."""
    pdb = app.PDBFile(str(systems_dir() / "structures" / "alanine_dipeptide.pdb"))
    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(ff, boxSize=openmm.Vec3(2.1, 2.1, 2.1) * unit.nanometer)
    top = modeller.topology
    mm = ff.createSystem(top, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer, constraints=app.HBonds)
    ml = [atom.index for atom in next(top.chains()).atoms()]
    positions = np.array(modeller.positions.value_in_unit(unit.nanometer))
    inside = positions[ml]
    assert np.linalg.norm(inside[:, None] - inside[None], axis=-1).max() < 1.0
    # The dipeptide alone, no cutoff: exactly its MM-internal terms (bonded + every pair, 1-4 scaled); with the
    # same constraints, so the same bond terms (constrained X-H bonds have none).
    vacuum = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds, removeCMMotion=False)
    return SimpleNamespace(pdb=pdb, topology=top, mm=mm, ml=ml, positions=positions, vacuum=vacuum,
                           mm_energy_forces=energy_forces(mm, positions))


def test_entry_points_match_the_shipped_students():
    """pyproject.toml registers one openmm-ml name per shipped student plus the generic one, and the installed
    metadata (what openmm-ml reads) has them all."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["openmmml.potentials"]
    expected = {"openmm-distill"} | {f"openmm-distill-{name}" for name in available_students()}
    assert set(declared) == expected
    assert set(declared.values()) == {"openmm_distill_openmmml:StudentPotentialImplFactory"}
    installed = {ep.name for ep in importlib.metadata.entry_points(group="openmmml.potentials")}
    assert expected <= installed, "stale install: run `pip install -e .` so openmm-ml sees the entry points"


def test_registering_costs_openmm_ml_users_nothing():
    """openmm-ml loads every registered factory on import: ours must not import torch or this package."""
    import subprocess
    import sys

    code = ("import sys\nfrom openmmml import MLPotential\n"
            "assert 'openmm-distill-original' in MLPotential._implFactories\n"
            "print(sorted(m for m in ('torch', 'openmm_distill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("student", available_students())
def test_each_shipped_name_builds_the_system_create_system_builds(student, ethanol):
    z, pos, top = ethanol
    for backend in ("torch", "python"):
        theirs = MLPotential(f"openmm-distill-{student}").createSystem(top, backend=backend)
        ours = od.create_system(top, student, backend=backend)
        assert [f.getName() for f in theirs.getForces()] == [f.getName() for f in ours.getForces()]
        assert isinstance(ours.getForce(1), openmm.CMMotionRemover)  # openmm-ml's default, and ours
        e1, f1 = energy_forces(theirs, pos)
        e2, f2 = energy_forces(ours, pos)
        assert e1 == e2
        np.testing.assert_array_equal(f1, f2)


def test_generic_name_takes_a_compiled_file_and_passes_options_through(student32, ethanol):
    z, pos, top = ethanol
    system = MLPotential("openmm-distill", student=str(student32)).createSystem(top, removeCMMotion=False,
                                                                                backend="python")
    assert system.getNumForces() == 1 and student_backends(system) == ["python"]
    e, f = energy_forces(system, pos)
    e_ref, f_ref = energy_forces(od.create_system(top, student32, backend="python"), pos)
    assert e == e_ref
    np.testing.assert_array_equal(f, f_ref)
    by_name = MLPotential("openmm-distill", student="original").createSystem(top, backend="python")
    assert [f.getName() for f in by_name.getForces()] == ["openmm-distill student original (PythonForce)",
                                                          "CMMotionRemover"]


def test_mistakes_are_one_line_errors(student32, ethanol):
    z, pos, top = ethanol
    with pytest.raises(ConfigError, match=r"MLPotential\('openmm-distill'\) needs student="):
        MLPotential("openmm-distill")
    with pytest.raises(ConfigError, match=r"is the shipped student 'tiny'; student='original' contradicts it"):
        MLPotential("openmm-distill-tiny", student="original")
    with pytest.raises(ConfigError, match=r"takes only student=, not \['backend'\]"):
        MLPotential("openmm-distill-tiny", backend="python")
    with pytest.raises(DistillError, match="no shipped student named 'gigantic'"):
        MLPotential("openmm-distill", student="gigantic")
    potential = MLPotential("openmm-distill", student=str(student32))
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['backnd'\]"):
        potential.createSystem(top, backnd="python")
    with pytest.raises(ConfigError, match="backend 'jax' is not one of"):
        potential.createSystem(top, backend="jax")


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_mixed_energy_is_mm_without_ml_internal_terms_plus_student(solvated, backend):
    """openmm-ml's createMixedSystem with the student: E = E_MM - E_MM(ML-internal) + E_student(ML atoms), each
    term computed on its own (the MM System, the dipeptide alone in vacuum, the student on the dipeptide alone);
    forces likewise. Constraints inside the ML region are gone, the water's stay."""
    s = solvated
    mixed = MLPotential(f"openmm-distill-{STUDENT}").createMixedSystem(s.topology, s.mm, s.ml, backend=backend)
    assert student_backends(mixed) == [backend]
    assert len(ml_constraints(s.mm, s.ml)) == 12 and ml_constraints(mixed, s.ml) == []
    assert mixed.getNumConstraints() == s.mm.getNumConstraints() - 12
    assert any(isinstance(f, openmm.CMMotionRemover) for f in mixed.getForces())

    e_mixed, f_mixed = energy_forces(mixed, s.positions)
    e_mm, f_mm = s.mm_energy_forces
    inside = s.positions[s.ml]
    e_internal, f_internal = energy_forces(s.vacuum, inside)
    student_alone = od.create_system(s.pdb.topology, STUDENT, backend=backend, remove_cm_motion=False)
    e_student, f_student = energy_forces(student_alone, inside)
    assert abs(e_internal) > 10 and abs(e_student) > 10  # both terms matter
    assert e_mixed == pytest.approx(e_mm - e_internal + e_student, abs=1e-6)  # measured: 1.5e-11
    expected = f_mm.copy()
    expected[s.ml] += f_student - f_internal
    np.testing.assert_allclose(f_mixed, expected, rtol=0, atol=1e-6)  # measured: 2.3e-12


def test_interpolation_end_points_are_the_mm_and_the_mixed_system(solvated):
    """lambda_interpolate = 0 gives the MM System, 1 the mixed one, 0.5 their mean. backend 'auto' runs the
    student in a PythonForce there: openmm-ml copies the force through XML, which crashes TorchForce."""
    s = solvated
    potential = MLPotential(f"openmm-distill-{STUDENT}")
    interpolated = potential.createMixedSystem(s.topology, s.mm, s.ml, interpolate=True)
    e_mixed, f_mixed = energy_forces(potential.createMixedSystem(s.topology, s.mm, s.ml, backend="python"),
                                     s.positions)
    e_mm, f_mm = s.mm_energy_forces
    e0, f0 = energy_forces(interpolated, s.positions, lambda_interpolate=0.0)
    e1, f1 = energy_forces(interpolated, s.positions, lambda_interpolate=1.0)
    e_half, _ = energy_forces(interpolated, s.positions, lambda_interpolate=0.5)
    # lambda = 0 differs from the MM System by openmm-ml's CustomBondForce of exception differences (its own
    # Coulomb constant): measured 1.5e-6 kJ/mol, 5.4e-6 kJ/mol/nm.
    assert e0 == pytest.approx(e_mm, abs=1e-5)
    np.testing.assert_allclose(f0, f_mm, rtol=0, atol=5e-5)
    assert e1 == pytest.approx(e_mixed, abs=1e-9)
    np.testing.assert_allclose(f1, f_mixed, rtol=0, atol=1e-9)
    assert e_half == pytest.approx((e_mm + e_mixed) / 2, abs=1e-5)
    with pytest.raises(ConfigError, match="crashes openmm-torch 1.5's TorchForce"):
        potential.createMixedSystem(s.topology, s.mm, s.ml, interpolate=True, backend="torch")


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_create_mixed_system_is_openmm_mls(solvated, backend):
    """This package's create_mixed_system and openmm-ml's createMixedSystem build the same System (same XML,
    energies and forces), with a force group and with constraints kept or removed."""
    s = solvated
    potential = MLPotential(f"openmm-distill-{STUDENT}")
    for remove in (True, False):
        ours = od.create_mixed_system(s.mm, s.topology, s.ml, STUDENT, backend=backend, force_group=2,
                                      remove_constraints=remove)
        theirs = potential.createMixedSystem(s.topology, s.mm, s.ml, backend=backend, forceGroup=2,
                                             removeConstraints=remove)
        assert same_xml(ours, theirs)
        assert ours.getNumConstraints() == s.mm.getNumConstraints() - (12 if remove else 0)
    e1, f1 = energy_forces(ours, s.positions)
    e2, f2 = energy_forces(theirs, s.positions)
    assert e1 == e2
    np.testing.assert_array_equal(f1, f2)
    e_student, _ = energy_forces(ours, s.positions, groups={2})
    e_alone, _ = energy_forces(od.create_system(s.pdb.topology, STUDENT, backend=backend), s.positions[s.ml])
    assert e_student == pytest.approx(e_alone, abs=1e-6)


def test_cmap_and_custom_nonbonded_terms_inside_the_ml_region_are_removed(solvated):
    """amber19 (ff19SB has CMAP) plus a CustomNonbondedForce: with the whole dipeptide as the ML region, every MM
    term is gone and the mixed System's energy is the student's alone."""
    pdb = solvated.pdb
    mm = app.ForceField("amber19-all.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    assert sum(f.getNumTorsions() for f in mm.getForces() if isinstance(f, openmm.CMAPTorsionForce)) > 0
    custom = openmm.CustomNonbondedForce("0.1/r^6")
    for _ in range(mm.getNumParticles()):
        custom.addParticle([])
    custom.createExclusionsFromBonds([(b[0].index, b[1].index) for b in pdb.topology.bonds()], 3)
    mm.addForce(custom)
    ml = list(range(mm.getNumParticles()))
    mixed = od.create_mixed_system(mm, pdb.topology, ml, STUDENT, backend="python")
    assert sum(f.getNumTorsions() for f in mixed.getForces() if isinstance(f, openmm.CMAPTorsionForce)) == 0
    excluded = next(f for f in mixed.getForces() if isinstance(f, openmm.CustomNonbondedForce)).getNumExclusions()
    assert excluded == len(ml) * (len(ml) - 1) // 2
    e, f = energy_forces(mixed, pdb.positions)
    e_student, f_student = energy_forces(od.create_system(pdb.topology, STUDENT, backend="python"), pdb.positions)
    assert abs(energy_forces(mm, pdb.positions)[0]) > 10
    assert e == pytest.approx(e_student, abs=1e-6)
    np.testing.assert_allclose(f, f_student, rtol=0, atol=1e-6)


def test_ml_region_that_cuts_bonds_is_refused(solvated):
    """The alanine residue alone cuts two peptide bonds; openmm-ml would add link-atom particles, so
    create_mixed_system says so instead of returning a System that does not match the topology."""
    s = solvated
    residue = [atom.index for atom in list(s.topology.residues())[1].atoms()]
    with pytest.raises(ConfigError, match=r"cuts 2 covalent bond\(s\) \(.*returnInfo=True"):
        od.create_mixed_system(s.mm, s.topology, residue, STUDENT)
    with pytest.raises(ConfigError, match=r"outside the System's"):
        od.create_mixed_system(s.mm, s.topology, [0, 10**6], STUDENT)
    with pytest.raises(ConfigError, match="empty"):
        od.create_mixed_system(s.mm, s.topology, [], STUDENT)
