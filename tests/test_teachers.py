"""Teachers: units (forces = -dE/dx by central differences), registry errors,
ASE import-path teacher, the ASE calculator adapter, the orb-v2 adapter on
a random-weight checkpoint loaded through ``weights_path``, and SevenNet with
the pretrained weights its wheel ships (offline)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill import units
from openmm_distill.errors import ConfigError, TeacherError
from openmm_distill.teachers import Teacher, TeacherResult, available_teachers, get_teacher

# A slightly distorted water molecule (Angstrom), so forces are not ~0.
WATER_Z = np.array([8, 1, 1])
WATER_X = np.array([[0.0, 0.0, 0.0], [0.99, 0.05, 0.0], [-0.20, 0.90, 0.10]])


def _ethanol():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    x = mol.GetConformer().GetPositions() + np.random.default_rng(0).normal(0, 0.03, (len(z), 3))
    return z, x


def central_difference_forces(teacher: Teacher, z, x, coords, h=1e-3):
    """-dE/dx_k (eV/Angstrom) for the flat coordinate indices ``coords``."""
    out = []
    for k in coords:
        xp, xm = x.copy().reshape(-1), x.copy().reshape(-1)
        xp[k] += h
        xm[k] -= h
        ep = teacher.compute(z, xp.reshape(-1, 3)).energy
        em = teacher.compute(z, xm.reshape(-1, 3)).energy
        out.append(-(ep - em) / (2 * h))
    return np.array(out)


def test_registry_names_and_unknown_name():
    assert available_teachers() == ["gfn2-xtb", "orb-v2", "sevennet", "ase"]
    with pytest.raises(ConfigError) as info:
        get_teacher("gfn3-xtb")
    message = str(info.value)
    assert "'gfn3-xtb'" in message
    for name in available_teachers():
        assert name in message


def test_gfn2_xtb_energy_in_ev_and_forces_match_finite_differences():
    teacher = get_teacher("gfn2-xtb", accuracy=0.01)
    assert (teacher.energy_unit, teacher.force_unit) == ("eV", "eV/Angstrom")
    assert teacher.name == "gfn2-xtb" and teacher.version.startswith("tblite")
    water = teacher.compute(WATER_Z, WATER_X)
    assert isinstance(water, TeacherResult)
    # GFN2-xTB water is about -5.07 Hartree = -138 eV: eV, not Hartree or kJ/mol.
    assert -139.0 < water.energy < -137.0
    assert water.energy / units.HARTREE_TO_EV == pytest.approx(-5.07, abs=0.01)

    z, x = _ethanol()
    result = teacher.compute(z, x)
    assert result.forces.shape == (len(z), 3) and result.forces.dtype == np.float64
    assert np.abs(result.forces).max() > 0.1  # off-equilibrium: real forces to compare
    coords = [0, 4, 8, 13, 20, 26]
    fd = central_difference_forces(teacher, z, x, coords)
    np.testing.assert_allclose(result.forces.reshape(-1)[coords], fd, atol=2e-3)
    # Net force of an isolated molecule vanishes (translation invariance).
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=1e-6)


def test_gfn2_xtb_runs_single_threaded_without_changing_torch_threads():
    import torch

    before = torch.get_num_threads()
    teacher = get_teacher("gfn2-xtb")
    assert teacher.threads == 1 and "threads" not in teacher.settings
    teacher.compute(WATER_Z, WATER_X)
    assert torch.get_num_threads() == before


def test_gfn2_xtb_scf_failure_and_bad_input_raise_teacher_error():
    teacher = get_teacher("gfn2-xtb", max_iterations=2)
    with pytest.raises(TeacherError, match="SCF"):
        teacher.compute(WATER_Z, WATER_X * 0.6)
    with pytest.raises(TeacherError, match="shape"):
        get_teacher("gfn2-xtb").compute(WATER_Z, WATER_X[:2])
    with pytest.raises(TeacherError, match="NaN"):
        get_teacher("gfn2-xtb").compute(WATER_Z, np.full((3, 3), np.nan))
    with pytest.raises(ConfigError, match="max_iterations"):
        get_teacher("gfn2-xtb", max_iterations=0)
    with pytest.raises(ConfigError, match="bad options"):
        get_teacher("gfn2-xtb", not_an_option=1)


def test_gfn2_xtb_periodic_box_in_large_cell_matches_isolated():
    teacher = get_teacher("gfn2-xtb", accuracy=0.01)
    isolated = teacher.compute(WATER_Z, WATER_X)
    periodic = teacher.compute(WATER_Z, WATER_X + 5.0, box=np.eye(3) * 25.0)
    assert periodic.energy == pytest.approx(isolated.energy, abs=5e-3)
    np.testing.assert_allclose(periodic.forces, isolated.forces, atol=5e-3)


def test_charge_is_passed_to_gfn2_xtb():
    teacher = get_teacher("gfn2-xtb")
    neutral = teacher.compute(WATER_Z, WATER_X).energy
    cation = teacher.compute(WATER_Z, WATER_X, charge=2).energy
    assert get_teacher("gfn2-xtb", charge=2).compute(WATER_Z, WATER_X).energy == pytest.approx(cation)
    assert cation - neutral > 10.0  # removing two electrons costs tens of eV


def test_ase_teacher_by_import_path_matches_the_calculator():
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    teacher = get_teacher("ase", calculator="ase.calculators.lj:LennardJones", sigma=1.0, epsilon=0.2, rc=6.0)
    assert teacher.settings["calculator"] == "ase.calculators.lj:LennardJones"
    assert teacher.settings["sigma"] == 1.0
    z = np.array([18, 18, 18])
    x = np.array([[0.0, 0.0, 0.0], [1.15, 0.1, 0.0], [0.3, 1.2, 0.2]])
    result = teacher.compute(z, x)
    atoms = Atoms(numbers=z, positions=x, calculator=LennardJones(sigma=1.0, epsilon=0.2, rc=6.0))
    assert result.energy == pytest.approx(atoms.get_potential_energy())
    np.testing.assert_allclose(result.forces, atoms.get_forces())
    fd = central_difference_forces(teacher, z, x, range(9), h=1e-5)
    np.testing.assert_allclose(result.forces.reshape(-1), fd, atol=1e-5)

    emt = get_teacher("ase", calculator="ase.calculators.emt:EMT")
    cu = emt.compute(np.array([29] * 4), np.eye(3, 3).tolist() + [[0, 0, 0]], box=np.eye(3) * 3.6)
    assert np.isfinite(cu.energy)


def test_ase_teacher_bad_paths():
    with pytest.raises(ConfigError, match="calculator="):
        get_teacher("ase")
    with pytest.raises(ImportError, match="no_such_package"):
        get_teacher("ase", calculator="no_such_package.calc:Thing")
    with pytest.raises(ConfigError, match="NoSuchCalculator"):
        get_teacher("ase", calculator="ase.calculators.emt:NoSuchCalculator")


def test_as_ase_calculator_drives_ase():
    from ase import Atoms

    teacher = get_teacher("gfn2-xtb")
    atoms = Atoms(numbers=WATER_Z, positions=WATER_X)
    atoms.calc = teacher.as_ase_calculator()
    direct = teacher.compute(WATER_Z, WATER_X)
    assert atoms.get_potential_energy() == pytest.approx(direct.energy)
    np.testing.assert_allclose(atoms.get_forces(), direct.forces)
    atoms.pbc = [True, False, False]
    atoms.cell = np.eye(3) * 10
    with pytest.raises(TeacherError, match="periodic"):
        atoms.get_potential_energy()


@pytest.mark.slow  # 3 s idle, 20+ s on a busy 2-core machine: 25M-parameter model, 100 MB checkpoint
def test_orb_v2_adapter_loads_random_weight_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("orb_models.forcefield.pretrained")
    from openmm_distill.teachers.orb_v2 import random_orb_v2_checkpoint

    start = time.perf_counter()
    checkpoint = tmp_path / "orb_v2_random.ckpt"
    assert random_orb_v2_checkpoint(checkpoint) == str(checkpoint)
    default_dtype = torch.get_default_dtype()

    teacher = get_teacher("orb-v2", weights_path=str(checkpoint))
    assert torch.get_default_dtype() == default_dtype  # the loader's global change is undone
    assert teacher.settings["conservative_forces"] is False
    assert "direct" in teacher.settings["forces"]
    assert teacher.settings["dtype"] == "float32"
    assert teacher.settings["weights"] == str(checkpoint)
    z, x = _ethanol()
    result = teacher.compute(z, x)
    assert result.forces.shape == (len(z), 3)
    assert np.all(np.isfinite(result.forces)) and np.isfinite(result.energy)
    # No notion of charge: a charged structure is refused, not labelled as neutral.
    assert teacher.settings["charge"] == "neutral only"
    assert teacher.compute(z, x, charge=0).energy == pytest.approx(result.energy)
    with pytest.raises(TeacherError, match="charge=1"):
        teacher.compute(z, x, charge=1)
    # The same path drives MD sampling through ASE.
    from ase import Atoms

    atoms = Atoms(numbers=z, positions=x, calculator=teacher.as_ase_calculator())
    np.testing.assert_allclose(atoms.get_forces(), result.forces, atol=1e-5)
    with pytest.raises(ConfigError, match="does not exist"):
        get_teacher("orb-v2", weights_path=str(tmp_path / "missing.ckpt"))
    elapsed = time.perf_counter() - start
    print(f"orb-v2 random-weight adapter test took {elapsed:.1f} s")


# -- SevenNet: real pretrained weights, shipped inside the sevenn wheel --------------------------------
@pytest.fixture(scope="module")
def sevennet():
    pytest.importorskip("sevenn")
    return get_teacher("sevennet")  # 7net-0


def test_sevennet_labels_offline_in_ev_with_forces_matching_finite_differences(sevennet):
    import sevenn.util

    from openmm_distill.checksums import file_sha256

    assert (sevennet.energy_unit, sevennet.force_unit) == ("eV", "eV/Angstrom")
    settings = sevennet.settings
    assert settings["model"] == "7net-0" and settings["modal"] is None
    assert settings["n_parameters"] == 842623 and settings["conservative_forces"] is True
    assert settings["checkpoint_sha256"] == file_sha256(sevenn.util.pretrained_name_to_path("7net-0"))
    assert sevennet.version == f"sevenn {settings['sevenn_version']}; 7net-0 checkpoint_sevennet_0.pth"

    z, x = _ethanol()
    result = sevennet.compute(z, x)
    assert result.forces.shape == (len(z), 3) and result.forces.dtype == np.float64
    # SevenNet-0 ethanol is about -46.5 eV (PBE-like total energy per its MPtrj references): eV, not kJ/mol.
    assert -50.0 < result.energy < -43.0
    assert np.abs(result.forces).max() > 0.3  # off-equilibrium: real forces to compare
    coords = [0, 4, 8, 13, 20, 26]
    # float32 model: with h = 3e-3 Angstrom the energy round-off (~1e-5 eV) gives ~2e-3 eV/Angstrom of noise.
    fd = central_difference_forces(sevennet, z, x, coords, h=3e-3)
    np.testing.assert_allclose(result.forces.reshape(-1)[coords], fd, atol=5e-3)
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=1e-4)
    again = sevennet.compute(z, x)  # deterministic: resumable labelling relies on it
    assert again.energy == result.energy and np.array_equal(again.forces, result.forces)


def test_sevennet_refuses_charge_unknown_models_and_bad_modal(sevennet):
    with pytest.raises(TeacherError, match="charge=1.*neutral"):
        sevennet.compute(WATER_Z, WATER_X, charge=1)
    assert np.isfinite(sevennet.compute(WATER_Z, WATER_X, charge=0).energy)
    with pytest.raises(ConfigError, match="7net-omni.*allowed: 7net-0, 7net-l3i5, 7net-mf-0"):
        get_teacher("sevennet", model="7net-omni")
    with pytest.raises(ConfigError, match="single fidelity"):
        get_teacher("sevennet", modal="PBE")
    with pytest.raises(ConfigError, match="choose modal=.*R2SCAN, PBE"):
        get_teacher("sevennet", model="7net-mf-0")
    with pytest.raises(ConfigError, match="modal='HSE'.*allowed: R2SCAN, PBE"):
        get_teacher("sevennet", model="7net-mf-0", modal="HSE")
    with pytest.raises(ConfigError, match="bad options"):
        get_teacher("sevennet", weights_path="x.pth")


def test_sevennet_multi_fidelity_modal_is_case_insensitive_and_recorded():
    pytest.importorskip("sevenn")
    pbe = get_teacher("sevennet", model="7net-mf-0", modal="pbe")
    assert pbe.settings["modal"] == "PBE" and pbe.settings["checkpoint"] == "checkpoint_sevennet_mf_0.pth"
    r2scan = get_teacher("sevennet", model="7net-mf-0", modal="R2SCAN")
    assert abs(pbe.compute(WATER_Z, WATER_X).energy - r2scan.compute(WATER_Z, WATER_X).energy) > 0.01


def test_sevennet_threads_option_restores_torch_threads(sevennet):
    import torch

    from openmm_distill.teachers.sevennet import SevenNetTeacher

    before = torch.get_num_threads()
    assert sevennet.threads is None and "threads" not in sevennet.settings
    sevennet.threads = 1
    try:
        sevennet.compute(WATER_Z, WATER_X)
        assert torch.get_num_threads() == before
    finally:
        sevennet.threads = None
    with pytest.raises(ConfigError, match="threads"):
        SevenNetTeacher(threads=0)


def test_sevennet_drives_teacher_md_sampling(sevennet):
    from openmm_distill.data.md_sampling import langevin_snapshots

    z, x = _ethanol()
    frames = langevin_snapshots(
        sevennet, z, x, temperature_K=300.0, n_snapshots=2, interval_steps=2, equilibration_steps=1,
        timestep_fs=0.5, friction_per_fs=0.01, rng=np.random.default_rng(0),
    )
    assert len(frames) == 2
    for frame in frames:
        assert not np.allclose(frame.positions, x)
        direct = sevennet.compute(z, frame.positions)
        assert frame.energy == pytest.approx(direct.energy, abs=1e-6)
        np.testing.assert_allclose(frame.forces, direct.forces, atol=1e-6)


def test_missing_sevenn_names_the_install_command():
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['sevenn'] = None\n"
        "from openmm_distill.teachers import get_teacher\n"
        "from openmm_distill.errors import MissingDependencyError\n"
        "try:\n"
        "    get_teacher('sevennet')\n"
        "except MissingDependencyError as exc:\n"
        "    print('caught:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'caught: sevenn is not installed' in proc.stdout
    assert 'pip install "openmm-distill[sevennet]"' in proc.stdout


def test_sevennet_in_openmm_matches_the_teacher_and_runs_the_stability_protocol(sevennet, tmp_path):
    """The teacher as an OpenMM force (PythonForce around its ASE calculator): the stability protocol runs it."""
    import json

    from openmm_distill.protocols import StabilitySettings
    from openmm_distill.protocols.teachers import run_teacher_stability_protocol, teacher_system
    from openmm_distill.systems.resolve import resolve_system

    import openmm
    from openmm import unit

    molsys = resolve_system("CCO")
    system = teacher_system(sevennet, molsys)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(molsys.positions_nm)
    state = context.getState(getEnergy=True, getForces=True)
    direct = sevennet.compute(molsys.atomic_numbers, molsys.positions_nm * units.NM_TO_ANGSTROM)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert energy == pytest.approx(direct.energy * units.EV_TO_KJ_PER_MOL, abs=1e-6)
    np.testing.assert_allclose(forces, direct.forces * units.EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM, atol=1e-4)

    # 20 fs at 500 K on two molecules; a charged one is reported and skipped (SevenNet is neutral only).
    settings = StabilitySettings.quick(temperatures_k=(500.0,), length_ps=0.02, frame_interval_fs=10.0)
    out = run_teacher_stability_protocol(sevennet, ["CCO", "C", "C[NH3+]"], settings, tmp_path, show_progress=False)
    assert set(out.results["skipped_systems"]) == {"C[NH3+]"}
    assert "charge=1" in out.results["skipped_systems"]["C[NH3+]"]
    data = json.loads((tmp_path / "stability.json").read_text())
    assert [s["system"]["name"] for s in data["systems"]] == ["CCO", "C"]
    for record in data["systems"]:
        (run,) = record["runs"]
        assert run["survived"] and run["simulated_ps"] == pytest.approx(0.02)
    assert data["model"]["forces"] == [f"teacher sevennet ({sevennet.version}; ASE calculator, PythonForce)"]


def test_a_students_recorded_sevennet_model_is_the_one_rebuilt_for_its_checks():
    pytest.importorskip("sevenn")
    from openmm_distill.protocols.teachers import default_teacher_name, default_teacher_options, get_protocol_teacher

    recorded = get_teacher("sevennet", model="7net-mf-0", modal="R2SCAN")
    meta = {"teacher": {"name": recorded.name, "version": recorded.version, "settings": recorded.settings}}
    assert default_teacher_options(meta) == {"model": "7net-mf-0", "modal": "R2SCAN"}
    rebuilt, label = get_protocol_teacher(default_teacher_name(meta), **default_teacher_options(meta))
    assert label == "sevennet (7net-mf-0)"
    assert rebuilt.settings["checkpoint_sha256"] == recorded.settings["checkpoint_sha256"]
    assert rebuilt.compute(WATER_Z, WATER_X).energy == recorded.compute(WATER_Z, WATER_X).energy
    assert default_teacher_options({"teacher": {"name": "gfn2-xtb", "settings": {"accuracy": 1.0}}}) == {}
    assert default_teacher_options({}) == {} and default_teacher_options({"teacher": "sevennet"}) == {}
