#!/usr/bin/env python
"""Full validation report of a compiled student: accuracy, NVE, stability, throughput, verdicts.

    python protocols/report.py --student tiny --systems ethanol,aspirin,alanine_dipeptide
    python protocols/report.py --student tiny --split test --max-systems 5 --full

Runs the four protocols into one folder (subfolders per protocol), gives each
system a verdict (production / screening only / not recommended; thresholds
are written into the summary) and replaces the Validation section of the
student's model card (<student>.md next to the compiled file).
All options: ``openmm-distill protocol report --help``.
"""
import argparse

import openmm_distill as od  # first: imports torch before openmm (openmm-torch needs it)
from openmm_distill.protocols import run_report, system_specs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="shipped student name or compiled .pt file")
    parser.add_argument("--systems", help="comma-separated systems (default ethanol,aspirin,alanine_dipeptide)")
    parser.add_argument("--split", choices=["train", "validation", "test"], help="all catalog molecules of a split")
    parser.add_argument("--max-systems", type=int, help="use only the first N systems")
    parser.add_argument("--full", action="store_true", help="full-length protocols (quick by default)")
    parser.add_argument("--teacher", help="teacher for accuracy (default: the student's, else gfn2-xtb)")
    parser.add_argument("--dataset", help="HDF5 dataset for accuracy instead of live labels")
    parser.add_argument("--no-model-card", action="store_true", help="leave <student>.md alone")
    parser.add_argument("--output", help="output folder (default runs/protocols/<student>/report)")
    args = parser.parse_args(argv)

    student = od.load_student(args.student)
    systems = system_specs(args.systems, args.split, args.max_systems)
    result = run_report(student, systems, full=args.full, output_dir=args.output, teacher=args.teacher,
                        dataset=args.dataset, update_card=not args.no_model_card)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
