"""New training molecules made by small edits of given ones (RDKit).

Why: the shipped students fit their training molecules far better than unseen
ones (force R^2 0.997 on training molecules vs 0.984 on validation molecules
for ``original``), so what limits them is how many *different* molecules they
saw, not how long they trained. Analogues of the training molecules add
chemistry cheaply, without touching the validation or test molecules.

Each analogue is its parent with one or two edits:

* substitute: an H on a heavy atom becomes F, Cl, CH3, OH, NH2, OCH3 or C#N;
* swap: a chain CH2 becomes NH, O or S; an aromatic CH becomes N; an O becomes S;
* trim: a terminal heavy atom is removed.

Kept only if RDKit sanitises it, it is neutral and closed-shell, uses only the
allowed elements, has at most ``max_atoms`` atoms with hydrogens, and differs
(ignoring stereochemistry) from every excluded molecule and every earlier analogue.
Deterministic for a given seed and parent list.
"""
from __future__ import annotations

import random
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from openmm_distill.errors import ConfigError

DEFAULT_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl")
# Substituent: atoms (element, bond order to the previous atom of the chain).
SUBSTITUENTS = {
    "fluoro": [("F", 1)],
    "chloro": [("Cl", 1)],
    "methyl": [("C", 1)],
    "hydroxy": [("O", 1)],
    "amino": [("N", 1)],
    "methoxy": [("O", 1), ("C", 1)],
    "cyano": [("C", 1), ("N", 3)],
}
EDITS = ("substitute", "swap", "trim")


def canonical_key(smiles: str) -> Optional[str]:
    """Canonical SMILES without stereochemistry (None if RDKit cannot read it): what 'same molecule' means here."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)


def _substitute(rw, rng: random.Random) -> bool:
    from rdkit import Chem

    sites = [a.GetIdx() for a in rw.GetAtoms() if a.GetAtomicNum() > 1 and a.GetTotalNumHs() > 0]
    if not sites:
        return False
    previous = rng.choice(sites)
    order = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    for symbol, bond in SUBSTITUENTS[rng.choice(sorted(SUBSTITUENTS))]:
        new = rw.AddAtom(Chem.Atom(symbol))
        rw.AddBond(previous, new, order[bond])
        previous = new
    return True


def _swap(rw, rng: random.Random) -> bool:
    options = []
    for a in rw.GetAtoms():
        if a.GetSymbol() == "C" and not a.GetIsAromatic() and a.GetDegree() == 2 and a.GetTotalNumHs() == 2:
            options += [(a.GetIdx(), "N"), (a.GetIdx(), "O"), (a.GetIdx(), "S")]
        elif a.GetSymbol() == "C" and a.GetIsAromatic() and a.GetDegree() == 2 and a.GetTotalNumHs() == 1:
            options.append((a.GetIdx(), "N"))
        elif a.GetSymbol() == "O":
            options.append((a.GetIdx(), "S"))
    if not options:
        return False
    idx, symbol = rng.choice(options)
    atom = rw.GetAtomWithIdx(idx)
    atom.SetAtomicNum({"N": 7, "O": 8, "S": 16}[symbol])
    atom.SetNumExplicitHs(0)
    atom.SetNoImplicit(False)
    return True


def _trim(rw, rng: random.Random) -> bool:
    if rw.GetNumAtoms() <= 3:
        return False
    terminal = [a.GetIdx() for a in rw.GetAtoms() if a.GetDegree() == 1]
    if not terminal:
        return False
    rw.RemoveAtom(rng.choice(terminal))
    return True


_EDIT_FUNCTIONS = {"substitute": _substitute, "swap": _swap, "trim": _trim}


def _edited(smiles: str, rng: random.Random, n_edits: int):
    """The parent with ``n_edits`` random edits, sanitised, or None."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    rw = Chem.RWMol(mol)
    for _ in range(n_edits):
        rw.UpdatePropertyCache(strict=False)  # hydrogen counts after the previous edit
        if not _EDIT_FUNCTIONS[rng.choice(EDITS)](rw, rng):
            return None
    out = rw.GetMol()
    try:
        Chem.SanitizeMol(out)
    except Exception:  # RDKit raises several types for bad valences and aromaticity
        return None
    if len(Chem.GetMolFrags(out)) != 1:
        return None
    return out


def make_analogues(parents: Sequence[Tuple[str, str]], n: int, *, exclude: Iterable[str] = (), seed: int = 0,
                   max_atoms: int = 40, elements: Sequence[str] = DEFAULT_ELEMENTS,
                   max_tries_per_analogue: int = 50) -> List[Tuple[str, str]]:
    """``n`` analogues ``(name, smiles)`` of ``parents`` (``(name, smiles)`` pairs), parents taken in turn.

    ``exclude``: SMILES that no analogue may equal (ignoring stereochemistry), e.g. the
    validation and test molecules. Parents themselves are always excluded. Raises
    :class:`ConfigError` if ``n`` analogues cannot be found.
    """
    from rdkit import RDLogger

    if n < 0:
        raise ConfigError(f"number of analogues must be >= 0, got {n}")
    if max_atoms < 3:
        raise ConfigError(f"max_atoms must be at least 3, got {max_atoms}")
    if not parents:
        raise ConfigError("no parent molecules to make analogues of")
    allowed = set(elements)
    taken: Set[str] = {k for k in (canonical_key(s) for s in exclude) if k}
    taken |= {k for k in (canonical_key(s) for _, s in parents) if k}
    rng = random.Random(seed)
    RDLogger.DisableLog("rdApp.*")  # rejected edits are expected; RDKit would print each one
    try:
        return _collect(parents, n, taken, rng, max_atoms, allowed, max_tries_per_analogue)
    finally:
        RDLogger.EnableLog("rdApp.*")


def _collect(parents, n, taken, rng, max_atoms, allowed, max_tries_per_analogue) -> List[Tuple[str, str]]:
    from rdkit import Chem

    out: List[Tuple[str, str]] = []
    copies = {}
    failures = 0
    k = 0
    while len(out) < n:
        parent_name, parent_smiles = parents[k % len(parents)]
        k += 1
        mol = _edited(parent_smiles, rng, n_edits=rng.choice((1, 1, 2)))
        ok = mol is not None
        if ok:
            with_h = Chem.AddHs(mol)
            ok = (with_h.GetNumAtoms() <= max_atoms
                  and all(a.GetSymbol() in allowed for a in with_h.GetAtoms())
                  and Chem.GetFormalCharge(mol) == 0
                  and all(a.GetNumRadicalElectrons() == 0 for a in mol.GetAtoms()))
        # The same definition of "same molecule" as for the excluded ones (a round trip through SMILES).
        key = canonical_key(Chem.MolToSmiles(mol)) if ok else None
        if not ok or key in taken:
            failures += 1
            if failures > max_tries_per_analogue * max(n, 1):
                raise ConfigError(f"found only {len(out)} of {n} analogues after {failures} failed edits; "
                                  f"raise max_atoms ({max_atoms}) or give more parents")
            continue
        taken.add(key)
        copies[parent_name] = copies.get(parent_name, 0) + 1
        out.append((f"{parent_name}_analogue{copies[parent_name]}", key))
    return out
