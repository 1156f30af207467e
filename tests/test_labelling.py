"""The labelling job: resume after SIGKILL, recorded failures, shards + merge,
worker processes, relabelling with another teacher, and the `label` / `dataset`
command lines. Real GFN2-xTB, real SevenNet-0, real RDKit, real HDF5."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.data import LabelledDataset, label, merge_datasets, parse_shard, shard_items
from openmm_distill.data.sampling import geometries_from_arrays
from openmm_distill.errors import ConfigError

# Small molecules and a small sampling config keep each molecule ~0.1 s with GFN2-xTB.
MOLECULES = [
    ("water", "O"),
    ("methane", "C"),
    ("ammonia", "N"),
    ("formaldehyde", "C=O"),
    ("methanol", "CO"),
    ("hydrogen_cyanide", "C#N"),
]
SAMPLING = dict(
    n_conformers=1,
    random_samples=1,
    normal_mode_samples=1,
    md_temperatures_K=[500.0],
    md_snapshots=2,
    md_interval_steps=3,
    md_equilibration_steps=1,
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def by_key(path):
    with LabelledDataset(str(path)) as ds:
        return {s.key: s for s in ds}, ds.failures, ds.completed_items, ds.metadata


def assert_same_contents(a, b, atol=0.0):
    assert sorted(a) == sorted(b)
    for key in a:
        x, y = a[key], b[key]
        assert x.molecule == y.molecule and x.provenance == y.provenance and x.smiles == y.smiles
        np.testing.assert_array_equal(x.atomic_numbers, y.atomic_numbers)
        np.testing.assert_allclose(x.positions, y.positions, rtol=0, atol=atol)
        np.testing.assert_allclose(x.forces, y.forces, rtol=0, atol=atol)
        assert x.energy == pytest.approx(y.energy, abs=atol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted single-process run over all molecules."""
    path = tmp_path_factory.mktemp("reference") / "reference.h5"
    report = label(MOLECULES, str(path), sampling=SAMPLING, progress=False)
    assert report.published and report.n_failed == 0
    return path


def test_uninterrupted_run(reference):
    structures, failures, completed, meta = by_key(reference)
    assert len(structures) == 6 * 5 and failures == []
    assert completed == [name for name, _ in MOLECULES]
    assert meta["teacher"]["name"] == "gfn2-xtb" and meta["sampling_config"]["md_snapshots"] == 2
    assert {s.provenance["method"] for s in structures.values()} == {"conformer", "random", "normal_mode", "md"}


