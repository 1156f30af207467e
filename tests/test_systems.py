"""The molecule catalog, its declared split, structure files and water boxes."""
from __future__ import annotations

import importlib.util
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.errors import DistillError
from openmm_distill.systems import (  # noqa: E402
    SPLITS,
    HydrogenWarning,
    get_molecule,
    load_catalog,
    molecules,
    read_structure,
    structure_from_smiles,
    structure_path,
    systems_dir,
    water_box,
    water_density_g_per_cm3,
)
from openmm_distill.systems.resolve import molecule_list, resolve_system

from openmm import app, unit  # noqa: E402

ALLOWED_ELEMENTS = {"H", "C", "N", "O", "F", "P", "S", "Cl"}
PROTOCOL_MOLECULES = {
    "ethanol": "CCO",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "alanine_dipeptide": "CC(=O)NC(C)C(=O)NC",
}
SMALL_STRUCTURES = ["ethanol", "aspirin", "paracetamol", "deoxyadenosine_monophosphate", "alanine_dipeptide"]


def canonical(smiles: str, stereo: bool = True) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=stereo)


def n_atoms_with_h(smiles: str) -> int:
    return Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms()


def load_split_script():
    script = Path(__file__).resolve().parents[1] / "systems" / "make_split.py"
    spec = importlib.util.spec_from_file_location("make_split", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def min_image_distance(points: np.ndarray, edge: float) -> float:
    """Brute-force minimum-image distance (Angstrom), independent of the code under test."""
    delta = points[:, None, :] - points[None, :, :]
    delta -= edge * np.round(delta / edge)
    distance = np.sqrt((delta ** 2).sum(-1))
    np.fill_diagonal(distance, np.inf)
    return float(distance.min())


# ---------------------------------------------------------------- catalog


def test_catalog_size_names_and_categories():
    entries = load_catalog()
    assert len(entries) >= 320
    for entry in entries:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", entry.name), entry.name
        assert entry.category and entry.split in SPLITS
    assert len({e.category for e in entries}) >= 8


def test_catalog_chemistry_is_valid_and_embeddable():
    problems = []
    params = AllChem.ETKDGv3()
    params.randomSeed = 0
    for entry in load_catalog():
        mol = Chem.MolFromSmiles(entry.smiles)
        if mol is None:
            problems.append(f"{entry.name}: SMILES does not parse")
            continue
        mol = Chem.AddHs(mol)
        elements = {atom.GetSymbol() for atom in mol.GetAtoms()}
        if not elements <= ALLOWED_ELEMENTS:
            problems.append(f"{entry.name}: elements {sorted(elements - ALLOWED_ELEMENTS)}")
        if not 5 <= mol.GetNumAtoms() <= 60:
            problems.append(f"{entry.name}: {mol.GetNumAtoms()} atoms with H")
        if any(atom.GetFormalCharge() for atom in mol.GetAtoms()):
            problems.append(f"{entry.name}: charged atoms")
        if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
            problems.append(f"{entry.name}: radical")
        if len(Chem.GetMolFrags(mol)) != 1:
            problems.append(f"{entry.name}: several fragments")
        if AllChem.EmbedMolecule(mol, params) != 0:
            problems.append(f"{entry.name}: ETKDG embedding failed")
    assert not problems, "\n".join(problems)


def test_catalog_has_no_duplicates():
    entries = load_catalog()
    names = [e.name for e in entries]
    smiles = [canonical(e.smiles) for e in entries]
    assert len(set(names)) == len(names)
    assert len(set(smiles)) == len(smiles), [s for s in set(smiles) if smiles.count(s) > 1]


def test_protocol_molecules_are_in_the_test_split():
    for name, smiles in PROTOCOL_MOLECULES.items():
        entry = get_molecule(name)
        assert canonical(entry.smiles, stereo=False) == canonical(smiles, stereo=False)
        assert entry.split == "test", name
    nucleotides = [e for e in load_catalog() if e.category == "nucleotide" and "P" in e.smiles]
    assert nucleotides
    assert get_molecule("deoxyadenosine_monophosphate").split == "test"


def test_split_is_reproduced_by_the_committed_script():
    entries = load_catalog()
    script = load_split_script()
    assert script.assign_splits((e.name, e.category) for e in entries) == {e.name: e.split for e in entries}
    # Row order does not matter.
    assert script.assign_splits((e.name, e.category) for e in reversed(entries)) == {e.name: e.split for e in entries}


def test_split_fractions_disjointness_and_test_diversity():
    entries = load_catalog()
    by_split = {split: molecules(split) for split in SPLITS}
    assert sum(len(v) for v in by_split.values()) == len(entries)
    names = {split: {e.name for e in v} for split, v in by_split.items()}
    smiles = {split: {canonical(e.smiles) for e in v} for split, v in by_split.items()}
    for a, b in [("train", "test"), ("train", "validation"), ("validation", "test")]:
        assert not names[a] & names[b]
        assert not smiles[a] & smiles[b]
    assert 0.75 <= len(by_split["train"]) / len(entries) <= 0.85
    test = by_split["test"]
    assert len(test) >= 25
    sizes = [n_atoms_with_h(e.smiles) for e in test]
    assert min(sizes) <= 12 and max(sizes) >= 35, sizes
    assert len({e.category for e in test}) >= 8


def test_bad_split_name_is_rejected():
    with pytest.raises(ValueError, match=r"'trian'.*train, validation, test"):
        molecules("trian")


def test_unknown_molecule_suggests_names():
    with pytest.raises(KeyError, match="aspirin") as info:
        get_molecule("asprin")
    assert str(info.value).startswith("unknown molecule 'asprin'; did you mean aspirin")


def test_catalog_and_structures_are_package_data():
    """Read through importlib.resources from inside the package, so a wheel install has them."""
    folder = systems_dir()
    assert folder == Path(openmm_distill.__file__).resolve().parent / "systems" / "data"
    assert (folder / "molecules.csv").is_file() and structure_path("water_box").parent == folder / "structures"


def test_systems_dir_override(tmp_path, monkeypatch):
    (tmp_path / "molecules.csv").write_text("name,smiles,category,split\nethanol,CCO,solvent,test\n")
    monkeypatch.setenv("OPENMM_DISTILL_SYSTEMS", str(tmp_path))
    assert systems_dir() == tmp_path
    assert [e.name for e in molecules("test")] == ["ethanol"]
    monkeypatch.setenv("OPENMM_DISTILL_SYSTEMS", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="OPENMM_DISTILL_SYSTEMS"):
        load_catalog()


def test_catalog_rejects_an_undeclared_split(tmp_path):
    path = tmp_path / "molecules.csv"
    path.write_text("name,smiles,category,split\nethanol,CCO,solvent,\n")
    with pytest.raises(ValueError, match="ethanol"):
        load_catalog(path)


# ---------------------------------------------------------------- structure files


def test_structure_path_lists_available_files():
    assert structure_path("aspirin").suffix == ".sdf"
    assert structure_path("aspirin.pdb").name == "aspirin.pdb"
    with pytest.raises(FileNotFoundError, match="aspirin.sdf"):
        structure_path("no_such_molecule")


@pytest.mark.parametrize("name", SMALL_STRUCTURES)
def test_shipped_structures_keep_every_hydrogen_and_match_the_catalog(name):
    smiles = get_molecule(name).smiles
    expected = n_atoms_with_h(smiles)
    sdf_mol = Chem.SDMolSupplier(str(structure_path(f"{name}.sdf")), removeHs=False)[0]
    Chem.AssignStereochemistryFrom3D(sdf_mol)
    assert canonical(Chem.MolToSmiles(Chem.RemoveHs(sdf_mol))) == canonical(smiles)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HydrogenWarning)
        from_sdf = read_structure(structure_path(f"{name}.sdf"))
        from_pdb = read_structure(structure_path(f"{name}.pdb"))
    assert from_sdf.n_atoms == from_pdb.n_atoms == expected
    # SDF and PDB list the same atoms in the same order.
    np.testing.assert_array_equal(from_sdf.atomic_numbers, from_pdb.atomic_numbers)
    np.testing.assert_allclose(from_sdf.positions, from_pdb.positions, atol=2e-3)
    assert from_sdf.box is None and from_sdf.topology.getNumAtoms() == expected


