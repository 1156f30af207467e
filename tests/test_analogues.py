"""Analogues of training molecules: valid, new, deterministic, never a held-out molecule."""
import csv
from pathlib import Path

import pytest
from rdkit import Chem

from openmm_distill.errors import ConfigError
from openmm_distill.systems import molecules
from openmm_distill.systems.analogues import canonical_key, make_analogues

PARENTS = [("ethanol", "CCO"), ("toluene", "Cc1ccccc1"), ("acetamide", "CC(N)=O"), ("butane", "CCCC")]


def test_analogues_are_valid_neutral_new_and_within_the_limits():
    pairs = make_analogues(PARENTS, 40, seed=3, max_atoms=25)
    assert len(pairs) == 40
    keys = [canonical_key(s) for _, s in pairs]
    assert len(set(keys)) == 40, "duplicates"
    assert not set(keys) & {canonical_key(s) for _, s in PARENTS}, "a parent came back"
    for name, smiles in pairs:
        mol = Chem.MolFromSmiles(smiles)
        assert mol is not None, smiles
        with_h = Chem.AddHs(mol)
        assert with_h.GetNumAtoms() <= 25
        assert Chem.GetFormalCharge(mol) == 0
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) == 0
        assert {a.GetSymbol() for a in with_h.GetAtoms()} <= {"H", "C", "N", "O", "F", "P", "S", "Cl"}
        assert name.split("_analogue")[0] in dict(PARENTS)


def test_analogues_are_deterministic_per_seed():
    assert make_analogues(PARENTS, 10, seed=1) == make_analogues(PARENTS, 10, seed=1)
    assert make_analogues(PARENTS, 10, seed=1) != make_analogues(PARENTS, 10, seed=2)


def test_excluded_molecules_never_appear():
    free = make_analogues(PARENTS, 30, seed=0)
    banned = [s for _, s in free[:10]]
    again = make_analogues(PARENTS, 30, seed=0, exclude=banned)
    assert not {canonical_key(s) for s in banned} & {canonical_key(s) for _, s in again}


def test_impossible_requests_fail_with_the_reason():
    with pytest.raises(ConfigError, match="found only"):
        make_analogues([("methane", "C")], 5, max_atoms=5, max_tries_per_analogue=5)
    with pytest.raises(ConfigError, match="must be >= 0, got -1"):
        make_analogues(PARENTS, -1)


def test_committed_analogues_are_reproduced_and_avoid_the_held_out_molecules(tmp_path):
    """openmm_distill/recipes/data/train_analogues.csv is what the CLI writes, and no analogue is a validation/test molecule.

    Asking for more analogues only appends (the first N of a longer list are the N-list), which is what
    lets a labelled set grow without relabelling: the session-3 students used the first 600 of these.
    """
    from openmm_distill.cli import main

    out = tmp_path / "analogues.csv"
    assert main(["systems", "--analogues", "1800", "--split", "train", "--seed", "0", "-o", str(out)]) == 0
    committed = Path(__file__).parents[1] / "openmm_distill" / "recipes" / "data" / "train_analogues.csv"
    assert out.read_text() == committed.read_text()
    with open(out) as handle:
        keys = {canonical_key(row["smiles"]) for row in csv.DictReader(handle)}
    held_out = {canonical_key(m.smiles) for m in molecules() if m.split != "train"}
    assert len(keys) == 1800 and not keys & held_out
    first = tmp_path / "first.csv"
    assert main(["systems", "--analogues", "600", "--split", "train", "--seed", "0", "-o", str(first)]) == 0
    assert out.read_text().splitlines()[:601] == first.read_text().splitlines()
