#!/usr/bin/env python
"""MD throughput of students vs their teachers and a classical force field.

    python protocols/throughput.py --students ultra-tiny.pt,tiny.pt,original.pt [--full]

Times each student in OpenMM on the best platform, GFN2-xTB and Orb-v2
(random weights unless --orb-weights; same cost) through ASE, and amber14 /
amber14-tip3p where it has templates, on systems from one molecule to a
periodic water box (--full: up to 6,000 atoms). Writes throughput.json, a
log-log throughput.png (ms/step vs atoms) and summary.md with the speedup
table. All options: ``openmm-distill protocol throughput --help``.
"""
import argparse

import openmm_distill as od  # first: imports torch before openmm (openmm-torch needs it)
from openmm_distill.protocols import ThroughputSettings, run_throughput_protocol
from openmm_distill.protocols.throughput import FULL_SYSTEMS, QUICK_SYSTEMS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", required=True, help="comma-separated shipped names or compiled .pt files")
    parser.add_argument("--systems", help=f"comma-separated systems (quick default {','.join(QUICK_SYSTEMS)}; "
                                          f"--full default {','.join(FULL_SYSTEMS)})")
    parser.add_argument("--full", action="store_true", help="longer timing windows, larger systems")
    parser.add_argument("--teachers", default="gfn2-xtb,orb-v2", help="comma-separated, or 'none'")
    parser.add_argument("--orb-weights", help="pretrained Orb-v2 checkpoint (optional)")
    parser.add_argument("--output", help="output folder (default runs/protocols/<first student>/throughput)")
    args = parser.parse_args(argv)

    students = [od.load_student(s) for s in args.students.split(",")]
    teachers = () if args.teachers == "none" else tuple(args.teachers.split(","))
    settings = (ThroughputSettings.full if args.full else ThroughputSettings.quick)(
        teachers=teachers, orb_weights=args.orb_weights)
    systems = args.systems or ",".join(FULL_SYSTEMS if args.full else QUICK_SYSTEMS)
    result = run_throughput_protocol(students, systems, settings, args.output)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
