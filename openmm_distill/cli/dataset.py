"""``openmm-distill dataset``: statistics, validation and merging of labelled datasets."""
from __future__ import annotations

import argparse
import json
import os
import sys

HELP = "inspect (stats), check (validate) and combine (merge) labelled HDF5 datasets"
DESCRIPTION = """Work with labelled datasets written by `openmm-distill label`.

  stats     counts per element, structure sizes, energy and force distributions
            (text report; --png writes a figure)
  validate  flag NaN/Inf, absurd forces (> --max-force eV/Angstrom) and duplicate
            geometries; --output writes a copy without them
  merge     concatenate datasets from the same teacher (e.g. shards of an array job)

examples:
  openmm-distill dataset stats train.h5 --png train_stats.png
  openmm-distill dataset validate train.h5 --max-force 20 --output train_clean.h5
  openmm-distill dataset merge train.shard*-of-16.h5 -o train.h5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    stats = sub.add_parser("stats", help="print statistics; optionally write a PNG",
                           description="Counts per element, size histogram, energy per atom and force distributions.")
    stats.add_argument("path", help="dataset file (.h5)")
    stats.add_argument("--png", help="write a 2x2 figure to this PNG file")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON instead of text")

    validate = sub.add_parser("validate", help="flag NaN/Inf, absurd forces and duplicates",
                              description="Flag structures with NaN/Inf values, a force above --max-force, or a "
                                          "duplicate geometry of the same molecule; optionally write a cleaned copy.")
    validate.add_argument("path", help="dataset file (.h5)")
    validate.add_argument("--max-force", type=float, default=20.0,
                          help="largest acceptable per-atom |F|, eV/Angstrom (default 20)")
    validate.add_argument("--duplicate-tolerance", type=float, default=1e-3,
                          help="coordinates closer than this (Angstrom) count as duplicates (default 1e-3)")
    validate.add_argument("--output", help="write the structures that pass to this file")
    validate.add_argument("--overwrite", action="store_true", help="replace --output if it exists")

    merge = sub.add_parser("merge", help="concatenate datasets from the same teacher",
                           description="Concatenate datasets labelled with the same teacher and settings. Keys must "
                                       "not overlap; failures and completed molecules are merged too.")
    merge.add_argument("inputs", nargs="+", help="dataset files, in order")
    merge.add_argument("-o", "--output", required=True, help="merged file")
    merge.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    merge.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")


def run(args: argparse.Namespace) -> int:
    if args.action == "stats":
        from openmm_distill.data.statistics import compute_statistics, plot_statistics

        stats = compute_statistics(args.path)
        if args.json:
            data = {k: v for k, v in vars(stats).items() if not k.startswith("_")}
            print(json.dumps(data, indent=1, default=str))
        else:
            print(f"{args.path}")
            print(stats.format())
        if args.png:
            plot_statistics(stats, args.png)
            print(f"wrote {args.png}", file=sys.stderr)
        return 0
    if args.action == "validate":
        from openmm_distill.data.validation import filter_dataset, validate_dataset

        report = validate_dataset(args.path, max_force=args.max_force, duplicate_tolerance=args.duplicate_tolerance)
        print(report.summary())
        if args.output:
            n = filter_dataset(
                args.path,
                args.output,
                report.keep_indices,
                overwrite=args.overwrite,
                note=f"validate: max_force={args.max_force} eV/A, duplicate_tolerance={args.duplicate_tolerance} A; "
                     f"excluded {report.counts} from {os.path.basename(args.path)}",
            )
            print(f"wrote {n} structures to {args.output}")
        return 0
    if args.action == "merge":
        from openmm_distill.data.merge import merge_datasets

        report = merge_datasets(
            args.inputs,
            args.output,
            overwrite=args.overwrite,
            compression=args.compression,
            creation_command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        )
        print(report.summary())
        return 0
    raise AssertionError(args.action)  # pragma: no cover - argparse restricts the choices
