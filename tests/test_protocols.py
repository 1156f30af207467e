"""Validation protocols: the numbers they compute, the watchdog, and the files each protocol writes.

Numbers are checked on constructed data and on an analytic OpenMM system (a
harmonic oscillator conserves energy); the protocols' file output is checked
on a random-weight ultra-tiny student with very short runs (such a student is
not stable in MD, so the watchdog may stop it: the tests check files and
structure, not survival).
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import openmm_distill as od  # noqa: F401  (torch before openmm)
from openmm_distill.protocols import (  # noqa: E402
    AccuracySettings,
    MolecularSystem,
    NVESettings,
    StabilitySettings,
    ThroughputSettings,
    VerdictThresholds,
    Watchdog,
    WatchdogThresholds,
    analyse_energy_series,
    energy_metrics,
    force_metrics,
    nve_energy_series,
    percentile_summary,
    run_accuracy_protocol,
    run_nve,
    run_nve_protocol,
    run_report,
    run_stability_protocol,
    run_throughput_protocol,
    system_verdict,
    update_model_card,
)
from openmm_distill.protocols.output import to_jsonable  # noqa: E402
from openmm_distill.protocols.report import replace_section  # noqa: E402
from openmm_distill.systems.resolve import resolve_system  # noqa: E402
from openmm_distill.units import KJ_PER_MOL_TO_MEV  # noqa: E402
from tests.conftest import make_student  # noqa: E402

import openmm  # noqa: E402
from openmm import app, unit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads can make small models ~100x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A random-weight ultra-tiny float32 student in its own folder (the report writes a card next to it)."""
    return make_student(tmp_path_factory.mktemp("protocol_student") / "ultra_tiny.pt", dtype="float32")


def harmonic_system(n_molecules: int = 4):
    """Diatomics on harmonic bonds, 0.5 nm apart: (System, MolecularSystem). Energy is exactly conserved in NVE."""
    topology = app.Topology()
    chain = topology.addChain()
    system = openmm.System()
    bonds = openmm.HarmonicBondForce()
    positions = []
    for k in range(n_molecules):
        residue = topology.addResidue("CO", chain)
        c = topology.addAtom("C", app.element.carbon, residue)
        o = topology.addAtom("O", app.element.oxygen, residue)
        topology.addBond(c, o)
        system.addParticle(12.011)
        system.addParticle(15.999)
        bonds.addBond(2 * k, 2 * k + 1, 0.113, 1.5e5)  # nm, kJ/mol/nm^2
        positions += [[0.5 * k, 0.0, 0.0], [0.5 * k + 0.113, 0.0, 0.0]]
    system.addForce(bonds)
    molsys = MolecularSystem("harmonic", topology, np.array(positions), np.array([6, 8] * n_molecules))
    return system, molsys


# -- NVE numbers --------------------------------------------------------------------------------------

def test_drift_of_synthetic_series_recovers_slope():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 10.0, 2001)  # ps
    slope = 0.05  # kJ/mol/ps
    kinetic = 50.0 + rng.normal(0, 2.0, t.size)
    # Potential mirrors the kinetic fluctuation (as in NVE) plus a linear drift.
    potential = -1000.0 - (kinetic - 50.0) + slope * t + rng.normal(0, 1e-3, t.size)
    a = analyse_energy_series(t, potential, kinetic, n_atoms=10)
    assert a.drift_kj_per_mol_per_ps == pytest.approx(slope, rel=1e-3)
    assert a.drift_mev_per_atom_per_ps == pytest.approx(slope * KJ_PER_MOL_TO_MEV / 10, rel=1e-3)
    assert a.relative_drift_percent == pytest.approx(slope * 10.0 / 50.0 * 100.0, rel=2e-2)
    assert a.max_excursion_kj_per_mol == pytest.approx(slope * 10.0, abs=5e-3)
    assert a.total_energy_std_kj_per_mol == pytest.approx(slope * 10.0 / np.sqrt(12), rel=2e-2)  # uniform ramp
    # 0.05 kJ/mol/ps over 10 atoms is 0.052 meV/atom/ps: passes 0.1, fails 0.05.
    assert a.passed and a.finite and not a.reasons
    strict = analyse_energy_series(t, potential, kinetic, n_atoms=10, max_abs_drift_mev_per_atom_per_ps=0.05)
    assert not strict.passed and "drift" in strict.reasons[0]
    relative = analyse_energy_series(t, potential, kinetic, n_atoms=10, max_relative_drift_percent=0.5)
    assert not relative.passed and "relative" in relative.reasons[0]


def test_drift_of_non_finite_series_fails():
    a = analyse_energy_series([0, 1, 2], [0.0, np.nan, 1.0], [1.0, 1.0, 1.0], n_atoms=3)
    assert not a.finite and not a.passed and "NaN" in a.reasons[0]
    json.dumps(to_jsonable(a.as_dict()), allow_nan=False)  # NaN become null in result files


def test_nve_of_harmonic_oscillators_conserves_energy():
    system, molsys = harmonic_system()
    settings = NVESettings(equilibration_ps=0.1, length_ps=1.0, report_interval_fs=2.0, timestep_fs=0.5)
    result = run_nve(system, molsys, settings, platform="Reference", show_progress=False)
    a = result.analysis
    assert result.status == "ok" and result.passed
    assert abs(a.drift_mev_per_atom_per_ps) < 1e-3
    assert a.total_energy_std_mev_per_atom < 0.1
    assert a.n_samples == 1 + 2000 // 4  # 1 ps of 0.5 fs steps, a sample every 4 steps
    assert 100 < a.mean_temperature_k < 700  # thermalised at 300 K; 24 degrees of freedom fluctuate a lot
    assert result.platform["platform"] == "Reference" and result.platform["precision"] == "double"
    assert "backend" not in result.platform  # a classical System: no student force to name


