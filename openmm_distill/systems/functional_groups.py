"""Functional groups by SMARTS: which chemistry a molecule carries.

Used to report coverage: how many training molecules carry each group, and how
accurate a student is on held-out molecules that carry it. The table is ordered
from common to rare groups; a molecule may carry several. The rare groups named
first in the blind-set analysis (trifluoromethoxy, P-Cl, biguanide, disulfide,
thiocarbamoyl, sulfonyl amidine, cyclopropylamine) each have their own row.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Dict, Iterable, List, Tuple

# (name, SMARTS). Hydrogens are implicit in SMARTS matching on RDKit molecules from SMILES.
FUNCTIONAL_GROUPS: Tuple[Tuple[str, str], ...] = (
    ("aromatic ring", "a1aaaaa1"),
    ("aromatic heterocycle", "[n,o,s;a]"),
    ("alkene", "[CX3;!a]=[CX3;!a]"),
    ("alkyne", "C#C"),
    ("alcohol", "[OX2H][CX4]"),
    ("phenol", "[OX2H]c"),
    ("ether", "[OD2]([#6;!$(C=O)])[#6;!$(C=O)]"),
    ("aldehyde or ketone", "[CX3;!$(C-[O,N,S])](=O)"),
    ("carboxylic acid", "C(=O)[OX2H]"),
    ("ester", "[#6]C(=O)O[#6]"),
    ("amide", "C(=O)[NX3]"),
    ("urea or carbamate", "[N,O]C(=O)[NX3]"),
    ("primary or secondary amine", "[NX3;H2,H1;!$(N-C=[O,S,N]);!$(N-a);!$(N-S)][CX4]"),
    ("tertiary amine", "[NX3;H0;!$(N-C=[O,S,N]);!$(N-a);!$(N-S)]([CX4])([CX4])[CX4]"),
    ("aniline", "[NX3;!$(N-C=[O,S])]-c"),
    ("amidine or guanidine", "[NX3]C(=[NX2])"),
    ("biguanide", "NC(=N)NC(=N)N"),
    ("nitrile", "C#N"),
    ("imine or oxime", "[CX3;!$(C-[NX3])]=[NX2;!a]"),
    ("hydrazine or hydrazone", "[NX3][NX2,NX3]"),
    ("fluoro", "[F]"),
    ("trifluoromethyl", "C(F)(F)F"),
    ("trifluoromethoxy", "OC(F)(F)F"),
    ("chloro", "[Cl]"),
    ("thiol or thioether", "[SX2;!$(S-S)]([#6,#1])[#6]"),
    ("disulfide", "[SX2][SX2]"),
    ("thiocarbonyl (thioamide, thiourea, thiocarbamoyl)", "C=[SX1]"),
    ("sulfoxide", "[SX3](=O)([#6])[#6]"),
    ("sulfone", "[SX4](=O)(=O)([#6])[#6]"),
    ("sulfonamide", "[SX4](=O)(=O)[NX3]"),
    ("sulfonyl amidine", "[SX4](=O)(=O)N=C"),
    ("phosphate or phosphonate ester", "P(=O)(O[#6])"),
    ("phosphorus-chlorine bond", "P-Cl"),
    ("phosphorus, other", "[#15;!$(P(=O)O[#6]);!$(P-Cl)]"),
    ("cyclopropyl", "[CX4]1[CX4][CX4]1"),
    ("cyclopropylamine", "[NX3][CX4]1[CX4][CX4]1"),
    ("lactam or lactone", "[C;R](=O)[N,O;R]"),
    ("fused rings", "[R2]"),
)


@lru_cache(maxsize=None)
def _patterns():
    from rdkit import Chem

    return tuple((name, Chem.MolFromSmarts(smarts)) for name, smarts in FUNCTIONAL_GROUPS)


def functional_groups(smiles: str) -> List[str]:
    """Names of the groups a molecule carries, in table order (empty if RDKit cannot read it)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return []
    return [name for name, pattern in _patterns() if mol.HasSubstructMatch(pattern)]


def group_counts(smiles: Iterable[str]) -> Dict[str, int]:
    """How many of the molecules carry each group (every group of the table, zero included)."""
    counts = Counter(group for s in smiles for group in functional_groups(s))
    return {name: counts.get(name, 0) for name, _ in FUNCTIONAL_GROUPS}
