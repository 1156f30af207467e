#!/usr/bin/env python
"""NVE energy conservation of a compiled student.

    python protocols/nve.py --student tiny --systems ethanol,aspirin [--full]

Each system is thermalised with Langevin dynamics, then run with velocity
Verlet (0.5 fs); the total-energy drift is the slope of a linear fit, in
meV/atom/ps (pass: |drift| <= 0.1). Writes nve.json, nve_<system>.png/.csv
and summary.md. All options: ``openmm-distill protocol nve --help``.
"""
import argparse

import openmm_distill as od  # first: imports torch before openmm (openmm-torch needs it)
from openmm_distill.protocols import NVESettings, run_nve_protocol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="shipped student name or compiled .pt file")
    parser.add_argument("--systems", default="ethanol,aspirin,alanine_dipeptide",
                        help="comma-separated catalog names, structure files, SMILES or water:N")
    parser.add_argument("--full", action="store_true", help="10 ps thermalisation + 100 ps NVE (quick: 1 + 5 ps)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--precision", choices=["mixed", "double"], help="CUDA/OpenCL precision (default mixed)")
    parser.add_argument("--output", help="output folder (default runs/protocols/<student>/nve)")
    args = parser.parse_args(argv)

    student = od.load_student(args.student)
    settings = (NVESettings.full if args.full else NVESettings.quick)(temperature_k=args.temperature)
    result = run_nve_protocol(student, args.systems, settings, args.output, precision=args.precision)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