def test_nve_energy_series_detects_a_heat_source():
    """A Langevin thermostat heating from 0 K is not energy conserving: the drift must show and fail."""
    # Weak friction (energy relaxes over ~0.5 ps, the whole window) and 16 molecules keep the heating trend
    # above the thermal noise; with 20/ps and 4 molecules the system was heated within 0.1 ps and the fitted
    # slope of the rest was noise of either sign (it failed once in a fresh-clone run). Drift over 40 seeds: 116-220 meV/atom/ps.
    system, molsys = harmonic_system(16)
    integrator = openmm.LangevinMiddleIntegrator(1000 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    sim = app.Simulation(molsys.topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(molsys.positions)
    series = nve_energy_series(sim, 1000, 10, show_progress=False)
    assert series.completed and len(series.time_ps) == 101
    assert series.time_ps[-1] == pytest.approx(0.5)
    a = analyse_energy_series(series.time_ps, series.potential_kj_per_mol, series.kinetic_kj_per_mol, molsys.n_atoms)
    assert a.drift_mev_per_atom_per_ps > 1.0 and not a.passed


# -- accuracy numbers ---------------------------------------------------------------------------------

def test_force_metrics_of_a_perfect_prediction():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 3))
    m = force_metrics(f, f, np.array([1, 6] * 25))
    assert m["r2"] == pytest.approx(1.0)
    assert m["mae"] == 0 and m["rmse"] == 0
    assert m["angle_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["component_abs_error"]["max"] == 0 and m["atom_error_norm"]["p95"] == 0
    assert m["per_element_mae"] == {"H": 0.0, "C": 0.0}
    assert m["per_element_count"] == {"H": 25, "C": 25}


def test_force_metrics_of_a_known_rotation():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(40, 3))
    f[:, 2] = 0.0  # in the xy plane, so a rotation about z turns every vector by exactly theta
    theta = np.deg2rad(30.0)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    m = force_metrics(f @ rot.T, f, min_force=0.0)
    assert m["angle_deg"] == pytest.approx(30.0, abs=1e-6)
    assert m["angle"]["p50"] == pytest.approx(30.0, abs=1e-6) and m["angle"]["max"] == pytest.approx(30.0, abs=1e-6)
    # |R f - f| = 2 |f| sin(theta / 2) for each atom.
    norms = np.linalg.norm(f, axis=1) * 2 * np.sin(theta / 2)
    assert m["atom_error_norm"]["max"] == pytest.approx(norms.max())
    assert m["r2"] < 1.0


def test_angles_leave_out_small_reference_forces():
    target = np.array([[1.0, 0, 0], [0.01, 0, 0]])
    pred = np.array([[0, 1.0, 0], [-0.01, 0, 0]])  # 90 and 180 degrees
    assert force_metrics(pred, target, min_force=0.05)["angle_deg"] == pytest.approx(90.0)
    assert force_metrics(pred, target, min_force=0.0)["angle_deg"] == pytest.approx(135.0)


def test_percentiles():
    s = percentile_summary(np.arange(1, 101))
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p95"] == pytest.approx(95.05)
    assert s["max"] == 100 and s["mean"] == pytest.approx(50.5)
    assert np.isnan(percentile_summary([])["p50"])


def test_energy_metrics_absolute_and_offset_corrected():
    ref = np.array([-100.0, -101.0, -102.0, -50.0, -50.5])
    n = np.array([10, 10, 10, 5, 5])
    offsets = np.array([1.0, 1.0, 1.0, -0.5, -0.5])  # eV per molecule
    pred = ref + offsets + np.array([0.01, -0.01, 0.0, 0.005, -0.005])
    m = energy_metrics(pred, ref, n, ["a", "a", "a", "b", "b"])
    assert m["mae_mev_per_atom"] == pytest.approx(np.mean(np.abs(pred - ref) / n) * 1000)
    assert m["offsets_mev_per_atom"]["a"] == pytest.approx(100.0, abs=1e-9)
    assert m["offsets_mev_per_atom"]["b"] == pytest.approx(-100.0, abs=1e-9)
    # Residuals after removing each molecule's mean error: 1, 1, 0, 1, 1 meV/atom.
    assert m["offset_corrected_mae_mev_per_atom"] == pytest.approx(0.8)
    assert m["n_structures"] == 5


# -- watchdog ---------------------------------------------------------------------------------------------

WATER = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])  # Angstrom


def test_watchdog_accepts_the_start_and_thermal_noise():
    dog = Watchdog([8, 1, 1], [[0, 1], [0, 2]], WATER)
    check = dog.check(WATER + 0.05, np.ones((3, 3)))
    assert check.ok and not check.reasons
    assert check.max_force_ev_per_angstrom == pytest.approx(np.sqrt(3))


def test_watchdog_triggers_on_a_stretched_bond():
    dog = Watchdog([8, 1, 1], [[0, 1], [0, 2]], WATER)
    pos = WATER.copy()
    pos[1, 0] = 0.96 + 0.6
    check = dog.check(pos)
    assert not check.ok and check.worst_bond == (0, 1)
    assert check.max_bond_deviation_angstrom == pytest.approx(0.6)
    assert "stretched" in check.reasons[0]
    pos[1, 0] = 0.4  # compressed by 0.56 Angstrom: atoms fusing
    assert "compressed" in dog.check(pos).reasons[0]


def test_watchdog_triggers_on_a_far_hydrogen():
    loose = WatchdogThresholds(max_bond_deviation_angstrom=10.0)  # only the hydrogen rule can fire
    dog = Watchdog([8, 1, 1], [[0, 1], [0, 2]], WATER, loose)
    pos = WATER.copy()
    pos[2] = [0.0, 2.6, 0.0]
    check = dog.check(pos)
    assert not check.ok and len(check.reasons) == 1
    assert "hydrogen 2" in check.reasons[0] and check.max_hydrogen_distance_angstrom == pytest.approx(2.6)


