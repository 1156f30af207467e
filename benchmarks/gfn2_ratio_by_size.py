"""How a shipped student's MD step compares with GFN2-xTB as molecules grow.

Issue #5 asks for >= 20x over GFN2-xTB from 20 to 100 atoms. GFN2-xTB's cost grows
much faster with size than the student's, so the ratio rises with the atom count;
this script finds where it crosses the target. For each catalog molecule (default:
test-split molecules from 21 to 57 atoms) it times, in alternating blocks, one MD
step of the student through each OpenMM backend and one GFN2-xTB force call.

    python benchmarks/gfn2_ratio_by_size.py                                  # original, ~2 min
    python benchmarks/gfn2_ratio_by_size.py --student tiny --molecules aspirin,morphine
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from student_speed import BACKENDS, parse_backends, student_calls, teacher_call

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import DistillError
from openmm_distill.export.student import load_student
from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology
from openmm_distill.systems.catalog import get_molecule
from openmm_distill.timing import interleaved
from openmm_distill.units import ANGSTROM_TO_NM, MS_PER_S

DEFAULT_MOLECULES = "aspirin,carbamazepine,morphine,riboflavin,donepezil"  # 21, 30, 40, 47, 57 atoms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="original", help="shipped student name or compiled file (default: original)")
    parser.add_argument("--molecules", default=DEFAULT_MOLECULES, help="comma-separated catalog names (default: %(default)s)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="OpenMM backends to time (default: %(default)s)")
    parser.add_argument("--target", type=float, default=20.0, help="speedup over GFN2-xTB asked for (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as student_speed.py)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "gfn2_ratio_by_size.json"))
    args = parser.parse_args(argv)
    keep_freed_memory()  # students are timed with the allocator setting the CLI and protocols use
    backends = parse_backends(parser, args.backends)
    if args.target <= 0:
        parser.error(f"--target {args.target}: must be > 0")
    try:
        entries = [get_molecule(name) for name in args.molecules.split(",")]
        path = load_student(args.student).path  # reads the file: a missing or foreign one is reported here
    except (KeyError, FileNotFoundError, DistillError) as exc:
        parser.error(str(exc.args[0]) if exc.args else str(exc))  # KeyError's str() would add quotes
    torch.set_num_threads(args.threads)

    rows = []
    print(f"{args.student} student vs GFN2-xTB, {torch.get_num_threads()} thread(s); MD step, ms (speedup)", flush=True)
    for entry in entries:
        structure = structure_from_smiles(entry.smiles, seed=1)
        z, pos_nm = structure.atomic_numbers, structure.positions * ANGSTROM_TO_NM
        topology = structure_to_openmm_topology(structure)
        calls = {b: student_calls(path, z, pos_nm, None, topology, b)["md_step_ms"] for b in backends}
        calls["gfn2_xtb"] = teacher_call("gfn2-xtb", z, pos_nm)
        seconds = interleaved(calls, min_time=1.0)
        row = {"molecule": entry.name, "atoms": len(z), "gfn2_xtb_ms": MS_PER_S * seconds["gfn2_xtb"]}
        for b in backends:
            row[f"{b}_md_step_ms"] = MS_PER_S * seconds[b]
            row[f"{b}_speedup"] = seconds["gfn2_xtb"] / seconds[b]
        rows.append(row)
        cells = "  ".join(f"{b} {row[f'{b}_md_step_ms']:6.2f} ({row[f'{b}_speedup']:5.1f}x)" for b in backends)
        print(f"{entry.name:>16} {len(z):4d} atoms  GFN2-xTB {row['gfn2_xtb_ms']:7.1f}  {cells}", flush=True)
    for b in backends:
        reached = [r for r in rows if r[f"{b}_speedup"] >= args.target]
        where = ", ".join(f"{r['molecule']} ({r['atoms']})" for r in reached) or "none of these molecules"
        print(f"{b}: >= {args.target:g}x on {where}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"student": args.student, "threads": torch.get_num_threads(),
                                             "target": args.target, "rows": rows}, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
