"""``openmm-distill systems``: look at the molecule catalog, write structures and water boxes."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from openmm_distill.errors import ConfigError

HELP = "list catalog molecules (by split or category), or write a 3D structure or water box"
DESCRIPTION = """List the molecules of openmm_distill/systems/data/molecules.csv, or write files.

examples:
  openmm-distill systems --summary
  openmm-distill systems --split test
  openmm-distill systems --write caffeine -o caffeine.sdf      (ETKDG + MMFF, explicit H)
  openmm-distill systems --water-box 1667 -o water_5k.pdb      (periodic, 1 g/cm^3)
  openmm-distill systems --analogues 600 --split train -o analogues.csv
      (600 new molecules made by small edits of the training molecules, none equal to a
       validation or test molecule; label them with `openmm-distill label --input analogues.csv`)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from openmm_distill.systems.catalog import SPLITS

    parser.add_argument("--split", choices=SPLITS, help="only molecules of this split")
    parser.add_argument("--category", help="only molecules of this category")
    parser.add_argument("--summary", action="store_true", help="print counts per category and split")
    parser.add_argument("--write", metavar="NAME", help="write a 3D structure of this catalog molecule (.sdf or .pdb)")
    parser.add_argument("--water-box", type=int, metavar="N", help="write a periodic box of N waters (.pdb)")
    parser.add_argument("-o", "--output", type=Path, help="output file for --write / --water-box")
    parser.add_argument("--analogues", type=int, metavar="N",
                        help="write N analogues of the --split molecules (default train) as a name,smiles CSV; "
                             "molecules of the other splits are never produced")
    parser.add_argument("--max-atoms", type=int, default=40,
                        help="largest analogue, hydrogens included (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="embedding / water-box / analogue seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from openmm_distill import systems

    if args.analogues is not None:
        return _write_analogues(systems, args)
    if args.write or args.water_box is not None:
        if args.output is None:
            raise ConfigError("--write and --water-box need --output PATH")
        if args.water_box is not None:
            box = systems.water_box(args.water_box, seed=args.seed)
            _require_suffix(args.output, (".pdb",))
            systems.write_pdb(box, args.output)
            print(f"wrote {args.output}: {box.n_atoms} atoms, cubic box {box.box[0, 0]:.3f} Angstrom")
        else:
            _write_molecule(systems, args.write, args.output, args.seed)
        return 0

    entries = systems.molecules(args.split)
    if args.category:
        categories = sorted({e.category for e in entries})
        if args.category not in categories:
            raise ConfigError(f"unknown category {args.category!r}; allowed: {', '.join(categories)}")
        entries = [e for e in entries if e.category == args.category]
    if args.summary:
        counts = Counter((e.category, e.split) for e in entries)
        print(f"{'category':18s} {'train':>6s} {'valid':>6s} {'test':>6s}")
        for category in sorted({e.category for e in entries}):
            row = [counts[(category, s)] for s in systems.SPLITS]
            print(f"{category:18s} {row[0]:6d} {row[1]:6d} {row[2]:6d}")
        print(f"{'total':18s} " + " ".join(f"{sum(1 for e in entries if e.split == s):6d}" for s in systems.SPLITS))
        return 0
    for entry in entries:
        print(f"{entry.name:36s} {entry.split:10s} {entry.category:16s} {entry.smiles}")
    return 0


def _write_analogues(systems, args: argparse.Namespace) -> int:
    import csv

    from openmm_distill.systems.analogues import make_analogues

    if args.output is None:
        raise ConfigError("--analogues needs --output PATH (.csv)")
    _require_suffix(args.output, (".csv",))
    split = args.split or "train"
    parents = [(e.name, e.smiles) for e in systems.molecules(split)]
    others = [e.smiles for e in systems.molecules() if e.split != split]
    pairs = make_analogues(parents, args.analogues, exclude=others, seed=args.seed, max_atoms=args.max_atoms)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "smiles"])
        writer.writerows(pairs)
    print(f"wrote {args.output}: {len(pairs)} analogues of the {len(parents)} {split} molecules "
          f"(none equal to any of the {len(others)} molecules of the other splits)")
    return 0


def _require_suffix(path: Path, allowed: tuple) -> None:
    if path.suffix.lower() not in allowed:
        raise ConfigError(f"output {path} must end with {' or '.join(allowed)}")


def _write_molecule(systems, name: str, output: Path, seed: int) -> None:
    from rdkit import Chem

    _require_suffix(output, (".sdf", ".pdb"))
    entry = systems.get_molecule(name)
    mol = systems.embed_smiles(entry.smiles, seed=seed)
    if output.suffix.lower() == ".sdf":
        mol.SetProp("_Name", entry.name)
        with Chem.SDWriter(str(output)) as writer:
            writer.write(mol)
    else:
        systems.write_pdb(systems.structure_from_rdkit(mol, name=entry.name), output)
    print(f"wrote {output}: {entry.name}, {mol.GetNumAtoms()} atoms with explicit hydrogens")
