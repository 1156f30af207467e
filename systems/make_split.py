#!/usr/bin/env python
"""Reproduce the ``split`` column of ``openmm_distill/systems/data/molecules.csv``.

The CSV is the declaration of the train/validation/test split; this script only
regenerates it, so a reviewer can check that the column was not hand-tuned.

Rule (stratified by category, deterministic, no random state):

1. The protocol molecules in :data:`PROTOCOL_TEST` always go to ``test``: the
   protocols use them to validate students on molecules they never saw.
2. Within each category, the other molecules are ranked by the SHA-256 of
   ``SALT + name``. With ``n`` molecules in the category, the first
   ``round(0.1 n)`` (minus the protocol molecules already there) go to ``test``,
   the next ``round(0.1 n)`` to ``validation``, the rest to ``train``.

The rank depends only on the name, so re-running on the same CSV gives the same
column, whatever the row order. Adding a molecule to a category can move at
most a molecule or two across a boundary of that category; review the diff.

Usage::

    python systems/make_split.py            # rewrite the split column in place
    python systems/make_split.py --check    # exit 1 if the column differs
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

CSV_PATH = Path(__file__).resolve().parents[1] / "openmm_distill" / "systems" / "data" / "molecules.csv"
FIELDS = ["name", "smiles", "category", "split"]
SALT = "openmm-distill/split/v1:"
FRACTIONS = {"test": 0.1, "validation": 0.1}
# Structures used by the protocol scripts (see openmm_distill/systems/data/structures/): held out on purpose.
PROTOCOL_TEST = (
    "ethanol",
    "aspirin",
    "paracetamol",
    "alanine_dipeptide",
    "deoxyadenosine_monophosphate",
)


def _rank_key(name: str) -> str:
    return hashlib.sha256((SALT + name).encode("utf-8")).hexdigest()


def _round_half_up(x: float) -> int:
    # Python's round() rounds half to even; half-up is easier to explain.
    return int(x + 0.5)


def assign_splits(rows: Iterable[Tuple[str, str]]) -> Dict[str, str]:
    """Map each molecule name to ``train``, ``validation`` or ``test``.

    Parameters
    ----------
    rows : iterable of (name, category)

    Returns
    -------
    dict
        name -> split.
    """
    by_category: Dict[str, List[str]] = defaultdict(list)
    for name, category in rows:
        by_category[category].append(name)
    split: Dict[str, str] = {}
    for names in by_category.values():
        n = len(names)
        n_test = _round_half_up(FRACTIONS["test"] * n)
        n_val = _round_half_up(FRACTIONS["validation"] * n)
        forced = [name for name in names if name in PROTOCOL_TEST]
        ranked = sorted((name for name in names if name not in PROTOCOL_TEST), key=_rank_key)
        n_test_ranked = max(0, n_test - len(forced))
        for name in forced + ranked[:n_test_ranked]:
            split[name] = "test"
        for name in ranked[n_test_ranked:n_test_ranked + n_val]:
            split[name] = "validation"
        for name in ranked[n_test_ranked + n_val:]:
            split[name] = "train"
    return split


def read_rows(path: Path = CSV_PATH) -> List[Dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=CSV_PATH)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)

    rows = read_rows(args.csv)
    split = assign_splits((row["name"], row["category"]) for row in rows)
    changed = [row["name"] for row in rows if row.get("split") != split[row["name"]]]
    if args.check:
        if changed:
            print(f"{len(changed)} molecules differ from the rule, e.g. {changed[:5]}", file=sys.stderr)
            return 1
        print(f"split column of {args.csv} matches the rule ({len(rows)} molecules)")
        return 0
    for row in rows:
        row["split"] = split[row["name"]]
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    counts = Counter(split.values())
    print(f"wrote {args.csv}: {dict(sorted(counts.items()))}; {len(changed)} rows changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
