"""Rule 7 of ``make_training_chemistry.py``: molecules assembled from templates for the groups no source has.

MOSES (ZINC Clean Leads) filters out most hydrazines, biguanides, thiocarbonyls, disulfides and all
phosphorus, so rule 6 cannot find them there. Here each such group has SMILES templates with slots
(``{a}``, ``{b}``) filled from one vocabulary of common substituents (an empty slot is hydrogen). For each
group still rare after rules 1 to 6, the filled templates are taken in the order of SHA-256 of
``SALT + canonical SMILES`` until the group is carried by ``RARE_BELOW`` molecules of the lists. A
molecule counts for every rare group it carries. The choice depends on the committed lists only.
"""
from __future__ import annotations

from itertools import product
from typing import Dict, Iterable, List, Set

from rules import admitted, rank

SALT = "openmm-distill/train-chemistry/assembled/v1:"

# Substituents written from the attaching atom; ring closures stay inside each one, so any two
# can sit in one template.
SUBSTITUENTS = (
    "", "C", "CC", "CCC", "C(C)C", "C(C)(C)C", "C1CC1", "C1CCCC1", "C1CCCCC1", "CC=C", "CC#C", "CCOC",
    "CCO", "CC(F)(F)F", "CCN(C)C", "CC(=O)OC", "c1ccccc1", "c1ccc(F)cc1", "c1ccc(Cl)cc1", "c1ccc(OC)cc1",
    "c1ccc(C)cc1", "c1ccc(C#N)cc1", "c1ccncc1", "c1cccs1", "c1ccco1", "c1cnccn1", "Cc1ccccc1",
    "C1CCOCC1", "C1CCN(C)CC1", "CC(=O)N",
)

# Group name (a row of openmm_distill.systems.functional_groups) -> templates carrying it.
TEMPLATES: Dict[str, tuple] = {
    "hydrazine or hydrazone": ("{a}NN{b}", "{a}C(=O)NN{b}", "{a}C(=O)NN=C{b}", "{a}N(C)N=C(C){b}",
                               "{a}S(=O)(=O)NN=C{b}"),
    "biguanide": ("{a}NC(=N)NC(=N)N{b}", "CN(C)C(=N)NC(=N)N{a}"),
    "imine or oxime": ("{a}C(C)=NO{b}", "{a}C=NO{b}", "{a}C=N{b}"),
    "trifluoromethoxy": ("FC(F)(F)Oc1ccc(cc1){a}", "FC(F)(F)OC{a}", "FC(F)(F)Oc1cccc(c1)C(=O)N{a}"),
    "disulfide": ("{a}SS{b}", "{a}CSSC{b}", "CN(C)C(=S)SS{a}", "{a}SSCC(=O)N{b}"),
    "thiocarbonyl (thioamide, thiourea, thiocarbamoyl)": ("{a}C(=S)N{b}", "{a}NC(=S)N{b}", "{a}OC(=S)N{b}",
                                                          "{a}SC(=S)N(C){b}", "CN(C)C(=S)SC{a}"),
    "sulfoxide": ("{a}S(=O){b}", "{a}CS(=O)C{b}"),
    "sulfonyl amidine": ("{a}S(=O)(=O)N=CN(C){b}", "{a}S(=O)(=O)N=C(N){b}"),
    "phosphate or phosphonate ester": ("O=P(O{a})(O{b})OC", "{a}P(=O)(OC)O{b}", "O=P(OCC)(N{a})O{b}"),
    "phosphorus-chlorine bond": ("ClP(=O)(O{a})O{b}", "ClP(=O)(OC){a}", "ClP(=S)(OC)O{a}", "ClP(Cl){a}",
                                 "ClP({a})N(C){b}"),
    "phosphorus, other": ("O=P(C)({a}){b}", "CP({a}){b}", "S=P(OC)(OC)O{a}", "O=P(N(C)C)(N(C)C)N{a}"),
}


def _filled(templates: Iterable[str]) -> Iterable[str]:
    for template in templates:
        slots = template.count("{")
        for fill in product(SUBSTITUENTS, repeat=slots):
            yield template.format(**dict(zip("ab", fill)))


def assembled_rows(counts: Dict[str, int], taken: Set[str], rare_below: int) -> List[Dict[str, object]]:
    """Rows of rule 7 given how many list molecules carry each group (``counts``) and the SMILES already listed."""
    from rdkit import Chem, RDLogger

    from openmm_distill.systems.functional_groups import functional_groups

    RDLogger.DisableLog("rdApp.*")  # templates filled with an empty slot may not parse; they are skipped
    short = {g: rare_below - n for g, n in counts.items() if n < rare_below and g in TEMPLATES}
    taken = set(taken)
    rows: List[Dict[str, object]] = []
    for group in TEMPLATES:
        if short.get(group, 0) <= 0:
            continue
        candidates = {}
        for smiles in _filled(TEMPLATES[group]):
            mol = Chem.MolFromSmiles(smiles)
            if mol is not None:
                candidates.setdefault(Chem.MolToSmiles(mol, isomericSmiles=False), mol)
        for canonical in sorted(candidates, key=lambda s: rank(SALT, s)):
            if short[group] <= 0:
                break
            kept = admitted(candidates[canonical])
            groups = functional_groups(kept[0]) if kept else []
            if group not in groups or kept[0] in taken:
                continue
            taken.add(kept[0])
            for g in groups:
                if g in short:
                    short[g] -= 1
            rows.append({"name": f"chemrare_{len(rows) + 1:04d}", "smiles": kept[0], "n_atoms": kept[1],
                         "source": "assembled"})
    return rows
