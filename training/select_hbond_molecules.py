#!/usr/bin/env python
"""Reproduce ``openmm_distill/recipes/data/explore_hbond_molecules.csv``: training molecules that can
close an intramolecular hydrogen bond, for a round of exploration with the student.

Why: at 500 K ``tiny`` let the amide N-H of histidine dipeptide (test split) compress its hydrogen
bond to the imidazole N and hand the proton over; GFN2-xTB puts those geometries 1-1.7 eV higher than
the student does. Thermal training data rarely holds such compressed N-H..N / O-H..N contacts, so the
student's own hot MD on molecules that can form them is explored and labelled.

Rule (frozen before any student is trained on the result):
1. Candidates: the training lists only (``systems/chemistry/train_chemistry.csv``,
   ``train_chemistry_focus.csv``, ``train_chemistry_assembled.csv``), so no validation, test or blind
   molecule can leak in.
2. At most 45 atoms with hydrogens (MD stays cheap).
3. A donor (N or O carrying a hydrogen) and an acceptor (N or O, not the donor) 4 to 9 bonds apart, so
   the hydrogen bond closes a ring of 6 to 11 atoms. "N acceptor" molecules have at least one such pair
   with a nitrogen acceptor; the others only oxygen acceptors.
4. ``N_NITROGEN`` N-acceptor and ``N_OXYGEN`` O-only molecules, each drawn with
   ``numpy.random.default_rng(SEED).permutation`` of its candidates in file order.

    python training/select_hbond_molecules.py
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "systems/chemistry" / f for f in
           ("train_chemistry.csv", "train_chemistry_focus.csv", "train_chemistry_assembled.csv")]
OUTPUT = ROOT / "openmm_distill/recipes/data/explore_hbond_molecules.csv"
MAX_ATOMS = 45
MIN_BONDS, MAX_BONDS = 4, 9
N_NITROGEN, N_OXYGEN, SEED = 120, 40, 0


def acceptor_kind(smiles: str) -> str | None:
    """"N" or "O" for the best acceptor of a donor-acceptor pair the rule admits, None if none or too big."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    mol = Chem.AddHs(mol)
    if mol.GetNumAtoms() > MAX_ATOMS:
        return None
    distances = Chem.GetDistanceMatrix(mol)
    polar = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() in ("N", "O")]
    donors = [i for i in polar if mol.GetAtomWithIdx(i).GetTotalNumHs(includeNeighbors=True) > 0]
    kinds = {mol.GetAtomWithIdx(a).GetSymbol() for d in donors for a in polar
             if a != d and MIN_BONDS <= distances[d, a] <= MAX_BONDS}
    return "N" if "N" in kinds else ("O" if kinds else None)


def main() -> None:
    RDLogger.DisableLog("rdApp.*")
    rows = {"N": [], "O": []}
    for path in SOURCES:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                kind = acceptor_kind(row["smiles"])
                if kind:
                    rows[kind].append(row)
    picked = []
    for kind, count in (("N", N_NITROGEN), ("O", N_OXYGEN)):
        order = np.random.default_rng(SEED).permutation(len(rows[kind]))[:count]
        picked += [rows[kind][i] for i in sorted(order)]
        print(f"{kind} acceptor: {len(rows[kind])} candidates, {min(count, len(rows[kind]))} drawn")
    with open(OUTPUT, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "smiles"])
        writer.writerows([r["name"], r["smiles"]] for r in picked)
    print(f"{len(picked)} molecules -> {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
