"""SevenNet-0 force calls side by side with the students' OpenMM MD step (issue #16's speed targets).

A student distilled from SevenNet-0 is worth it only if its MD step is much
cheaper than the teacher's force call: the targets are >= 30x at ~20 atoms and
>= 50x at ~100 atoms. For aspirin (21 atoms) and Ace-Ala9-Nme (102 atoms, the
molecules of student_speed.py) this times, in alternating blocks (see
:func:`openmm_distill.timing.interleaved`), one SevenNet force call (its real
pretrained weights, through the teacher adapter) and one VerletIntegrator step of
each student on OpenMM's CPU platform, per backend (``torch``: TorchForce;
``inductor``: PythonForce running the network compiled by TorchInductor). A
student's cost does not depend on its weights; the default times the students
distilled from SevenNet-0 themselves.

    python benchmarks/sevennet_speed.py                                 # ~5-8 min on one thread
    python benchmarks/sevennet_speed.py --backends torch --students original
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from student_speed import BACKENDS, MEDIUM, SMALL, parse_backends, row_name, student_calls

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import DistillError
from openmm_distill.export.student import load_student
from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology
from openmm_distill.teachers import get_teacher
from openmm_distill.timing import interleaved
from openmm_distill.units import ANGSTROM_TO_NM, MS_PER_S

# Speedup of a student's MD step over a SevenNet-0 force call asked for by issue #16, by system.
TARGETS = {SMALL[0]: 30.0, MEDIUM[0]: 50.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="original-sevennet0,tiny-sevennet0",
                        help="shipped students or compiled files (default: %(default)s)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="OpenMM backends to time (default: %(default)s)")
    parser.add_argument("--model", default="7net-0", help="SevenNet pretrained model (default: %(default)s)")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of samples per timed call (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for students and SevenNet alike (default 1)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "sevennet_speed.json"))
    args = parser.parse_args(argv)
    keep_freed_memory()  # students are timed with the allocator setting the CLI and protocols use
    backends = parse_backends(parser, args.backends)
    try:
        paths = {name: load_student(name).path for name in args.students.split(",")}
    except (KeyError, FileNotFoundError, DistillError) as exc:
        parser.error(str(exc.args[0]) if exc.args else str(exc))
    torch.set_num_threads(args.threads)
    print(f"SevenNet ({args.model}) force call vs student MD step, {torch.get_num_threads()} thread(s)", flush=True)

    teacher = get_teacher("sevennet", model=args.model)
    results = {"teacher": teacher.describe(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "targets": TARGETS, "systems": {}}
    for name, smiles in (SMALL, MEDIUM):
        structure = structure_from_smiles(smiles, seed=1)
        z, pos_angstrom = structure.atomic_numbers, structure.positions
        pos_nm = pos_angstrom * ANGSTROM_TO_NM
        topology = structure_to_openmm_topology(structure)
        calls = {"sevennet": lambda: teacher.compute(z, pos_angstrom)}
        for student, path in paths.items():
            for backend in backends:
                step = student_calls(path, z, pos_nm, None, topology, backend)["md_step_ms"]
                calls[row_name(student, backend)] = step
        seconds = interleaved(calls, min_time=args.min_time)
        teacher_ms = MS_PER_S * seconds.pop("sevennet")
        record = {"atoms": int(len(z)), "sevennet_force_call_ms": teacher_ms, "target_speedup": TARGETS[name],
                  "students": {}}
        print(f"{name:>14} {len(z):4d} atoms  SevenNet force call {teacher_ms:8.1f} ms", flush=True)
        for row, s in seconds.items():
            step_ms = MS_PER_S * s
            speedup = teacher_ms / step_ms
            record["students"][row] = {"md_step_ms": step_ms, "speedup": speedup,
                                       "meets_target": speedup >= TARGETS[name]}
            verdict = "met" if speedup >= TARGETS[name] else "NOT met"
            print(f"{'':>14} {row:>20} MD step {step_ms:8.2f} ms  {speedup:6.1f}x  "
                  f"(target {TARGETS[name]:g}x: {verdict})", flush=True)
        results["systems"][name] = record
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