def run_killed_after_two_molecules(job: str) -> subprocess.CompletedProcess:
    """Run ``openmm_distill.data.<job>`` (a call with ``callback=on_commit``) in a child that SIGKILLs
    itself right after the second molecule is committed: no cleanup, no close, the file is left open."""
    script = textwrap.dedent(
        """
        import os, signal
        import openmm_distill
        from openmm_distill.data import label, relabel
        def on_commit(progress):
            print("committed", progress.items_done, progress.structures_total, flush=True)
            if progress.items_done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        """
    ) + job + '\nprint("finished", flush=True)\n'
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def test_killed_job_resumes_without_duplicates_or_losses(tmp_path, reference):
    out = tmp_path / "killed.h5"
    proc = run_killed_after_two_molecules(
        f"label({MOLECULES!r}, {str(out)!r}, sampling={SAMPLING!r}, progress=False, callback=on_commit)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "committed 2 10" in proc.stdout and "finished" not in proc.stdout
    assert not out.exists() and (tmp_path / "killed.h5.partial").exists()
    with LabelledDataset(str(tmp_path / "killed.h5.partial")) as partial:
        assert len(partial) == 10 and partial.completed_items == ["water", "methane"]

    report = label(MOLECULES, str(out), sampling=SAMPLING, progress=False)
    assert report.published and report.n_items_skipped == 2
    assert report.n_structures_written == 20 and report.n_structures_total == 30
    assert not (tmp_path / "killed.h5.partial").exists()
    resumed, failures, completed, _ = by_key(out)
    with LabelledDataset(str(out)) as ds:
        assert len(ds.keys) == len(set(ds.keys)) == 30  # no duplicates
    assert completed == [name for name, _ in MOLECULES] and failures == []
    # Same structures and labels as the uninterrupted run (the killed part ran
    # in another process, so allow for last-bit differences).
    reference_structures, *_ = by_key(reference)
    assert_same_contents(resumed, reference_structures, atol=1e-6)


def test_job_interrupted_by_an_exception_resumes(tmp_path, reference):
    out = tmp_path / "interrupted.h5"

    def stop_after_three(progress):
        if progress.items_done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label(MOLECULES, str(out), sampling=SAMPLING, progress=False, callback=stop_after_three)
    with LabelledDataset(str(tmp_path / "interrupted.h5.partial")) as partial:
        assert partial.completed_items == ["water", "methane", "ammonia"] and len(partial) == 15
    report = label(MOLECULES, str(out), sampling=SAMPLING, progress=False)
    assert report.n_items_skipped == 3 and report.n_structures_written == 15
    resumed, *_ = by_key(out)
    reference_structures, *_ = by_key(reference)
    assert_same_contents(resumed, reference_structures)


def test_resume_refuses_different_settings_and_existing_output(tmp_path, reference):
    out = tmp_path / "r.h5"
    partial = tmp_path / "r.h5.partial"
    label(MOLECULES[:1], str(partial), sampling=SAMPLING, progress=False)  # a finished file where the partial goes
    with pytest.raises(ConfigError, match="sampling config"):
        label(MOLECULES, str(out), sampling={**SAMPLING, "seed": 5}, progress=False)
    with pytest.raises(ConfigError, match="teacher settings"):
        label(MOLECULES, str(out), sampling=SAMPLING, teacher_options={"accuracy": 0.5}, progress=False)
    report = label(MOLECULES[:2], str(out), sampling={**SAMPLING, "seed": 5}, resume=False, progress=False)
    assert report.n_items_skipped == 0 and report.n_structures_total == 10
    with pytest.raises(ConfigError, match="already exists"):
        label(MOLECULES[:2], str(out), sampling=SAMPLING, progress=False)


class _FlakyLJ:
    """Source of an ASE calculator module that fails on nitrogen-containing structures."""

    SOURCE = textwrap.dedent(
        """
        from ase.calculators.calculator import all_changes
        from ase.calculators.lj import LennardJones

        class NoNitrogenLJ(LennardJones):
            def calculate(self, atoms=None, properties=None, system_changes=all_changes):
                if atoms is not None and 7 in atoms.numbers:
                    raise RuntimeError("nitrogen is not supported by this toy calculator")
                super().calculate(atoms, properties, system_changes)
        """
    )


def test_failures_are_recorded_not_fatal(tmp_path, monkeypatch):
    (tmp_path / "flaky_calc.py").write_text(_FlakyLJ.SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    given = geometries_from_arrays("argon_dimer", [18, 18], [np.array([[0.0, 0.0, 0.0], [3.8, 0.0, 0.0]])])
    inputs = [("methane", "C"), ("ammonia", "N"), ("broken", "C1CC"), ("methylamine", "CN")] + given
    sampling = dict(n_conformers=1, random_samples=2, normal_mode_samples=0, md_snapshots=0)
    report = label(
        inputs, str(tmp_path / "f.h5"), sampling=sampling, teacher="ase",
        teacher_options={"calculator": "flaky_calc:NoNitrogenLJ", "sigma": 1.0, "epsilon": 0.01}, progress=False,
    )
    assert report.published
    failed = {f.key: f.reason for f in report.failures}
    expected = {f"{m}/c0/{t}" for m in ("ammonia", "methylamine") for t in ("conformer", "random/0", "random/1")}
    assert set(failed) == expected | {"broken"}
    assert report.n_failed == 7
    assert all("nitrogen is not supported" in failed[k] for k in expected)
    assert "could not parse SMILES" in failed["broken"]
    structures, failures, completed, meta = by_key(tmp_path / "f.h5")
    assert sorted(structures) == [
        "argon_dimer/given/0", "methane/c0/conformer", "methane/c0/random/0", "methane/c0/random/1"
    ]
    assert structures["argon_dimer/given/0"].provenance == {"method": "given", "source": "user", "sample": 0}
    assert {f.key for f in failures} == set(failed)
    assert set(completed) == {"methane", "ammonia", "broken", "methylamine", "argon_dimer"}
    assert meta["teacher"]["settings"]["calculator"] == "flaky_calc:NoNitrogenLJ"


def test_shard_partition():
    items = list(range(10))
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) is None
    parts = [shard_items(items, f"{i}/3") for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    for bad in ("3/3", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


def test_shards_merged_equal_a_single_run_with_workers(tmp_path, reference):
    shards = []
    for i in range(2):
        path = tmp_path / f"shard{i}.h5"
        report = label(MOLECULES, str(path), sampling=SAMPLING, shard=(i, 2), progress=False)
        assert report.n_items == 3
        shards.append(str(path))
    merged = tmp_path / "merged.h5"
    merge_report = merge_datasets(shards, str(merged))
    assert merge_report.n_structures == 30 and merge_report.n_molecules == 6
    merged_structures, failures, completed, meta = by_key(merged)
    reference_structures, *_ = by_key(reference)
    assert_same_contents(merged_structures, reference_structures)  # same process: bit-identical
    assert sorted(completed) == sorted(name for name, _ in MOLECULES)
    assert meta["meta_merged_from"] == ["shard0.h5", "shard1.h5"]
    with pytest.raises(ConfigError, match="both"):
        merge_datasets([shards[0], shards[0]], str(tmp_path / "dup.h5"))

    # Two worker processes, each single-threaded, give the same dataset.
    parallel = tmp_path / "parallel.h5"
    report = label(MOLECULES, str(parallel), sampling=SAMPLING, n_workers=2, progress=False)
    assert report.n_structures_total == 30
    with LabelledDataset(str(parallel)) as ds:
        assert ds.completed_items == [name for name, _ in MOLECULES]  # input order is kept
    parallel_structures, *_ = by_key(parallel)
    assert_same_contents(parallel_structures, reference_structures, atol=1e-6)


def test_merge_refuses_different_teachers(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    sampling = dict(n_conformers=1, random_samples=0, normal_mode_samples=0, md_snapshots=0)
    label([("methane", "C")], str(a), sampling=sampling, progress=False)
    label([("ethane", "CC")], str(b), sampling=sampling, teacher_options={"accuracy": 0.5}, progress=False)
    with pytest.raises(ConfigError, match="different teachers"):
        merge_datasets([str(a), str(b)], str(tmp_path / "ab.h5"))


def _cli(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_command_lines(tmp_path, capsys):
    from openmm_distill.cli import dataset as dataset_cli
    from openmm_distill.cli import label as label_cli

    smiles = tmp_path / "mols.csv"
    smiles.write_text("name,smiles\nmethane,C\nwater,O\nethane,CC\n")
    smi = tmp_path / "more.smi"
    smi.write_text("# comment\nC=O formaldehyde\nCO\n")
    from openmm_distill.systems.resolve import read_smiles_file

    assert read_smiles_file(str(smi)) == [("formaldehyde", "C=O"), ("more_2", "CO")]
    common = ["--conformers", "1", "--random-samples", "1", "--normal-mode-samples", "1", "--md-snapshots", "0", "--quiet"]
    for i in range(2):
        out = str(tmp_path / "cli.h5")
        assert _cli(label_cli, ["--input", str(smiles), "--smiles", "hcn=C#N", "-o", out, "--shard", f"{i}/2"] + common) == 0
    assert (tmp_path / "cli.shard0-of-2.h5").exists() and (tmp_path / "cli.shard1-of-2.h5").exists()
    merged = str(tmp_path / "cli.h5")
    assert _cli(dataset_cli, ["merge", str(tmp_path / "cli.shard0-of-2.h5"), str(tmp_path / "cli.shard1-of-2.h5"), "-o", merged]) == 0
    with LabelledDataset(merged) as ds:
        assert sorted(ds.molecule_names) == ["ethane", "hcn", "methane", "water"] and len(ds) == 12
    capsys.readouterr()
    png = str(tmp_path / "stats.png")
    assert _cli(dataset_cli, ["stats", merged, "--png", png]) == 0
    assert "structures: 12" in capsys.readouterr().out and os.path.getsize(png) > 1000
    assert _cli(dataset_cli, ["validate", merged, "--output", str(tmp_path / "clean.h5")]) == 0
    assert "excluded: 0" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _cli(label_cli, ["--smiles", "x=C", "-o", str(tmp_path / "y.h5"), "--teacher-option", "accuracy"] + common)
    with pytest.raises(ConfigError, match="no molecules"):
        _cli(label_cli, ["-o", str(tmp_path / "y.h5")] + common)


# -- relabelling: the geometries of a dataset labelled again by another teacher (real SevenNet) ----------
RELABEL_SOURCE_MOLECULES = MOLECULES[:4]  # water, methane, ammonia, formaldehyde: 5 structures each


@pytest.fixture(scope="module")
def relabel_source(reference, tmp_path_factory):
    """The GFN2-xTB reference dataset, cut to four molecules (keeps the SevenNet runs short)."""
    from openmm_distill.data import write_structures

    path = tmp_path_factory.mktemp("relabel") / "gfn2.h5"
    names = {name for name, _ in RELABEL_SOURCE_MOLECULES}
    with LabelledDataset(str(reference)) as ds:
        structures = [s for s in ds if s.molecule in names]
        metadata = {"teacher": ds.metadata["teacher"], "sampling_config": ds.metadata["sampling_config"]}
    write_structures(str(path), structures, metadata=metadata, completed_items=sorted(names))
    return path


@pytest.fixture(scope="module")
def relabelled(relabel_source):
    """An uninterrupted in-process relabelling with SevenNet-0."""
    pytest.importorskip("sevenn")
    from openmm_distill.data import relabel

    out = relabel_source.parent / "sevennet.h5"
    report = relabel(str(relabel_source), str(out), teacher="sevennet", progress=False)
    assert report.published and report.n_failed == 0 and report.n_structures_total == 20
    return out


def test_relabel_keeps_geometries_and_records_both_provenances(relabel_source, relabelled):
    from openmm_distill.checksums import file_sha256
    from openmm_distill.teachers import get_teacher

    source, _, source_completed, source_meta = by_key(relabel_source)
    new, failures, completed, meta = by_key(relabelled)
    assert sorted(new) == sorted(source) and failures == []
    assert completed == [name for name, _ in RELABEL_SOURCE_MOLECULES]
    for key, s in source.items():
        n = new[key]
        assert (n.molecule, n.smiles, n.charge) == (s.molecule, s.smiles, s.charge)
        np.testing.assert_array_equal(n.atomic_numbers, s.atomic_numbers)
        np.testing.assert_array_equal(n.positions, s.positions)
        # Geometry provenance is kept; "label": "md-step" described the old label and is dropped.
        assert n.provenance == {k: v for k, v in s.provenance.items() if k != "label"}
        assert abs(n.energy - s.energy) > 1.0  # a different teacher: not the GFN2-xTB labels copied over
    assert any(s.provenance.get("label") == "md-step" for s in source.values())
    assert meta["teacher"]["name"] == "sevennet" and meta["teacher"]["settings"]["model"] == "7net-0"
    assert meta["sampling_config"] == source_meta["sampling_config"]
    origin = meta["meta_relabelled_from"]
    assert origin["sha256"] == file_sha256(str(relabel_source)) and origin["file"] == "gfn2.h5"
    assert origin["teacher"]["name"] == "gfn2-xtb" and origin["n_structures"] == 20
    # The labels are the teacher's own, in eV and eV/Angstrom.
    key = "methane/c0/md/500K/1"
    direct = get_teacher("sevennet").compute(new[key].atomic_numbers, new[key].positions)
    assert new[key].energy == pytest.approx(direct.energy, abs=1e-6)
    np.testing.assert_allclose(new[key].forces, direct.forces, atol=1e-6)


# Two SevenNet loads in two processes: ~11 s on a shared 2-core machine.
def test_killed_relabelling_resumes_without_duplicates_or_losses(tmp_path, relabel_source, relabelled):
    out = tmp_path / "killed.h5"
    proc = run_killed_after_two_molecules(
        f"relabel({str(relabel_source)!r}, {str(out)!r}, teacher='sevennet', progress=False, callback=on_commit)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "committed 2 10" in proc.stdout and "finished" not in proc.stdout
    with LabelledDataset(str(tmp_path / "killed.h5.partial")) as partial:
        assert len(partial) == 10 and partial.completed_items == ["water", "methane"]

    from openmm_distill.data import relabel

    report = relabel(str(relabel_source), str(out), teacher="sevennet", progress=False)
    assert report.published and report.n_items_skipped == 2
    assert report.n_structures_written == 10 and report.n_structures_total == 20
    with LabelledDataset(str(out)) as ds:
        assert len(ds.keys) == len(set(ds.keys)) == 20
    resumed, failures, completed, meta = by_key(out)
    reference_structures, *_ = by_key(relabelled)
    # Another process and thread count ran the first half: float32 SevenNet agrees to round-off.
    assert_same_contents(resumed, reference_structures, atol=1e-4)
    assert meta["meta_relabelled_from"] == by_key(relabelled)[3]["meta_relabelled_from"]


def test_relabel_refuses_a_changed_source_and_bad_command_lines(tmp_path, relabel_source):
    from openmm_distill.cli import label as label_cli
    from openmm_distill.data import relabel
    from openmm_distill.errors import MissingFileError

    out = tmp_path / "r.h5"

    def stop_after_one(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        relabel(str(relabel_source), str(out), teacher="gfn2-xtb", progress=False, callback=stop_after_one)
    changed = tmp_path / "changed.h5"
    label(MOLECULES[:1], str(changed), sampling=SAMPLING, progress=False)
    with pytest.raises(ConfigError, match="cannot resume.*relabelled_from"):
        relabel(str(changed), str(out), teacher="gfn2-xtb", progress=False)
    # Through the command line: the same job resumes (sharded output names work as for `label`).
    assert _cli(label_cli, ["--relabel", str(relabel_source), "-o", str(out), "--quiet"]) == 0
    with LabelledDataset(str(out)) as ds:
        assert len(ds) == 20 and ds.metadata["teacher"]["name"] == "gfn2-xtb"
    assert _cli(label_cli, ["--relabel", str(relabel_source), "-o", str(tmp_path / "s.h5"), "--shard", "1/2",
                            "--quiet"]) == 0
    with LabelledDataset(str(tmp_path / "s.shard1-of-2.h5")) as ds:
        assert ds.completed_items == ["methane", "formaldehyde"]
    with pytest.raises(ConfigError, match="remove --smiles, --md-snapshots"):
        _cli(label_cli, ["--relabel", str(relabel_source), "-o", str(tmp_path / "x.h5"), "--smiles", "w=O",
                         "--md-snapshots", "0"])
    with pytest.raises(MissingFileError, match="no dataset to relabel at"):
        _cli(label_cli, ["--relabel", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x.h5")])
    with pytest.raises(ConfigError, match="new file"):
        relabel(str(relabel_source), str(relabel_source), progress=False)