def test_watchdog_triggers_on_nan_and_huge_forces():
    dog = Watchdog([8, 1, 1], [[0, 1], [0, 2]], WATER)
    forces = np.zeros((3, 3))
    forces[1, 2] = np.nan
    check = dog.check(WATER, forces)
    assert not check.ok and "non-finite force" in check.reasons[0]
    forces[1, 2] = 60.0
    check = dog.check(WATER, forces)
    assert not check.ok and "force 60" in check.reasons[0]
    assert not dog.check(np.full((3, 3), np.nan)).ok


def test_watchdog_uses_minimum_image_in_a_box():
    box = np.eye(3) * 10.0
    start = np.array([[0.2, 5.0, 5.0], [9.4, 5.0, 5.0]])  # bonded across the boundary: 0.8 Angstrom
    dog = Watchdog([8, 1], [[0, 1]], start, box_angstrom=box)
    assert dog.reference_lengths[0] == pytest.approx(0.8)
    assert dog.check(start + [[0, 0, 0], [0.1, 0, 0]]).ok


# -- the shared MD loop (openmm_distill.md) ----------------------------------------------------------------

def _watched_harmonic_run(thresholds: WatchdogThresholds):
    from openmm_distill.md.langevin import langevin_simulation, run_watched

    system, molsys = harmonic_system(2)
    simulation = langevin_simulation(system, molsys.topology, molsys.positions, temperature_k=300.0,
                                     timestep_fs=0.5, friction_per_ps=1.0, seed=3, platform="Reference")
    checks = []
    run = run_watched(simulation, Watchdog.for_system(molsys, thresholds), n_steps=205, check_interval_steps=20,
                      timestep_fs=0.5, periodic=False, on_check=checks.append)
    return run, checks


def test_watched_run_checks_every_interval_and_survives():
    run, checks = _watched_harmonic_run(WatchdogThresholds())
    # 205 steps round down to 10 checks of 20 steps, plus the starting state.
    assert run.survived and run.failure_reasons == [] and run.time_to_failure_ps is None
    assert [c.index for c in checks] == list(range(11))
    assert run.simulated_ps == pytest.approx(0.1) and checks[-1].time_ps == pytest.approx(0.1)
    assert all(c.check.ok for c in checks) and checks[0].box_angstrom is None
    # The callback gets the state in the watchdog's units: Angstrom, eV/Angstrom.
    assert checks[0].positions_angstrom[1, 0] == pytest.approx(1.13)
    assert np.isfinite(checks[-1].state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))


def test_watched_run_stops_at_the_first_failed_check():
    # The thermal C-O vibration at 300 K moves the bond by ~0.01 Angstrom; a 1e-4 Angstrom limit fails at once.
    run, checks = _watched_harmonic_run(WatchdogThresholds(max_bond_deviation_angstrom=1e-4))
    assert not run.survived and "bond" in run.failure_reasons[0]
    assert not checks[-1].check.ok and all(c.check.ok for c in checks[:-1])
    assert run.time_to_failure_ps == pytest.approx(checks[-1].time_ps) == pytest.approx(run.simulated_ps)
    assert 0 < run.time_to_failure_ps < 0.1