def test_sdf_without_hydrogens_gets_them_back(tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles(PROTOCOL_MOLECULES["aspirin"]))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    path = tmp_path / "aspirin_no_h.sdf"
    Chem.MolToMolFile(Chem.RemoveHs(mol), str(path))
    with pytest.warns(HydrogenWarning, match=r"aspirin_no_h\.sdf: 8 implicit hydrogens"):
        structure = read_structure(path)
    assert structure.n_atoms == mol.GetNumAtoms() == 21
    assert (structure.atomic_numbers == 1).sum() == 8
    # The added hydrogens have sensible coordinates (bonded at ~1 Angstrom).
    for i, j in structure.bonds:
        if 1 in (structure.atomic_numbers[i], structure.atomic_numbers[j]):
            assert 0.9 < np.linalg.norm(structure.positions[i] - structure.positions[j]) < 1.2


def test_pdb_without_hydrogens_warns(tmp_path):
    lines = structure_path("ethanol.pdb").read_text().splitlines()
    heavy = [line for line in lines if not (line.startswith("HETATM") and line.rstrip().endswith("H"))]
    heavy = [line for line in heavy if not line.startswith("CONECT")]
    path = tmp_path / "ethanol_heavy.pdb"
    path.write_text("\n".join(heavy) + "\n")
    with pytest.warns(HydrogenWarning, match="NO hydrogen"):
        structure = read_structure(path)
    assert structure.n_atoms == 3


