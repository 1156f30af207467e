#!/usr/bin/env python
"""Accuracy of a compiled student against its teacher.

    python protocols/accuracy.py --student tiny --dataset data/test.h5
    python protocols/accuracy.py --student tiny --systems ethanol,aspirin --teacher gfn2-xtb

With a dataset (HDF5 from ``openmm-distill label``) its teacher labels are
used; otherwise RDKit conformers of each system are randomly displaced and
labelled live by the teacher. Reports force R^2, RMSE, MAE, mean angular
error, percentiles, per-element MAE and energy MAE per atom (absolute and
offset-corrected); writes accuracy.json, parity and error-histogram PNGs and
summary.md. All options: ``openmm-distill protocol accuracy --help``.
"""
import argparse

import openmm_distill as od  # first: imports torch before openmm (openmm-torch needs it)
from openmm_distill.protocols import AccuracySettings, run_accuracy_protocol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="shipped student name or compiled .pt file")
    parser.add_argument("--dataset", help="HDF5 dataset with teacher labels")
    parser.add_argument("--systems", help="systems to sample (or, with --dataset, molecules to keep)")
    parser.add_argument("--teacher", help="teacher for live labels (default: the student's, else gfn2-xtb)")
    parser.add_argument("--teacher-weights", help="Orb-v2 checkpoint for --teacher orb-v2")
    parser.add_argument("--full", action="store_true", help="200 structures per molecule (quick: 24)")
    parser.add_argument("--output", help="output folder (default runs/protocols/<student>/accuracy)")
    args = parser.parse_args(argv)

    student = od.load_student(args.student)
    settings = AccuracySettings.full() if args.full else AccuracySettings.quick()
    systems = args.systems if args.dataset else (args.systems or "ethanol,aspirin,alanine_dipeptide")
    result = run_accuracy_protocol(student, systems, settings, args.output, dataset=args.dataset,
                                   teacher=args.teacher, teacher_weights=args.teacher_weights)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