def test_md_loop_stops_when_the_callback_says_so():
    from openmm_distill.md.loop import run_md

    system, molsys = harmonic_system(1)
    simulation = app.Simulation(molsys.topology, system, openmm.VerletIntegrator(0.0005),
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(molsys.positions)
    seen = []
    run = run_md(simulation, 5, 4, lambda steps, state: seen.append(steps) or steps < 8)
    assert seen == [0, 4, 8] and run.steps_done == 8 and run.stopped and not run.completed
    assert simulation.currentStep == 8
    full = run_md(simulation, 2, 3, lambda steps, state: True)
    assert full.completed and full.steps_done == 6 and simulation.currentStep == 14


def test_bonds_are_guessed_without_topology_bonds():
    topology = app.Topology()
    residue = topology.addResidue("HOH", topology.addChain())
    for symbol in "OHH":
        topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    molsys = MolecularSystem("water", topology, WATER * 0.1, np.array([8, 1, 1]))
    assert sorted(tuple(sorted(b)) for b in molsys.bonds().tolist()) == [(0, 1), (0, 2)]


# -- verdicts and model cards ---------------------------------------------------------------------------

def _records(r2, angle, drift, survived):
    accuracy = {"forces": {"r2": r2, "angle_deg": angle}}
    nve = {"status": "ok", "analysis": {"drift_mev_per_atom_per_ps": drift}}
    stability = {"status": "ok", "runs": [{"temperature_k": t, "survived": s, "time_to_failure_ps": None if s else 1.0}
                                          for t, s in zip((300.0, 500.0), survived)]}
    return accuracy, nve, stability


@pytest.mark.parametrize("values, expected", [
    ((0.995, 9.0, 0.05, (True, True)), "production"),
    ((0.995, 9.0, 0.05, (True, False)), "screening only"),
    ((0.97, 20.0, 0.5, (True, True)), "screening only"),
    ((0.97, 20.0, 2.0, (True, True)), "not recommended"),
    ((0.38, 48.6, 0.05, (True, True)), "not recommended"),
    ((0.995, 9.0, 0.05, (False, False)), "not recommended"),
])
def test_verdicts(values, expected):
    v = system_verdict(*_records(*values), VerdictThresholds())
    assert v["verdict"] == expected
    assert (not v["production_failures"]) == (expected == "production")


def test_missing_results_are_not_recommended():
    v = system_verdict(None, {"status": "skipped", "message": "BoxTooSmallError: too small"}, None)
    assert v["verdict"] == "not recommended"
    assert any("NVE skipped" in r for r in v["screening_failures"])


def test_replace_section_keeps_the_rest_of_the_card():
    card = "# Card\n\nIntro.\n\n## Validation\n\nold numbers\n\n### detail\n\nold\n\n## Training\n\nkept\n"
    new = replace_section(card, "## Validation", "new numbers")
    assert "old" not in new and "new numbers" in new
    assert new.index("## Validation") < new.index("## Training") and "kept" in new and "Intro." in new
    assert replace_section(new, "## Validation", "newer").count("## Validation") == 1
    appended = replace_section("# Card\n", "## Validation", "first")
    assert appended == "# Card\n\n## Validation\n\nfirst\n"


def test_update_model_card_creates_and_replaces(student, tmp_path):
    card = tmp_path / "card.md"
    update_model_card(student, "first", card)
    text = card.read_text()
    assert text.startswith("# Model card: ultra_tiny") and "## Validation\n\nfirst" in text
    card.write_text(text + "\n## Limitations\n\nnone known\n")
    update_model_card(student, "second", card)
    text = card.read_text()
    assert "second" in text and "first" not in text and "none known" in text


# -- systems -----------------------------------------------------------------------------------------

def test_resolve_systems():
    ethanol = resolve_system("ethanol")
    assert ethanol.n_atoms == 9 and not ethanol.periodic and ethanol.smiles == "CCO"
    water = resolve_system("water:50")
    assert water.n_atoms == 150 and water.periodic and water.box_nm.shape == (3, 3)
    smiles = resolve_system("C=O")
    assert smiles.n_atoms == 4 and smiles.smiles == "C=O"


# -- each protocol writes its files (quick, tiny, random student) ------------------------------------------

def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_nve_protocol_writes_files(student, tmp_path):
    out = run_nve_protocol(student, "ethanol", NVESettings(equilibration_ps=0.01, length_ps=0.05),
                           tmp_path / "nve", show_progress=False)
    for name in ("nve.json", "summary.md", "nve_ethanol.png", "nve_ethanol.csv"):
        assert (tmp_path / "nve" / name).is_file(), name
    data = _load(out.json_path)
    record = data["systems"][0]
    assert record["system"]["name"] == "ethanol" and record["system"]["n_atoms"] == 9
    assert {"drift_mev_per_atom_per_ps", "relative_drift_percent", "total_energy_std_mev_per_atom",
            "max_excursion_mev_per_atom"} <= set(record["analysis"])
    assert record["platform"]["platform"] and "precision" in record["platform"]
    assert record["platform"]["backend"] == "torch"  # the default; a merged sweep shows which parts used which
    assert data["model"]["preset"] == "ultra-tiny" and data["settings"]["timestep_fs"] == 0.5
    assert "| ethanol | 9 |" in out.summary


def test_nve_protocol_in_worker_processes_keeps_system_order(student, tmp_path):
    """jobs=2 runs each system in its own process; results come back in input order, equal to a serial run."""
    settings = NVESettings(equilibration_ps=0.005, length_ps=0.01)
    systems = ["ethanol", "water:1", "aspirin"]
    parallel = _load(run_nve_protocol(student, systems, settings, tmp_path / "p", show_progress=False,
                                      jobs=2).json_path)["systems"]
    serial = _load(run_nve_protocol(student, systems, settings, tmp_path / "s", show_progress=False).json_path)["systems"]
    assert [r["system"]["name"] for r in parallel] == [r["system"]["name"] for r in serial]
    assert [r["system"]["n_atoms"] for r in parallel] == [9, 3, 21]
    for p, s in zip(parallel, serial):
        assert p["status"] == s["status"]
        if s["status"] == "ok":
            assert p["analysis"]["mean_kinetic_kj_per_mol"] == pytest.approx(
                s["analysis"]["mean_kinetic_kj_per_mol"], rel=1e-3)


def test_parallel_sweep_refuses_an_in_memory_model(tmp_path):
    from openmm_distill.errors import ConfigError
    from openmm_distill.protocols.parallel import map_systems

    with pytest.raises(ConfigError, match="name or file path"):
        map_systems(run_nve, openmm.System(), ["ethanol", "aspirin"], jobs=2)
    with pytest.raises(ConfigError, match="positive integer, got 0"):
        map_systems(run_nve, "tiny", ["ethanol"], jobs=0)


def test_stability_protocol_writes_files(student, tmp_path):
    settings = StabilitySettings(length_ps=0.05, watchdog_interval_steps=10, frame_interval_fs=10.0)
    out = run_stability_protocol(student, "ethanol", settings, tmp_path / "stab", show_progress=False)
    folder = tmp_path / "stab"
    for name in ("stability.json", "summary.md", "stability_ethanol.png", "stability_ethanol_300K.dcd",
                 "stability_ethanol_500K.dcd", "stability_ethanol_300K.pdb"):
        assert (folder / name).is_file(), name
    runs = _load(out.json_path)["systems"][0]["runs"]
    assert [r["temperature_k"] for r in runs] == [300.0, 500.0]
    for run in runs:
        assert run["survived"] == (run["time_to_failure_ps"] is None)
        assert run["survived"] or run["failure_reasons"]
        assert run["analysis"]["n_frames"] >= 1 and run["analysis"]["rmsd_angstrom"][0] == pytest.approx(0, abs=1e-3)
        assert "C-H" in run["analysis"]["bond_types"]
        assert run["series"]["time_ps"][0] == 0.0


def test_accuracy_protocol_writes_files(student, tmp_path):
    settings = AccuracySettings(n_conformers=1, n_displacements=2)
    out = run_accuracy_protocol(student, "ethanol", settings, tmp_path / "acc", teacher="gfn2-xtb",
                                show_progress=False)
    for name in ("accuracy.json", "summary.md", "accuracy_parity.png", "accuracy_errors.png", "accuracy_samples.npz"):
        assert (tmp_path / "acc" / name).is_file(), name
    metrics = _load(out.json_path)["metrics"]
    assert metrics["n_structures"] == 3
    f = metrics["forces"]
    assert {"r2", "rmse", "mae", "angle_deg"} <= set(f) and set(f["per_element_mae"]) == {"C", "H", "O"}
    assert {"p50", "p90", "p95", "max"} <= set(f["component_abs_error"]) and f["atom_error_norm"]["max"] > 0
    e = metrics["energy"]
    assert e["offset_corrected_mae_mev_per_atom"] <= e["mae_mev_per_atom"] + 1e-9
    assert "ethanol" in metrics["per_molecule"]
    assert metrics["preset_targets"]["force_r2"]["passed"] is False  # ultra-tiny targets, random weights
    assert "Training targets of the preset" in out.summary
    arrays = np.load(tmp_path / "acc" / "accuracy_samples.npz")
    assert arrays["teacher_forces_ev_per_angstrom"].shape == (27, 3)


def test_accuracy_from_a_dataset_file(student, tmp_path):
    """Labels from an HDF5 dataset: the student is compared with the stored forces, no teacher runs."""
    from openmm_distill.data.records import LabelledStructure
    from openmm_distill.data.store import write_structures

    ethanol = resolve_system("ethanol")
    rng = np.random.default_rng(3)
    structures = [LabelledStructure(key=f"ethanol/{i}", molecule="ethanol", atomic_numbers=ethanol.atomic_numbers,
                                    positions=ethanol.positions_angstrom + rng.normal(0, 0.02, (9, 3)),
                                    energy=-100.0 - i, forces=rng.normal(size=(9, 3)), smiles="CCO")
                  for i in range(4)]
    path = tmp_path / "tiny.h5"
    write_structures(str(path), structures, metadata={"teacher": {"name": "fake", "version": "0"}})
    out = run_accuracy_protocol(student, None, AccuracySettings.quick(max_structures=3), tmp_path / "acc",
                                dataset=path, show_progress=False)
    data = _load(out.json_path)
    assert data["metrics"]["n_structures"] == 3 and data["teacher"]["name"] == "fake"


def test_throughput_protocol_writes_files(student, tmp_path):
    settings = ThroughputSettings(min_time_s=0.2, warmup_steps=2, teachers=("gfn2-xtb",), teacher_steps=1)
    out = run_throughput_protocol([student], "ethanol,alanine_dipeptide", settings, tmp_path / "tp",
                                  show_progress=False)
    for name in ("throughput.json", "summary.md", "throughput.png"):
        assert (tmp_path / "tp" / name).is_file(), name
    data = _load(out.json_path)
    kinds = {(r["system"], r["kind"]) for r in data["rows"]}
    assert ("ethanol", "student") in kinds and ("ethanol", "teacher") in kinds
    assert ("alanine_dipeptide", "classical") in kinds  # amber14 has templates for it
    assert ("ethanol", "classical") not in kinds  # and none for ethanol
    for r in data["rows"]:
        assert r["ms_per_step"] > 0 and r["ns_per_day"] == pytest.approx(86400e3 / r["ms_per_step"] * 0.5e-6)
    assert any(u["reference"].startswith("teacher gfn2-xtb") for u in data["speedups"])
    assert "Speedup" in out.summary


def test_report_writes_verdicts_and_updates_the_model_card(student, tmp_path, monkeypatch):
    card = Path(student).with_suffix(".md")
    card.write_text("# Model card: ultra_tiny\n\nTrained on nothing.\n\n## Validation\n\nstale\n")

    def report(**kw):
        return run_report(student, "ethanol", output_dir=tmp_path / "report", show_progress=False,
                          nve_settings=NVESettings(equilibration_ps=0.01, length_ps=0.02),
                          stability_settings=StabilitySettings(length_ps=0.02, watchdog_interval_steps=10),
                          accuracy_settings=AccuracySettings(n_conformers=1, n_displacements=1),
                          throughput_settings=ThroughputSettings(min_time_s=0.1, warmup_steps=1, teachers=()), **kw)

    report()
    folder = tmp_path / "report"
    assert (folder / "report.json").is_file() and (folder / "summary.md").is_file()
    for sub in ("nve", "stability", "accuracy", "throughput"):
        assert (folder / sub / f"{sub}.json").is_file(), sub
    data = _load(folder / "report.json")
    assert data["verdicts"]["ethanol"]["verdict"] == "not recommended"  # random weights
    assert data["model_card"] == str(card)
    summary = (folder / "summary.md").read_text()
    assert "**not recommended**" in summary and "force R² ≥ 0.99" in summary  # thresholds stated
    text = card.read_text()
    assert "Trained on nothing." in text and "stale" not in text and text.count("## Validation") == 1
    assert "not recommended" in text
    # Run again: the MD of the first report is reused, unless asked not to.
    import openmm_distill.protocols.nve as nve
    import openmm_distill.protocols.stability as stability

    ran_nve, ran_stability = _counting(monkeypatch, nve, "run_nve"), _counting(monkeypatch, stability, "run_stability")
    report()
    assert ran_nve == [] and ran_stability == []
    report(resume=False)
    assert len(ran_nve) == 1 and len(ran_stability) == 1


# -- CLI and scripts -------------------------------------------------------------------------------------

def test_cli_protocol_help(capsys):
    from openmm_distill.cli import main

    for name in ("nve", "throughput", "accuracy", "stability", "report"):
        with pytest.raises(SystemExit) as exc:
            main(["protocol", name, "--help"])
        assert exc.value.code == 0
    assert "--full" in capsys.readouterr().out


def test_cli_runs_nve(student, tmp_path, capsys):
    from openmm_distill.cli import main

    code = main(["protocol", "nve", "--student", str(student), "--systems", "ethanol", "--equilibration-ps", "0.01",
                 "--length-ps", "0.02", "--max-drift", "5", "-o", str(tmp_path / "cli"), "--quiet"])
    assert code == 0
    data = _load(tmp_path / "cli" / "nve.json")
    assert data["settings"]["max_abs_drift_mev_per_atom_per_ps"] == 5.0 and data["settings"]["length_ps"] == 0.02
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["nve", "throughput", "accuracy", "stability", "report"])
def test_scripts_have_help(script):
    spec = importlib.util.spec_from_file_location(f"protocol_script_{script}", REPO / "protocols" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0


def test_failure_check_compares_the_last_frames_of_a_failed_run_with_the_teacher(student, tmp_path, capsys):
    """A run stopped by a tight watchdog, looked at with GFN2-xTB: the bond it names is the watchdog's, the teacher
    energies are the teacher's on the trajectory's last frames, the verdict follows the stated rule; the CLI needs
    --student while only a sweep's records exist, and says when nothing failed."""
    import mdtraj

    from openmm_distill.cli import main
    from openmm_distill.protocols.failures import MIN_GAP_EV, SPREADS, STUDENT_ERROR, TEACHER_AGREES
    from openmm_distill.teachers import get_teacher

    settings = StabilitySettings.quick(temperatures_k=(500.0,), length_ps=0.5, watchdog_interval_steps=2,
                                       frame_interval_fs=1.0, thresholds=WatchdogThresholds(
                                           max_bond_deviation_angstrom=0.15))
    run_stability_protocol(student, "ethanol", settings, tmp_path / "stab", show_progress=False)
    (run,) = _load(tmp_path / "stab" / "stability.json")["systems"][0]["runs"]
    assert not run["survived"], "the watchdog should have stopped this run"
    assert "openmm-distill protocol failures" in (tmp_path / "stab" / "summary.md").read_text()
    (tmp_path / "stab" / "stability.json").rename(tmp_path / "stab" / "finished.json")  # as while a sweep runs
    assert main(["protocol", "failures", str(tmp_path / "stab"), "--quiet"]) == 2
    assert "name it with --student" in capsys.readouterr().err

    code = main(["protocol", "failures", str(tmp_path / "stab"), "--student", str(student), "--teacher", "gfn2-xtb",
                 "--window", "3", "--baseline", "4", "--quiet", "-o", str(tmp_path / "why")])
    assert code == 0
    data = _load(tmp_path / "why" / "failures.json")
    (check,) = data["failed_runs"]
    a, b, _ = check["bond"]
    assert f"bond {a}-{b} " in run["failure_reasons"][0]  # the bond the watchdog stopped the run for
    traj = mdtraj.load_dcd(run["trajectory"], top=run["topology_pdb"])
    z = np.array([atom.element.atomic_number for atom in traj.topology.atoms])
    teacher = get_teacher("gfn2-xtb")
    last = [teacher.compute(z, x * 10.0).energy for x in traj.xyz[-3:].astype(np.float64)]
    np.testing.assert_allclose(check["teacher_energy_ev"], np.array(last) - last[0], atol=1e-6)
    assert check["time_ps"][-1] == pytest.approx(run["time_to_failure_ps"])
    assert check["baseline_frames"] == min(4, traj.n_frames - 3)
    gap = -max(SPREADS * check["error_spread_ev"], MIN_GAP_EV)
    assert check["verdict"] == (STUDENT_ERROR if check["delta_ev"] < gap else TEACHER_AGREES)
    assert (tmp_path / "why" / "summary.md").is_file() and list((tmp_path / "why").glob("failure_*.png"))

    survived = replace(settings, length_ps=0.004, thresholds=WatchdogThresholds(1e6, 10.0, 100.0))
    run_stability_protocol(student, "ethanol", survived, tmp_path / "ok", show_progress=False)
    assert main(["protocol", "failures", str(tmp_path / "ok"), "--teacher", "gfn2-xtb", "--quiet"]) == 0
    assert "No run failed" in capsys.readouterr().out


def test_teacher_script_takes_the_students_stability_flags(tmp_path, capsys):
    """protocols/teacher_stability.py runs a teacher with the settings a student's sweep used (time step, seed,
    watchdog), so the two runs compare; GFN2-xTB on ethanol, 20 steps of 1 fs."""
    spec = importlib.util.spec_from_file_location("protocol_script_teacher_stability",
                                                  REPO / "protocols" / "teacher_stability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--teacher", "gfn2-xtb", "--systems", "ethanol", "--temperatures", "500", "--length-ps",
                        "0.02", "--timestep-fs", "1.0", "--seed", "3", "--max-bond-change", "0.7",
                        "--output", str(tmp_path)]) == 0
    data = _load(tmp_path / "ethanol" / "stability.json")  # one system: its own folder, nothing to merge
    assert data["settings"]["timestep_fs"] == 1.0 and data["settings"]["seed"] == 3
    assert data["settings"]["temperatures_k"] == [500.0]
    assert data["settings"]["thresholds"]["max_bond_deviation_angstrom"] == 0.7
    (run,) = data["systems"][0]["runs"]
    assert run["survived"] and run["simulated_ps"] == pytest.approx(0.02)
    assert "teacher gfn2-xtb" in data["model"]["forces"][0]