def test_xyz_gives_one_residue_per_molecule(tmp_path):
    ethanol = structure_from_smiles("CCO")
    water = water_box(1, box_edge_angstrom=8.0)
    positions = np.vstack([ethanol.positions, water.positions + 6.0])
    numbers = np.concatenate([ethanol.atomic_numbers, water.atomic_numbers])
    path = tmp_path / "pair.xyz"
    symbols = {1: "H", 6: "C", 8: "O"}
    path.write_text(f"{len(numbers)}\nethanol and water\n"
                    + "".join(f"{symbols[z]} {x:.5f} {y:.5f} {w:.5f}\n" for z, (x, y, w) in zip(numbers, positions)))
    structure = read_structure(path)
    np.testing.assert_allclose(structure.positions, positions, atol=1e-5)
    assert structure.box is None
    assert structure.topology.getNumResidues() == 2
    assert structure.topology.getNumBonds() == 8 + 2


def test_structure_from_smiles_has_explicit_hydrogens():
    structure = structure_from_smiles(get_molecule("caffeine").smiles, seed=3)
    assert structure.n_atoms == 24 and (structure.atomic_numbers == 1).sum() == 10
    assert structure.topology.getNumAtoms() == 24 and structure.topology.getNumBonds() == 25
    again = structure_from_smiles(get_molecule("caffeine").smiles, seed=3)
    np.testing.assert_array_equal(structure.positions, again.positions)


# ---------------------------------------------------------------- water and OpenMM


def test_water_box_pdb_has_box_and_no_overlaps():
    structure = read_structure(structure_path("water_box.pdb"))
    assert structure.n_atoms == 3 * 216
    edge = structure.box[0, 0]
    np.testing.assert_allclose(structure.box, np.eye(3) * edge)
    assert abs(water_density_g_per_cm3(216, edge) - 1.0) < 0.05
    assert min_image_distance(structure.positions[::3], edge) >= 2.5


@pytest.mark.parametrize("n_waters", [27, 216, 500])
def test_water_box_properties(n_waters):
    box = water_box(n_waters, seed=1)
    assert box.n_atoms == 3 * n_waters
    np.testing.assert_array_equal(box.atomic_numbers[:6], [8, 1, 1, 8, 1, 1])
    edge = box.box[0, 0]
    assert abs(water_density_g_per_cm3(n_waters, edge) - 1.0) < 0.1
    oxygens = box.positions[::3]
    assert min_image_distance(oxygens, edge) >= 2.5
    assert np.all((oxygens >= 0) & (oxygens < edge))
    # Rigid TIP3P geometry.
    oh = box.positions.reshape(-1, 3, 3)[:, 1:] - oxygens[:, None]
    np.testing.assert_allclose(np.linalg.norm(oh, axis=-1), 0.9572, atol=1e-6)
    cos = (oh[:, 0] * oh[:, 1]).sum(-1) / 0.9572 ** 2
    np.testing.assert_allclose(np.degrees(np.arccos(cos)), 104.52, atol=1e-4)
    assert box.topology.getNumResidues() == n_waters


def test_water_box_5000_atoms_is_fast_and_deterministic():
    start = time.perf_counter()
    box = water_box(1667)
    elapsed = time.perf_counter() - start
    assert box.n_atoms == 5001
    assert elapsed < 5.0, f"{elapsed:.2f} s"
    np.testing.assert_array_equal(box.positions, water_box(1667).positions)
    assert not np.array_equal(box.positions, water_box(1667, seed=1).positions)


def test_water_box_from_edge_and_too_small():
    box = water_box(box_edge_angstrom=24.0)
    assert abs(water_density_g_per_cm3(box.n_atoms // 3, 24.0) - 1.0) < 0.02
    with pytest.raises(ValueError, match="larger box"):
        water_box(1000, box_edge_angstrom=20.0)


def test_amber14_templates_alanine_dipeptide():
    pdb = app.PDBFile(str(structure_path("alanine_dipeptide.pdb")))
    assert [r.name for r in pdb.topology.residues()] == ["ACE", "ALA", "NME"]
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology)
    assert system.getNumParticles() == 22


def test_amber14_templates_water_boxes():
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    pdb = app.PDBFile(str(structure_path("water_box.pdb")))
    assert pdb.topology.getPeriodicBoxVectors() is not None
    system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * unit.nanometer)
    assert system.getNumParticles() == 648
    generated = water_box(64)
    system = forcefield.createSystem(generated.topology)
    assert system.getNumParticles() == 192


