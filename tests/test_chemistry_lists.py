"""The blind evaluation set, the grown training chemistry, and the coverage report by functional group."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
import torch

from openmm_distill.metrics import MetricAccumulator
from openmm_distill.systems.analogues import canonical_key
from openmm_distill.systems.functional_groups import FUNCTIONAL_GROUPS, functional_groups, group_counts
from openmm_distill.training.coverage import coverage_markdown, coverage_rows, training_smiles

ROOT = Path(__file__).resolve().parents[1]
CHEMISTRY = ROOT / "systems" / "chemistry"
BLIND = CHEMISTRY / "blind_molecules.csv"
ALLOWED = {"H", "C", "N", "O", "F", "P", "S", "Cl"}


def _rows(path: Path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _other_lists():
    listed = subprocess.run(["git", "ls-files", "*.csv"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.split()
    paths = [ROOT / p for p in listed if (ROOT / p).resolve() != BLIND.resolve() and (ROOT / p).is_file()]
    return [p for p in paths if "smiles" in (_rows(p)[0] if _rows(p) else {})]


def test_blind_set_shares_no_molecule_with_any_list_in_the_repo():
    blind = {canonical_key(r["smiles"]) for r in _rows(BLIND)}
    others = _other_lists()
    names = {p.name for p in others}
    # The lists the blind set must stay apart from are really read (a moved file would make this vacuous).
    assert {"molecules.csv", "train_analogues.csv", "explore_molecules.csv"} <= names
    for path in others:
        shared = blind & {canonical_key(r["smiles"]) for r in _rows(path)}
        assert not shared, f"{path.relative_to(ROOT)} shares {sorted(shared)[:3]} with the blind set"


def test_blind_set_follows_its_rule():
    from rdkit import Chem

    rows = _rows(BLIND)
    assert len(rows) >= 60
    assert len({canonical_key(r["smiles"]) for r in rows}) == len(rows)
    for r in rows:
        mol = Chem.AddHs(Chem.MolFromSmiles(r["smiles"]))
        assert 5 <= mol.GetNumAtoms() <= 60 and mol.GetNumAtoms() == int(r["n_atoms"]), r["name"]
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= ALLOWED, r["name"]
        assert all(a.GetFormalCharge() == 0 for a in mol.GetAtoms()), r["name"]


def test_training_chemistry_is_new_and_distinct():
    rows = _rows(CHEMISTRY / "train_chemistry.csv")
    keys = [canonical_key(r["smiles"]) for r in rows]
    assert len(rows) >= 10_000 and len(set(keys)) == len(rows) and None not in keys
    sizes = [int(r["n_atoms"]) for r in rows]
    assert 5 <= min(sizes) and max(sizes) <= 60
    earlier = [p for p in _other_lists() if p.name in {"molecules.csv", "train_analogues.csv",
                                                        "explore_molecules.csv", "novel5.csv"}]
    assert len(earlier) == 4
    validation = {canonical_key(r["smiles"]) for r in _rows(CHEMISTRY / "validation_chemistry.csv")}
    assert len(validation) >= 40
    for path in earlier:
        listed = {canonical_key(r["smiles"]) for r in _rows(path)}
        shared = set(keys) & listed
        assert not shared, f"{path.name} shares {sorted(shared)[:3]} with the training chemistry"
        assert not validation & listed, f"{path.name} shares molecules with the chemistry validation set"
    assert not validation & set(keys), "the chemistry validation set shares molecules with the training chemistry"


def test_focus_list_is_new_and_carries_only_chemistry_the_list_is_thin_in():
    listed = _rows(CHEMISTRY / "train_chemistry.csv")
    focus = _rows(CHEMISTRY / "train_chemistry_focus.csv")
    keys = {canonical_key(r["smiles"]) for r in focus}
    assert len(focus) >= 500 and len(keys) == len(focus)
    earlier = {canonical_key(r["smiles"]) for path in ("train_chemistry.csv", "validation_chemistry.csv")
               for r in _rows(CHEMISTRY / path)}
    assert not keys & earlier
    rare = {g for g, n in group_counts(r["smiles"] for r in listed).items() if n < 200}
    for r in focus:
        assert rare & set(functional_groups(r["smiles"])), r["name"]


def test_functional_groups_recognise_the_rare_groups():
    assert "trifluoromethoxy" in functional_groups("FC(F)(F)Oc1ccc2nc(N)sc2c1")
    assert "phosphorus-chlorine bond" in functional_groups("CCOP(=O)(Cl)OCC")
    assert "biguanide" in functional_groups("CN(C)C(=N)NC(=N)N")
    assert "disulfide" in functional_groups("CCN(CC)C(=S)SSC(=S)N(CC)CC")
    assert "cyclopropylamine" in functional_groups("NC1CC1")
    assert functional_groups("CCCC") == []
    counts = group_counts(["CCO", "OCCO", "c1ccccc1"])
    assert counts["alcohol"] == 2 and counts["aromatic ring"] == 1 and len(counts) == len(FUNCTIONAL_GROUPS)


def _accumulator(error: float, n: int = 4) -> MetricAccumulator:
    acc = MetricAccumulator()
    target = torch.linspace(-1.0, 1.0, n * 3, dtype=torch.float64).reshape(n, 3)
    acc.update(torch.tensor([error]), torch.tensor([0.0]), torch.tensor([n]), target + error, target)
    return acc


def test_coverage_pools_the_molecules_of_each_group(tmp_path):
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("name,smiles\nethanol,CCO\nglycol,OCCO\nbenzene,c1ccccc1\n")
    train = training_smiles([str(train_csv)])
    evaluated = {"propanol": "CCCO", "toluene": "Cc1ccccc1"}
    rows = {r["group"]: r for r in coverage_rows(train, evaluated, {"propanol": _accumulator(0.1),
                                                                    "toluene": _accumulator(0.3)})}
    assert rows["alcohol"]["train_molecules"] == 2 and rows["alcohol"]["evaluated_molecules"] == 1
    assert rows["alcohol"]["force_mae"] == pytest.approx(0.1)
    assert rows["aromatic ring"]["force_mae"] == pytest.approx(0.3)
    assert rows["nitrile"]["force_mae"] is None and rows["nitrile"]["evaluated_molecules"] == 0
    table = coverage_markdown(list(rows.values()))
    assert "| alcohol | 2 | 1 |" in table


def test_coverage_source_errors_name_the_source(tmp_path):
    from openmm_distill.errors import ConfigError

    with pytest.raises(ConfigError, match="missing.csv"):
        training_smiles([str(tmp_path / "missing.csv")])
    bad = tmp_path / "list.tsv"
    bad.write_text("x")
    with pytest.raises(ConfigError, match="unknown suffix"):
        training_smiles([str(bad)])


def test_assembled_list_is_new_and_brings_each_rare_group_to_the_bar():
    listed = _rows(CHEMISTRY / "train_chemistry.csv") + _rows(CHEMISTRY / "train_chemistry_focus.csv")
    assembled = _rows(CHEMISTRY / "train_chemistry_assembled.csv")
    keys = {canonical_key(r["smiles"]) for r in assembled}
    assert len(keys) == len(assembled) >= 1000
    # The hydrogen-bond exploration list is drawn from the training lists, this one included.
    earlier = {canonical_key(r["smiles"]) for path in _other_lists()
               if path.name not in {"train_chemistry_assembled.csv", "explore_hbond_molecules.csv"}
               for r in _rows(path)}
    assert not keys & earlier
    before = group_counts(r["smiles"] for r in listed)
    added = group_counts(r["smiles"] for r in assembled)
    for group in ("biguanide", "disulfide", "phosphorus-chlorine bond", "hydrazine or hydrazone"):
        assert before[group] < 200 <= before[group] + added[group], group


def test_assembling_stops_when_the_group_reaches_the_bar_and_skips_listed_molecules():
    import sys

    sys.path.insert(0, str(CHEMISTRY))
    from assembled import assembled_rows

    first = assembled_rows({"disulfide": 197}, set(), rare_below=200)
    assert len(first) == 3 and all("disulfide" in functional_groups(r["smiles"]) for r in first)
    again = assembled_rows({"disulfide": 197}, {first[0]["smiles"]}, rare_below=200)
    assert first[0]["smiles"] not in {r["smiles"] for r in again} and len(again) == 3
    assert assembled_rows({"disulfide": 200, "alcohol": 0}, set(), rare_below=200) == []


def test_hbond_exploration_list_holds_training_molecules_that_can_close_a_hydrogen_bond():
    import sys

    sys.path.insert(0, str(ROOT / "training"))
    from select_hbond_molecules import MAX_ATOMS, N_NITROGEN, N_OXYGEN, OUTPUT, SOURCES, acceptor_kind

    rows = _rows(OUTPUT)
    training = {canonical_key(r["smiles"]) for path in SOURCES for r in _rows(path)}
    validation = {canonical_key(r["smiles"]) for r in _rows(CHEMISTRY / "validation_chemistry.csv")}
    keys = {canonical_key(r["smiles"]) for r in rows}
    assert len(rows) == N_NITROGEN + N_OXYGEN == 160 and len(keys) == len(rows) and MAX_ATOMS == 45
    assert keys <= training and not keys & validation
    # Every row passes the script's rule (too big or no donor-acceptor pair 4-9 bonds apart gives None),
    # in the drawn proportions.
    kinds = [acceptor_kind(r["smiles"]) for r in rows]
    assert kinds.count("N") == N_NITROGEN and kinds.count("O") == N_OXYGEN