@pytest.mark.slow
def test_throughput_with_orb_v2_architecture(student, tmp_path):
    """Orb-v2 with random weights goes through the real teacher adapter (writes a ~100 MB checkpoint to /tmp)."""
    settings = ThroughputSettings(min_time_s=0.2, teachers=("orb-v2",), teacher_steps=1)
    out = run_throughput_protocol([student], "ethanol", settings, tmp_path / "tp", show_progress=False)
    rows = [r for r in out.results["rows"] if r["kind"] == "teacher"]
    assert rows and rows[0]["ms_per_step"] > 0 and "random weights" in rows[0]["engine"]


# -- runs in parts (shards) and their merge --------------------------------------------------------------

def test_cli_shards_then_merges_nve_into_one_table(student, tmp_path, capsys):
    """Two shards of three systems, merged, give the same records as one run over all three."""
    from openmm_distill.cli import main

    common_args = ["--student", str(student), "--systems", "ethanol,formamide,paracetamol", "--equilibration-ps",
                   "0.005", "--length-ps", "0.01", "--no-progress"]
    for k in (0, 1):
        assert main(["protocol", "nve", *common_args, "--shard", f"{k}/2", "-o", str(tmp_path / f"part{k}")]) == 0
    assert [r["system"]["name"] for r in _load(tmp_path / "part0" / "nve.json")["systems"]] == ["ethanol", "paracetamol"]
    assert main(["protocol", "nve", *common_args, "-o", str(tmp_path / "whole")]) == 0
    assert main(["protocol", "merge", str(tmp_path / "part0"), str(tmp_path / "part1"),
                 "-o", str(tmp_path / "merged")]) == 0
    merged, whole = _load(tmp_path / "merged" / "nve.json"), _load(tmp_path / "whole" / "nve.json")
    by_name = {r["system"]["name"]: r for r in whole["systems"]}
    assert sorted(r["system"]["name"] for r in merged["systems"]) == sorted(by_name)
    for record in merged["systems"]:
        # Same seed, same system, same settings: the same trajectory whichever part ran it.
        assert record["analysis"]["drift_mev_per_atom_per_ps"] == pytest.approx(
            by_name[record["system"]["name"]]["analysis"]["drift_mev_per_atom_per_ps"], rel=1e-6)
    assert merged["all_passed"] == whole["all_passed"] and merged["merged_from"] == [str(tmp_path / "part0"),
                                                                                      str(tmp_path / "part1")]
    summary = (tmp_path / "merged" / "summary.md").read_text()
    assert "| ethanol | 9 |" in summary and "| formamide | 6 |" in summary and "Merged from 2 runs (3 systems)" in summary
    # One point per system against the threshold; a part of one system has none.
    assert (tmp_path / "merged" / "nve_overview.png").is_file() and (tmp_path / "whole" / "nve_overview.png").is_file()
    assert not (tmp_path / "part1" / "nve_overview.png").exists()