def test_cli_lists_and_writes(tmp_path, capsys):
    from openmm_distill.cli import main

    assert main(["systems", "--summary"]) == 0
    assert "total" in capsys.readouterr().out
    assert main(["systems", "--split", "test", "--category", "solvent"]) == 0
    assert "ethanol" in capsys.readouterr().out
    out = tmp_path / "box.pdb"
    assert main(["systems", "--water-box", "100", "-o", str(out)]) == 0
    box = read_structure(out)
    assert box.n_atoms == 300 and box.box is not None
    assert main(["systems", "--write", "cafeine", "-o", str(tmp_path / "x.sdf")]) == 2
    assert "did you mean caffeine" in capsys.readouterr().err


# ---------------------------------------------------------------- one resolver of molecule arguments


@pytest.mark.parametrize("spec, name, n_atoms, smiles", [
    ("aspirin", "aspirin", 21, "CC(=O)Oc1ccccc1C(=O)O"),  # a ready structure (PDB) with its catalog SMILES
    ("glycine", "glycine", 10, "NCC(=O)O"),  # a catalog molecule without a ready structure
    ("C=O", "C=O", 4, "C=O"),  # a SMILES
    ("F/C=C/F", "F/C=C/F", 6, "F/C=C/F"),  # a slash inside a SMILES is not a path
    ("water:50", "water_50", 150, ""),
])
def test_resolve_system_names_smiles_and_boxes(spec, name, n_atoms, smiles):
    molsys = resolve_system(spec)
    assert (molsys.name, molsys.n_atoms, molsys.smiles) == (name, n_atoms, smiles)
    assert molsys.topology.getNumAtoms() == n_atoms
    assert molsys.periodic == spec.startswith("water")


def test_resolve_system_reads_a_structure_file_with_its_hydrogens(tmp_path):
    path = tmp_path / "my ethanol.sdf"
    path.write_bytes(structure_path("ethanol.sdf").read_bytes())
    molsys = resolve_system(str(path))
    assert molsys.name == "my_ethanol" and molsys.n_atoms == 9 and molsys.source == str(path)
    np.testing.assert_allclose(molsys.positions_angstrom, read_structure(path).positions)


@pytest.mark.parametrize("spec, error, message", [
    ("asprin", KeyError, "unknown molecule 'asprin'; did you mean aspirin"),
    ("xqzzy", KeyError, "'xqzzy': neither a catalog molecule, a structure file nor a SMILES"),
    ("missing.pdb", FileNotFoundError, "structure file 'missing.pdb' does not exist"),
    ("no/such/folder", FileNotFoundError, "'no/such/folder' does not exist"),
])
def test_resolve_system_says_what_is_wrong(spec, error, message, capfd):
    with pytest.raises(error) as info:
        resolve_system(spec)
    assert isinstance(info.value, DistillError)
    assert message in str(info.value)
    assert "SMILES Parse Error" not in capfd.readouterr().err  # RDKit's parser stays quiet


def test_molecule_list_reads_every_format(tmp_path):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("name,smiles\nmethanol,CO\n")
    smi_file = tmp_path / "mine.smi"
    smi_file.write_text("# comment\nC=O formaldehyde\n")
    sdf = tmp_path / "two.sdf"
    with Chem.SDWriter(str(sdf)) as writer:
        for name, smiles in (("ethanol", "CCO"), ("acetic", "CC(=O)O")):
            mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
            AllChem.EmbedMolecule(mol, randomSeed=0)
            mol.SetProp("_Name", name)
            writer.write(mol)
    pdb = structure_path("paracetamol.pdb")  # no bond orders: determined from the geometry
    pairs = molecule_list([str(csv_file), str(smi_file), str(sdf), str(pdb), "aspirin", "CCN"])
    assert pairs == [("methanol", "CO"), ("formaldehyde", "C=O"), ("ethanol", "CCO"), ("acetic", "CC(=O)O"),
                     ("paracetamol", canonical(get_molecule("paracetamol").smiles)),
                     ("aspirin", get_molecule("aspirin").smiles), ("CCN", "CCN")]
    with pytest.raises(KeyError, match="did you mean aspirin"):
        molecule_list(["asprin"])
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        molecule_list([str(tmp_path / "gone.csv")])
