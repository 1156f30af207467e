#!/usr/bin/env python
"""NVT stability of a compiled student at 300 K and 500 K.

    python protocols/stability.py --student tiny --systems ethanol,aspirin [--full]

Langevin dynamics under a watchdog that stops a run at non-finite or huge
forces, a bond changed by more than 0.5 Å, or a hydrogen more than 2.5 Å from
its partner; reports survival or time to failure, saves DCD trajectories and
analyses them with mdtraj (RMSD, bond lengths). Writes stability.json,
stability_<system>.png, DCD/PDB files and summary.md.
All options: ``openmm-distill protocol stability --help``.
"""
import argparse

import openmm_distill as od  # first: imports torch before openmm (openmm-torch needs it)
from openmm_distill.protocols import StabilitySettings, run_stability_protocol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="shipped student name or compiled .pt file")
    parser.add_argument("--systems", default="ethanol,aspirin,alanine_dipeptide",
                        help="comma-separated catalog names, structure files, SMILES or water:N")
    parser.add_argument("--temperatures", default="300,500", help="comma-separated, K")
    parser.add_argument("--full", action="store_true", help="100 ps per temperature (quick: 2 ps)")
    parser.add_argument("--output", help="output folder (default runs/protocols/<student>/stability)")
    args = parser.parse_args(argv)

    student = od.load_student(args.student)
    temperatures = tuple(float(t) for t in args.temperatures.split(","))
    settings = (StabilitySettings.full if args.full else StabilitySettings.quick)(temperatures_k=temperatures)
    result = run_stability_protocol(student, args.systems, settings, args.output)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
