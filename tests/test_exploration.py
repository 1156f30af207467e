"""Exploration (one active-learning round): frame selection, settings checks, student MD in a real
OpenMM Context, GFN2-xTB labelling into a real HDF5 file, merge, and fine-tuning from a checkpoint.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.active_learning.exploration import (
    ExplorationSettings,
    explore,
    has_isolated_atom,
    molecule_run_seed,
    select_frames,
)
from openmm_distill.errors import ConfigError
from openmm_distill.md.watchdog import WatchdogThresholds
from tests.conftest import make_student


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_student(tmp_path_factory.mktemp("explore_student") / "ultra_tiny.pt", dtype="float32")


def test_select_frames_schedule_and_failure_approach():
    # One frame per watchdog check; frame 0 is the start (already in the data).
    assert select_frames(31, 10, False, 3) == [10, 20, 30]
    assert select_frames(5, 10, False, 3) == []
    # A failure at frame 25: the scheduled ones, then the failing frame and the 3 before it.
    assert select_frames(26, 10, True, 3) == [10, 20, 22, 23, 24, 25]
    # Never the starting frame, even when the run fails at once.
    assert select_frames(2, 10, True, 5) == [1]
    assert select_frames(26, 10, True, 0) == [10, 20, 25]


def test_isolated_atoms_are_detected():
    molecule = np.array([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [1.5, 1.0, 0.0]])
    assert not has_isolated_atom(molecule, 3.0)
    flung = molecule.copy()
    flung[2] = [5000.0, 0.0, 0.0]  # a hydrogen thrown off by a failed run
    assert has_isolated_atom(flung, 3.0)
    assert has_isolated_atom(np.array([[0.0, 0, 0], [np.nan, 0, 0]]), 3.0)
    assert not has_isolated_atom(np.zeros((1, 3)), 3.0)


@pytest.mark.parametrize("change, match", [
    (dict(temperatures_k=()), "temperatures_k"),
    (dict(temperatures_k=(-5.0,)), "temperatures_k"),
    (dict(length_ps=0.0), "length_ps"),
    (dict(timestep_fs=10.0), "timestep_fs"),
    (dict(watchdog_interval_fs=0.5), "shorter than the time step"),
    (dict(frame_interval_fs=5.0), "shorter than the watchdog"),
    (dict(frames_before_failure=-1), "frames_before_failure"),
    (dict(max_isolation_angstrom=0.0), "max_isolation_angstrom"),
])
def test_settings_name_the_bad_value(change, match):
    with pytest.raises(ConfigError, match=match):
        ExplorationSettings(**change)


def test_run_seeds_differ_per_molecule_and_stay_in_openmm_range():
    seeds = {molecule_run_seed(0, name) for name in ("ethanol", "methanol", "water", "glycine")}
    assert len(seeds) == 4 and all(0 < s < 2**31 for s in seeds)
    assert molecule_run_seed(0, "ethanol") == molecule_run_seed(0, "ethanol") != molecule_run_seed(1, "ethanol")


def test_explore_keeps_scheduled_frames_of_a_surviving_run():
    # The shipped tiny student: trained, so 100 fs of ethanol at 600 K is uneventful.
    settings = ExplorationSettings(temperatures_k=(600.0,), length_ps=0.1, frame_interval_fs=20.0)
    result = explore("tiny", [("ethanol", "CCO")], settings, show_progress=False)
    assert [r.survived for r in result.runs] == [True], result.summary()
    assert len(result.geometries) == 5  # 100 fs / 20 fs
    keys = [g.key for g in result.geometries]
    assert keys[0] == "ethanol/explore/tiny/600K/2" and len(set(keys)) == 5
    first = result.geometries[0]
    assert first.molecule == "ethanol" and first.smiles == "CCO" and list(first.atomic_numbers).count(6) == 2
    assert first.provenance["method"] == "student_md" and first.provenance["run_failed"] is False
    assert first.provenance["time_ps"] == pytest.approx(0.02)
    # Frames are MD frames: they differ from each other (Angstrom, a few hundredths or more).
    moved = np.abs(result.geometries[-1].positions - first.positions).max()
    assert 0.01 < moved < 3.0


def test_explore_keeps_the_approach_to_a_failure(student):
    # A watchdog this strict fails within the first checks: the failing frame and the ones before it are kept.
    settings = ExplorationSettings(temperatures_k=(800.0,), length_ps=0.5, frame_interval_fs=200.0,
                                   frames_before_failure=2,
                                   thresholds=WatchdogThresholds(max_bond_deviation_angstrom=0.02))
    result = explore(student, [("methanol", "CO")], settings, show_progress=False)
    (run,) = result.runs
    assert not run.survived and run.time_ps < 0.5
    assert any(word in run.failure_reasons[0] for word in ("stretched", "compressed"))
    failed = [g for g in result.geometries if g.provenance["run_failed"]]
    assert len(failed) == len(result.geometries) == run.n_frames_kept
    assert 1 <= len(failed) <= 3
    assert failed[-1].provenance["time_ps"] == pytest.approx(run.time_ps)
    assert "bond" in failed[-1].provenance["failure"]
    assert "1 failed the watchdog" in result.summary()


def test_explore_rejects_duplicate_names_and_nothing(student):
    with pytest.raises(ConfigError, match="repeated"):
        explore(student, [("a", "CO"), ("a", "CCO")], show_progress=False)
    with pytest.raises(ConfigError, match="nothing to explore"):
        explore(student, [], show_progress=False)


def test_explore_cli_labels_with_the_teacher_and_merges(student, tmp_path, capsys):
    from openmm_distill.cli import main
    from openmm_distill.data.merge import merge_datasets
    from openmm_distill.data.store import open_dataset
    from tests.conftest import label_small_dataset

    out = tmp_path / "explore.h5"
    rc = main(["explore", "--student", str(student), "--smiles", "methanol=CO", "--temperatures", "500",
               "--length-ps", "0.2", "--frame-interval-fs", "50", "-o", str(out), "--quiet"])
    assert rc == 0
    runs = json.loads((tmp_path / "explore.runs.json").read_text())
    assert runs["runs"][0]["molecule"] == "methanol"
    n_kept = runs["runs"][0]["n_frames_kept"]
    with open_dataset(out) as ds:
        assert len(ds) == n_kept >= 1
        s = ds[0]
        assert s.molecule == "methanol" and np.isfinite(s.energy) and np.abs(s.forces).max() > 0
        assert ds.metadata["teacher"]["name"] == "gfn2-xtb"
    # It merges with ordinary labelled data of the same molecule (keys do not collide).
    base = label_small_dataset(tmp_path / "base.h5", [("methanol", "CO")], 1, 1)
    report = merge_datasets([base, str(out)], str(tmp_path / "merged.h5"))
    assert report.n_structures == n_kept + 2
    assert main(["explore", "--student", str(student), "--smiles", "methanol=CO", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_frames_round_trip_exactly(tmp_path):
    from openmm_distill.active_learning.exploration import read_frames, write_frames
    from openmm_distill.data.records import Geometry

    rng = np.random.default_rng(0)
    geometries = [Geometry(key=f"m/explore/s/800K/{k}", molecule="m", smiles="CO",
                           atomic_numbers=np.array([6, 8, 1, 1, 1, 1]), positions=rng.normal(size=(6, 3)),
                           provenance={"temperature_K": 800.0, "run_failed": k == 1}) for k in range(2)]
    write_frames(str(tmp_path / "f.json.gz"), {"student": "s"}, geometries)
    header, back = read_frames(str(tmp_path / "f.json.gz"))
    assert header == {"student": "s"} and [g.key for g in back] == [g.key for g in geometries]
    for a, b in zip(geometries, back):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.atomic_numbers, b.atomic_numbers)
        assert b.box is None and a.provenance == b.provenance
    (tmp_path / "bad.json.gz").write_text("not gzip")
    with pytest.raises(ConfigError, match="not a readable explored-frames file"):
        read_frames(str(tmp_path / "bad.json.gz"))


def test_explore_cli_resumes_a_killed_labelling_without_new_md(student, tmp_path, monkeypatch, capsys):
    import openmm_distill.active_learning.exploration as exploration
    import openmm_distill.data.labelling as labelling
    from openmm_distill.cli import main
    from openmm_distill.data.store import open_dataset

    out = tmp_path / "explore.h5"
    frames = tmp_path / "explore.explored"
    args = ["explore", "--student", str(student), "--smiles", "methanol=CO", "--temperatures", "500",
            "--length-ps", "0.2", "--frame-interval-fs", "50", "-o", str(out), "--quiet"]
    real_label = labelling.label

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(labelling, "label", killed)
    assert main(args) == 2  # Ctrl-C: one line on stderr, not a traceback
    assert "interrupted" in capsys.readouterr().err
    assert frames.exists() and not out.exists()
    n_kept = json.loads((tmp_path / "explore.runs.json").read_text())["runs"][0]["n_frames_kept"]

    # The rerun labels the cached frames; the MD does not run again.
    def no_md(*a, **k):
        raise AssertionError("the MD ran again")

    monkeypatch.setattr(labelling, "label", real_label)
    monkeypatch.setattr(exploration, "explore", no_md)
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().err
    with open_dataset(out) as ds:
        assert len(ds) == n_kept >= 1
    assert not frames.exists()  # labelled: the cache is gone

    # A cache made with another student is not reused: the MD runs (here: the stand-in that refuses to).
    out.unlink()
    frames.mkdir()
    (frames / "header.json").write_text(json.dumps({"student": "another.pt"}))
    with pytest.raises(AssertionError, match="the MD ran again"):
        main(args)
    assert "exploring again" in capsys.readouterr().err


def test_explore_cli_resumes_a_run_killed_during_the_md_from_the_molecules_done(student, tmp_path, monkeypatch,
                                                                               capsys):
    import openmm_distill.active_learning.exploration as exploration
    from openmm_distill.cli import main
    from openmm_distill.data.store import open_dataset

    out = tmp_path / "explore.h5"
    args = ["explore", "--student", str(student), "--smiles", "methanol=CO", "--smiles", "ethanol=CCO",
            "--temperatures", "500", "--length-ps", "0.1", "--frame-interval-fs", "50", "-o", str(out), "--quiet"]
    real = exploration.explore_molecule
    explored = []

    def killed_on_ethanol(model, spec, **kwargs):
        if spec[0] == "ethanol":
            raise KeyboardInterrupt
        explored.append(spec[0])
        return real(model, spec, **kwargs)

    monkeypatch.setattr(exploration, "explore_molecule", killed_on_ethanol)
    assert main(args) == 2 and explored == ["methanol"]
    assert not out.exists() and len(list((tmp_path / "explore.explored").glob("*.json.gz"))) == 1

    def counted(model, spec, **kwargs):
        explored.append(spec[0])
        return real(model, spec, **kwargs)

    monkeypatch.setattr(exploration, "explore_molecule", counted)
    capsys.readouterr()
    assert main(args) == 0
    assert explored == ["methanol", "ethanol"]  # methanol's MD did not run again
    assert "reusing 1 of 2 molecules" in capsys.readouterr().err
    runs = json.loads((tmp_path / "explore.runs.json").read_text())["runs"]
    assert [r["molecule"] for r in runs] == ["methanol", "ethanol"]
    with open_dataset(out) as ds:
        assert {ds[i].molecule for i in range(len(ds))} == {"methanol", "ethanol"}
        assert len(ds) == sum(r["n_frames_kept"] for r in runs)
    assert not (tmp_path / "explore.explored").exists()
