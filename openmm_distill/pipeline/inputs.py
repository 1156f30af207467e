"""The pipeline's molecules per role (training, validation, test), read from the config.

Each entry of ``molecules.train`` / ``validation`` / ``test`` is whatever the
systems layer's resolver reads (:func:`openmm_distill.systems.resolve.molecule_list`):
a catalog name, a SMILES, a CSV (``name,smiles``) or ``.smi`` list, or an
SDF/MOL/PDB structure with explicit hydrogens. A user with only a few molecules
gives training molecules only; the validation and test sets are then held-out
geometries of those same molecules (other conformers and hot MD, sampled with
other seeds), and the report says so.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from openmm_distill.errors import ConfigError, StructureError, UnsupportedElementError

Molecule = Tuple[str, str]  # (name, SMILES)


def read_molecules(entries: Sequence[str], base_dir: str = "") -> List[Molecule]:
    """``(name, smiles)`` for each entry (see the module docstring), in order.

    A relative file path is looked up in the working directory, then in ``base_dir``
    (the config's folder). A structure file without hydrogens is an error here, not a
    warning: a student trained on molecules that lost their hydrogens learns broken chemistry.
    """
    from openmm_distill.systems.io import HydrogenWarning
    from openmm_distill.systems.resolve import molecule_list

    beside = [Path(base_dir) / e if base_dir and not Path(e).exists() and (Path(base_dir) / e).is_file() else e
              for e in entries]
    with warnings.catch_warnings():
        warnings.simplefilter("error", HydrogenWarning)
        try:
            return molecule_list([str(e) for e in beside])
        except HydrogenWarning as exc:
            raise StructureError(f"{exc}".split(". Students")[0] + "; the pipeline needs structures with "
                                 "explicit hydrogens") from None


def catalog_split(split: str) -> List[Molecule]:
    """Every catalog molecule of a split."""
    from openmm_distill.systems.catalog import molecules

    return [(m.name, m.smiles) for m in molecules(split)]


@dataclass
class MoleculeSets:
    """The molecules of each role, and whether validation and test are held-out geometries of the training ones.

    Attributes
    ----------
    train, validation, test : list of (name, SMILES)
    held_out : bool
        True when no validation or test molecules were given: both sets are then
        geometries of the training molecules that training never sees.
    """

    train: List[Molecule]
    validation: List[Molecule] = field(default_factory=list)
    test: List[Molecule] = field(default_factory=list)
    held_out: bool = False

    def all(self) -> List[Molecule]:
        """Every molecule once, training molecules first."""
        seen: Dict[str, Molecule] = {}
        for name, smiles in self.train + self.validation + self.test:
            seen.setdefault(name, (name, smiles))
        return list(seen.values())

    def describe(self) -> str:
        """One line for the log and the summary."""
        if self.held_out:
            return (f"{len(self.train)} molecules; validation and test sets are held-out conformers and hot "
                    "MD geometries of these same molecules (no molecule was held out)")
        return f"{len(self.train)} training, {len(self.validation)} validation and {len(self.test)} test molecules"


def collect_molecules(section, base_dir: str = "") -> MoleculeSets:
    """The :class:`MoleculeSets` of a config's ``molecules`` section (:class:`~.config.MoleculesSection`);
    relative file paths are also looked up in ``base_dir``."""
    roles = {}
    for role in ("train", "validation", "test"):
        mols = read_molecules(getattr(section, role), base_dir)
        split = getattr(section, f"{role}_split")
        if split:
            given = {n for n, _ in mols}
            mols += [m for m in catalog_split(split) if m[0] not in given]
        roles[role] = mols[: section.limit] if section.limit else mols
    names = [n for n, _ in roles["train"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"molecule name(s) {repeated[:5]} appear more than once in molecules.train; "
                          "names must be unique (rename them in the CSV or SDF)")
    held_out = not roles["validation"] and not roles["test"]
    return MoleculeSets(roles["train"], roles["validation"], roles["test"], held_out)


def elements_of(smiles: str) -> Dict[int, str]:
    """Atomic number -> element symbol of every element in a molecule, hydrogen included."""
    from openmm_distill.data.conformers import molecule_from_smiles

    return {atom.GetAtomicNum(): atom.GetSymbol() for atom in molecule_from_smiles(smiles).GetAtoms()}


def check_elements(molecules: Iterable[Molecule], known: Sequence[int], student: str) -> None:
    """Raise :class:`UnsupportedElementError` for the first molecule with an element ``student`` does not know.

    Called before any labelling: fine-tuning keeps the starting student's
    elements, so such a molecule could only fail after the teacher's work.
    """
    from openmm_distill.elements import check_supported

    for name, smiles in molecules:
        try:
            check_supported(elements_of(smiles), known, f"the starting student {student}")
        except UnsupportedElementError as exc:
            raise UnsupportedElementError(
                f"molecule {name!r} ({smiles}): {exc}; fine-tuning cannot add elements: set "
                "training.init_from: scratch to train a new student, or leave the molecule out") from None