def test_merge_refuses_parts_that_do_not_belong_together(student, tmp_path):
    from openmm_distill.errors import ConfigError
    from openmm_distill.protocols.merge import merge_outputs

    fast = NVESettings(equilibration_ps=0.005, length_ps=0.01)
    run_nve_protocol(student, "ethanol", fast, tmp_path / "a", show_progress=False)
    run_nve_protocol(student, "water:1", replace(fast, timestep_fs=0.25), tmp_path / "b", show_progress=False)
    run_nve_protocol(student, "ethanol", fast, tmp_path / "c", show_progress=False)
    with pytest.raises(ConfigError, match="different settings: timestep_fs"):
        merge_outputs([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    with pytest.raises(ConfigError, match="more than one part: ethanol"):
        merge_outputs([tmp_path / "a", tmp_path / "c"], tmp_path / "m")
    with pytest.raises(ConfigError, match="at least two"):
        merge_outputs([tmp_path / "a"], tmp_path / "m")
    with pytest.raises(ConfigError, match="is one of the parts"):
        merge_outputs([tmp_path / "a", tmp_path / "b"], tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="found none"):
        merge_outputs([tmp_path / "a", tmp_path / "empty"], tmp_path / "m")
    (tmp_path / "a" / "nve.json").rename(tmp_path / "a" / "nve.json.away")  # as if killed before the end
    with pytest.raises(ConfigError, match="did not finish \\(1 finished system kept in .*run its command again"):
        merge_outputs([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    (tmp_path / "a" / "nve.json.away").rename(tmp_path / "a" / "nve.json")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "nve.json").write_text('{"protocol": "nve", "sys')  # a part killed while writing
    with pytest.raises(ConfigError, match="not readable JSON"):
        merge_outputs([tmp_path / "a", tmp_path / "cut"], tmp_path / "m")
    (tmp_path / "cut" / "nve.json").write_text('{"protocol": "nve"}')
    with pytest.raises(ConfigError, match="lacks model, settings, systems"):
        merge_outputs([tmp_path / "a", tmp_path / "cut"], tmp_path / "m")


def test_merge_joins_stability_parts(student, tmp_path):
    from openmm_distill.protocols.merge import merge_outputs

    settings = StabilitySettings(temperatures_k=(300.0,), length_ps=0.02, watchdog_interval_steps=10,
                                 frame_interval_fs=10.0)
    parts = [run_stability_protocol(student, system, settings, tmp_path / system, show_progress=False) for system in ("ethanol", "formamide")]
    out = merge_outputs([p.output_dir for p in parts], tmp_path / "merged")
    assert [r["system"]["name"] for r in out.results["systems"]] == ["ethanol", "formamide"]
    assert out.results["all_survived"] == all(p.results["all_survived"] for p in parts)
    assert out.results["settings"]["thresholds"]["max_bond_deviation_angstrom"] == 0.5
    assert "| ethanol | 9 | 300 |" in out.summary and "| formamide | 6 | 300 |" in out.summary
    assert _load(tmp_path / "merged" / "stability.json")["merged_from"] == [str(p.output_dir) for p in parts]
    assert tmp_path / "merged" / "stability_overview.png" in out.files


# -- a killed sweep resumes ------------------------------------------------------------------------------

def _counting(monkeypatch, module, name, crash_on=None):
    """Replace ``module.name`` (a per-system function) by a wrapper that records the systems it ran."""
    ran = []
    real = getattr(module, name)

    def wrapper(model, spec, **kwargs):
        if spec == crash_on:
            raise KeyboardInterrupt(f"killed while running {spec}")
        ran.append(spec)
        return real(model, spec, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return ran


def test_a_killed_stability_sweep_reruns_only_the_unfinished_systems(student, tmp_path, monkeypatch):
    import openmm_distill.protocols.stability as stability

    settings = StabilitySettings(temperatures_k=(300.0,), length_ps=0.02, watchdog_interval_steps=10,
                                 frame_interval_fs=10.0)
    folder = tmp_path / "stab"
    with monkeypatch.context() as patch:
        _counting(patch, stability, "run_stability", crash_on="formamide")
        with pytest.raises(KeyboardInterrupt):
            run_stability_protocol(student, ["ethanol", "formamide"], settings, folder, show_progress=False)
    assert not (folder / "stability.json").exists()
    kept = _load(folder / "systems" / "ethanol.json")["record"]
    assert kept["system"]["name"] == "ethanol"

    ran = _counting(monkeypatch, stability, "run_stability")
    out = run_stability_protocol(student, ["ethanol", "formamide"], settings, folder, show_progress=False)
    assert ran == ["formamide"]
    systems = _load(out.json_path)["systems"]
    assert [r["system"]["name"] for r in systems] == ["ethanol", "formamide"] and systems[0] == kept
    assert folder / "stability_ethanol_300K.dcd" in out.files and folder / "stability_formamide.png" in out.files
    assert "| ethanol | 9 | 300 |" in out.summary and "| formamide | 6 | 300 |" in out.summary

    run_stability_protocol(student, ["ethanol", "formamide"], replace(settings, length_ps=0.03), folder,
                           show_progress=False)
    assert ran == ["formamide", "ethanol", "formamide"]  # other settings: measured again


def test_cli_nve_resumes_and_no_resume_measures_again(student, tmp_path, capsys, monkeypatch):
    import openmm_distill.protocols.nve as nve
    from openmm_distill.cli import main

    ran = _counting(monkeypatch, nve, "run_nve")
    args = ["protocol", "nve", "--student", str(student), "--systems", "ethanol,water:1", "--equilibration-ps",
            "0.005", "--length-ps", "0.01", "--threads", "1", "--quiet", "-o", str(tmp_path / "nve")]
    assert main(args) == 0
    (tmp_path / "nve" / "systems" / "water_1.json").write_text('{"fingerprint": "')  # cut short by a kill
    capsys.readouterr()
    assert main(args) == 0
    assert ran == ["ethanol", "water:1", "water:1"]
    assert "resuming, 1 of 2 systems already done" in capsys.readouterr().err
    assert main(args + ["--no-resume"]) == 0
    assert ran == ["ethanol", "water:1", "water:1", "ethanol", "water:1"]
    assert [r["system"]["n_atoms"] for r in _load(tmp_path / "nve" / "nve.json")["systems"]] == [9, 3]


def test_a_changed_structure_is_measured_again(student, tmp_path, monkeypatch):
    import openmm_distill.protocols.nve as nve

    ran = _counting(monkeypatch, nve, "run_nve")
    settings = NVESettings(equilibration_ps=0.005, length_ps=0.01)
    molsys = resolve_system("ethanol")
    run_nve_protocol(student, [molsys], settings, tmp_path, show_progress=False)
    run_nve_protocol(student, [molsys], settings, tmp_path, show_progress=False)
    assert len(ran) == 1
    moved = replace(molsys, positions_nm=molsys.positions_nm + 0.001)
    run_nve_protocol(student, [moved], settings, tmp_path, show_progress=False)
    assert len(ran) == 2 and ran[-1] is moved
    pdb = tmp_path / "mine.pdb"
    for positions in (molsys.positions, moved.positions):  # the same file name, another geometry
        with open(pdb, "w") as handle:
            app.PDBFile.writeFile(molsys.topology, positions, handle)
        run_nve_protocol(student, [str(pdb)], settings, tmp_path, show_progress=False)
    assert len(ran) == 4
    # Two structures of one name in one sweep are two systems.
    both = run_nve_protocol(student, [molsys, moved], settings, tmp_path / "both", show_progress=False)
    assert len(ran) == 6 and [r["system"]["name"] for r in both.results["systems"]] == ["ethanol", "ethanol"]


def test_largest_bond_change_of_a_system_takes_every_run_and_both_sources():
    from openmm_distill.protocols.stability_summary import largest_bond_change

    record = {"runs": [{"analysis": {"bond_length_max_deviation_angstrom": 0.21},
                        "series": {"max_bond_deviation_angstrom": [0.1, 0.19]}},
                       {"analysis": {}, "series": {"max_bond_deviation_angstrom": [0.05, 0.33, None]}}]}
    assert largest_bond_change(record) == 0.33
    assert largest_bond_change({"runs": [], "status": "skipped"}) is None


def test_sweep_plot_leaves_out_systems_without_a_value(tmp_path):
    from openmm_distill.protocols.plots import plot_sweep

    path = plot_sweep(tmp_path / "o.png", ["a", "b", "c"], [9, 21, 5], [0.01, None, float("nan")],
                      [True, False, False], 0.1, ylabel="|drift|", title="NVE", log=True)
    assert path.is_file() and path.stat().st_size > 1000
