"""Dataset format, validation, statistics, the PyTorch loader, and geometry sampling."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.data import (
    DatasetWriter,
    Failure,
    LabelledDataset,
    LabelledStructure,
    SamplingConfig,
    collate_structures,
    compute_statistics,
    filter_dataset,
    make_dataloader,
    open_dataset,
    plot_statistics,
    read_metadata,
    sample_molecule,
    validate_dataset,
    write_structures,
)
from openmm_distill.data.torch_dataset import StructureDataset
from openmm_distill.errors import ConfigError, IncompatibleFileError

TEACHER = {"name": "test-teacher", "version": "1.0", "settings": {"accuracy": 0.1}}


def random_structures(n, seed=0, molecules=("a", "b", "c"), periodic=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mol = molecules[i % len(molecules)]
        size = 3 + (i * 7) % 11
        out.append(
            LabelledStructure(
                key=f"{mol}/s{i}",
                molecule=mol,
                smiles=f"SMILES_{mol}",
                atomic_numbers=rng.choice([1, 6, 7, 8], size=size),
                positions=rng.normal(size=(size, 3)) * 2,
                energy=float(rng.normal() * 100),
                forces=rng.normal(size=(size, 3)),
                box=np.diag(rng.uniform(8, 12, 3)) if periodic else None,
                charge=int(i % 2),
                provenance={"method": "random", "sample": i},
            )
        )
    return out


def assert_same_structure(a: LabelledStructure, b: LabelledStructure):
    assert a.key == b.key and a.molecule == b.molecule and a.smiles == b.smiles
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.forces, b.forces)
    assert a.energy == b.energy and a.charge == b.charge and a.provenance == b.provenance
    if a.box is None:
        assert b.box is None
    else:
        np.testing.assert_array_equal(a.box, b.box)


@pytest.fixture
def dataset_file(tmp_path):
    path = tmp_path / "data.h5"
    write_structures(
        str(path),
        random_structures(25),
        metadata={"teacher": TEACHER, "sampling_config": {"seed": 1}, "creation_command": "pytest"},
        failures=[Failure("a/s99", "SCF not converged")],
        completed_items=["a", "b", "c"],
    )
    return path


@pytest.mark.parametrize("periodic", [False, True])
def test_hdf5_round_trip(tmp_path, periodic):
    structures = random_structures(40, periodic=periodic)
    path = tmp_path / "round.h5"
    write_structures(
        str(path),
        structures,
        metadata={"teacher": TEACHER, "sampling_config": {"n_conformers": 2}, "creation_command": "openmm-distill label x"},
        failures=[Failure("x/1", "boom")],
        completed_items=["a", "b", "c"],
    )
    assert not (tmp_path / "round.h5.partial").exists()
    with open_dataset(str(path)) as ds:
        assert len(ds) == 40 and ds.periodic == periodic
        for original, stored in zip(structures, ds):
            assert_same_structure(original, stored)
        assert_same_structure(structures[17], ds[17])
        assert ds.keys == [s.key for s in structures]
        assert ds.molecule_names == ["a", "b", "c"]
        assert ds.failures == [Failure("x/1", "boom")]
        assert ds.completed_items == ["a", "b", "c"]
        meta = ds.metadata
    assert meta["energy_unit"] == "eV" and meta["force_unit"] == "eV/Angstrom" and meta["length_unit"] == "Angstrom"
    assert meta["teacher"] == TEACHER
    assert meta["sampling_config"] == {"n_conformers": 2}
    assert meta["creation_command"] == "openmm-distill label x"
    assert meta["format_version"] == 1 and meta["package_version"] == openmm_distill.__version__
    assert meta["complete"] is True
    assert read_metadata(str(path))["teacher_name"] == "test-teacher"
    with h5py.File(path, "r") as f:
        total = sum(s.n_atoms for s in structures)
        assert f["positions"].shape == (total, 3) and f["positions"].dtype == np.float64
        assert f["atomic_numbers"].dtype == np.int16
        assert f["energy"].dtype == np.float64 and f["energy"].shape == (40,)
        assert f["positions"].compression == "gzip" and f["positions"].chunks is not None
        assert f["positions"].maxshape == (None, 3)
        np.testing.assert_array_equal(f["offsets"][:], np.concatenate([[0], np.cumsum(f["n_atoms"][:])[:-1]]))
        assert ("box" in f) == periodic
        assert json.loads(f["provenance"].asstr()[3]) == {"method": "random", "sample": 3}


def test_writer_resume_truncates_uncommitted_data(tmp_path):
    path = str(tmp_path / "w.h5")
    structures = random_structures(10)
    writer = DatasetWriter(path, metadata={"teacher": TEACHER})
    writer.append(structures[:4])
    writer.mark_completed(["first"])
    writer.commit()
    writer.append(structures[4:7])  # never committed: as if the job died here
    writer.add_failures([Failure("lost", "uncommitted")])
    writer._f.flush()
    writer._f.close()

    with DatasetWriter(path, append=True) as resumed:
        assert resumed.keys == {s.key for s in structures[:4]}
        assert resumed.completed_items == {"first"} and resumed.failed_keys == set()
        resumed.append(structures[4:])
        resumed.commit()
    with LabelledDataset(path) as ds:
        assert len(ds) == 10
        for original, stored in zip(structures, ds):
            assert_same_structure(original, stored)
    with DatasetWriter(path, append=True) as again, pytest.raises(ValueError, match="duplicate"):
        again.append(structures[:1])


def test_writer_rejects_mixed_periodicity_and_foreign_files(tmp_path):
    with DatasetWriter(str(tmp_path / "m.h5"), metadata={"teacher": TEACHER}) as writer:
        writer.append(random_structures(2))
        with pytest.raises(ValueError, match="periodic"):
            writer.append(random_structures(1, seed=5, molecules=("z",), periodic=True))
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(IncompatibleFileError):
        LabelledDataset(str(tmp_path / "foreign.h5"))
    with pytest.raises(FileNotFoundError):
        open_dataset(str(tmp_path / "missing.h5"))


def test_validation_flags_nan_absurd_and_duplicates(tmp_path):
    structures = random_structures(12)
    structures[1].forces[0, 0] = np.nan
    structures[2].energy = float("inf")
    structures[4].forces[2] = [0.0, 30.0, 0.0]  # 30 eV/Angstrom > 20
    dup = structures[6]
    structures.append(
        LabelledStructure(**{**dup.__dict__, "key": dup.key + "-copy", "positions": dup.positions + 1e-5, "index": -1})
    )
    # Same positions but a different molecule: not a duplicate.
    structures.append(LabelledStructure(**{**dup.__dict__, "key": "z/other", "molecule": "z", "index": -1}))
    path = str(tmp_path / "v.h5")
    write_structures(path, structures, metadata={"teacher": TEACHER})
    report = validate_dataset(path, max_force=20.0)
    assert report.flagged["non_finite"] == [1, 2]
    assert report.flagged["absurd_force"] == [4]
    assert report.flagged["duplicate"] == [12]
    assert report.n_excluded == 4 and report.counts == {"non_finite": 2, "absurd_force": 1, "duplicate": 1}
    assert "absurd_force" in report.summary() and structures[4].key in report.summary()
    assert validate_dataset(path, max_force=40.0).flagged["absurd_force"] == []
    assert validate_dataset(path, duplicate_tolerance=1e-7).flagged["duplicate"] == []

    clean = str(tmp_path / "clean.h5")
    assert filter_dataset(path, clean, report.keep_indices) == len(structures) - 4
    with LabelledDataset(clean) as ds:
        assert [s.key for s in ds] == [structures[i].key for i in report.keep_indices]
        assert "filtered" in " ".join(ds.metadata)
    assert validate_dataset(clean).n_excluded == 0
    with pytest.raises(ConfigError, match="max_force"):
        validate_dataset(path, max_force=0)


def test_statistics_text_and_png(dataset_file, tmp_path):
    stats = compute_statistics(str(dataset_file))
    assert stats.n_structures == 25 and stats.n_molecules == 3 and stats.n_failures == 1
    assert sum(stats.element_atoms.values()) == stats.n_atoms_total
    assert sum(stats.size_histogram.values()) == 25
    text = stats.format()
    assert "test-teacher" in text and "force magnitudes" in text and "H:" in text
    png = plot_statistics(stats, str(tmp_path / "plots" / "stats.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_collate_contract(dataset_file):
    ds = StructureDataset(str(dataset_file))
    items = [ds[i] for i in (0, 3, 7)]
    batch = collate_structures(items)
    assert set(batch) == {"atomic_numbers", "positions", "energy", "forces", "batch", "n_atoms", "index"}
    sizes = [int(item["n_atoms"]) for item in items]
    n_total = sum(sizes)
    assert batch["atomic_numbers"].dtype == torch.long and batch["atomic_numbers"].shape == (n_total,)
    assert batch["positions"].dtype == torch.float32 and batch["positions"].shape == (n_total, 3)
    assert batch["forces"].dtype == torch.float32 and batch["forces"].shape == (n_total, 3)
    assert batch["energy"].dtype == torch.float64 and batch["energy"].shape == (3,)
    assert batch["n_atoms"].tolist() == sizes and batch["n_atoms"].dtype == torch.long
    assert batch["batch"].tolist() == sum(([b] * n for b, n in enumerate(sizes)), [])
    assert batch["index"].tolist() == [0, 3, 7]
    with LabelledDataset(str(dataset_file)) as file:
        ptr = np.concatenate([[0], np.cumsum(sizes)])
        for b, i in enumerate([0, 3, 7]):
            s = file[i]
            np.testing.assert_allclose(batch["positions"][ptr[b] : ptr[b + 1]].numpy(), s.positions, rtol=1e-6)
            np.testing.assert_allclose(batch["forces"][ptr[b] : ptr[b + 1]].numpy(), s.forces, rtol=1e-6)
            assert batch["energy"][b].item() == s.energy
            assert batch["atomic_numbers"][ptr[b] : ptr[b + 1]].tolist() == s.atomic_numbers.tolist()


def test_dataloader_periodic_float64_and_workers(tmp_path):
    path = str(tmp_path / "p.h5")
    structures = random_structures(9, periodic=True)
    write_structures(path, structures, metadata={"teacher": TEACHER})
    loader = make_dataloader(path, batch_size=4, shuffle=True, num_workers=2, seed=3, dtype=torch.float64)
    seen = []
    for batch in loader:
        assert batch["box"].shape == (len(batch["index"]), 3, 3) and batch["box"].dtype == torch.float64
        assert batch["positions"].dtype == torch.float64
        for b, i in enumerate(batch["index"].tolist()):
            np.testing.assert_array_equal(batch["box"][b].numpy(), structures[i].box)
            mask = batch["batch"] == b
            np.testing.assert_array_equal(batch["positions"][mask].numpy(), structures[i].positions)
        seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(9)) and seen != list(range(9))
    # Same seed, same order; a subset through `indices`.
    order = lambda: [i for b in make_dataloader(path, 4, shuffle=True, seed=3) for i in b["index"].tolist()]  # noqa: E731
    assert order() == order()
    subset = [i for b in make_dataloader(path, 2, indices=[8, 1, 5]) for i in b["index"].tolist()]
    assert subset == [8, 1, 5]
    with pytest.raises(ConfigError):
        make_dataloader(path, 2, indices=[9])


def test_sampling_config_validation():
    assert SamplingConfig().geometries_per_molecule() > 0
    with pytest.raises(ConfigError, match=r"n_conformers=0 .*allowed: in 1\.\.1000"):
        SamplingConfig(n_conformers=0)
    with pytest.raises(ConfigError, match=r"normal_mode_hessian='abc'.*allowed: mmff, teacher"):
        SamplingConfig(normal_mode_hessian="abc")
    with pytest.raises(ConfigError, match=r"md_temperatures_K=-5.0.*allowed"):
        SamplingConfig(md_temperatures_K=(300, -5))
    with pytest.raises(ConfigError, match=r"unknown key 'temperature' in section 'sampling'.*allowed keys: n_conformers"):
        SamplingConfig.from_dict({"temperature": 300})
    with pytest.raises(ConfigError, match="random_sigma"):
        SamplingConfig(random_sigma="big")
    config = SamplingConfig.from_dict({"md_temperatures_K": [350], "seed": 4})
    assert config.md_temperatures_K == (350.0,) and SamplingConfig.from_dict(config.to_dict()) == config


def test_sampling_is_deterministic_with_explicit_hydrogens_and_provenance():
    config = SamplingConfig(n_conformers=2, random_samples=1, normal_mode_samples=2, md_snapshots=0, seed=7)
    first = sample_molecule("ethanol", "CCO", config)
    second = sample_molecule("ethanol", "CCO", config)
    assert [g.key for g in first.geometries] == [g.key for g in second.geometries]
    for a, b in zip(first.geometries, second.geometries):
        np.testing.assert_array_equal(a.positions, b.positions)
    g0 = first.geometries[0]
    assert sorted(g0.atomic_numbers.tolist()) == [1] * 6 + [6, 6, 8]  # hydrogens are explicit
    methods = {g.provenance["method"] for g in first.geometries}
    assert methods == {"conformer", "random", "normal_mode"}
    nm = [g for g in first.geometries if g.provenance["method"] == "normal_mode"][0]
    assert nm.provenance["hessian"] == "mmff" and nm.provenance["temperature_K"] == 500.0
    assert nm.provenance["seed"] == 7 and "conformer" in nm.provenance
    displacement = np.linalg.norm(nm.positions - first.geometries[0].positions, axis=1).max()
    assert 0.0 < displacement <= config.normal_mode_max_displacement + 1e-9
    other = sample_molecule("ethanol", "CCO", config.replace(seed=8))
    assert not np.allclose(other.geometries[1].positions, first.geometries[1].positions)
    with pytest.raises(ConfigError, match="pass a teacher"):
        sample_molecule("ethanol", "CCO", SamplingConfig())
    with pytest.raises(ConfigError, match="could not parse"):
        sample_molecule("bad", "C1CC", config)


def test_one_three_pairs_and_close_contact_geometry():
    from openmm_distill.data.displacements import close_contact_displacement, one_three_pairs

    # Propane-like chain 0-1-2-3 plus a branch 1-4: 1-3 pairs share a neighbour, bonded pairs are excluded.
    pairs = one_three_pairs([(0, 1), (1, 2), (2, 3), (1, 4)])
    assert pairs.tolist() == [[0, 2], [0, 4], [1, 3], [2, 4]]
    assert one_three_pairs([(0, 1)]).shape == (0, 2)
    x = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    y = close_contact_displacement(x, (0, 2), 0.6, np.random.default_rng(0), sigma=0.0)
    assert np.linalg.norm(y[2] - y[0]) == pytest.approx(1.2)  # 0.6 x 2.0 Angstrom
    np.testing.assert_allclose(0.5 * (y[0] + y[2]), 0.5 * (x[0] + x[2]))  # moved symmetrically
    np.testing.assert_array_equal(y[1], x[1])


def test_contact_samples_push_a_hydrogen_pair_together():
    config = SamplingConfig(n_conformers=1, include_conformers=True, random_samples=0, normal_mode_samples=0,
                            contact_samples=4, contact_scale=(0.7, 0.8), md_temperatures_K=[], seed=3)
    result = sample_molecule("methylamine", "CN", config)
    start = result.geometries[0].positions
    contacts = [g for g in result.geometries if g.provenance["method"] == "contact"]
    assert [g.key for g in contacts] == [f"methylamine/c0/contact/{k}" for k in range(4)]
    assert config.geometries_per_molecule() == 5
    for g in contacts:
        i, j = g.provenance["pair"]
        assert 1 in (g.atomic_numbers[i], g.atomic_numbers[j])  # only pairs with a hydrogen
        ratio = np.linalg.norm(g.positions[i] - g.positions[j]) / np.linalg.norm(start[i] - start[j])
        assert 0.65 < ratio < 0.85 and ratio == pytest.approx(g.provenance["scale"], abs=0.05)
    with pytest.raises(ConfigError, match="contact_scale"):
        SamplingConfig(contact_scale=(0.9, 0.5))
    with pytest.raises(ConfigError, match="contact_scale"):
        SamplingConfig(contact_scale=(0.5, 1.5))


def test_md_sampling_with_teacher_reuses_labels():
    from openmm_distill.teachers import get_teacher

    teacher = get_teacher("gfn2-xtb")
    config = SamplingConfig(
        n_conformers=1, include_conformers=False, random_samples=0, normal_mode_samples=1,
        normal_mode_hessian="teacher", md_temperatures_K=(300.0, 800.0), md_snapshots=2,
        md_interval_steps=3, md_equilibration_steps=2,
    )
    result = sample_molecule("water", "O", config, teacher)
    md = [g for g in result.geometries if g.provenance["method"] == "md"]
    assert [g.key for g in md] == ["water/c0/md/300K/0", "water/c0/md/300K/1", "water/c0/md/800K/0", "water/c0/md/800K/1"]
    assert [g.provenance["md_step"] for g in md] == [5, 8, 5, 8]
    for g in md:  # the label computed during MD is the teacher's label at that geometry
        direct = teacher.compute(g.atomic_numbers, g.positions)
        assert g.energy == pytest.approx(direct.energy, abs=1e-8)
        np.testing.assert_allclose(g.forces, direct.forces, atol=1e-6)
    nm = [g for g in result.geometries if g.provenance["method"] == "normal_mode"]
    assert len(nm) == 1 and nm[0].provenance["hessian"] == "teacher"
    assert not result.failures


def test_mmff_driven_md_needs_no_teacher_and_leaves_labelling_to_it():
    config = SamplingConfig(
        n_conformers=1, include_conformers=False, random_samples=0, normal_mode_samples=0,
        md_driver="mmff", md_temperatures_K=(400.0,), md_snapshots=2, md_interval_steps=5,
    )
    assert not config.needs_teacher
    result = sample_molecule("ethanol", "CCO", config)
    assert [g.key for g in result.geometries] == ["ethanol/c0/md/400K/0", "ethanol/c0/md/400K/1"]
    for g in result.geometries:
        assert g.energy is None and g.forces is None and g.provenance["md_driver"] == "mmff"
    assert not np.allclose(result.geometries[0].positions, result.geometries[1].positions)
