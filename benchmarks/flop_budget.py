"""The FLOP budget of one student force call, against GFN2-xTB's time on the same molecule.

Issue #5 asks for an MD step at least 20x faster than GFN2-xTB at ~20 atoms. This
script shows how much of that budget the network's matrix products alone take,
whatever the backend does around them:

  * FLOPs of one force call (energy + autograd forces), counted by
    ``torch.utils.flop_counter`` on the eager twin of the compiled student;
  * the same call's matrix products (forward and backward), recorded with their
    shapes and replayed back to back with nothing else: a lower bound on the
    call's time on this CPU, whichever backend runs it;
  * GFN2-xTB (tblite) per force call on the same geometry, timed in alternating
    blocks with the replay (side by side, see :func:`openmm_distill.timing.interleaved`);
  * the budget (GFN2-xTB time / target) and the best speedup the matrix products
    leave possible.

    python benchmarks/flop_budget.py                   # aspirin, 21 atoms, every shipped student (~1 min)
    python benchmarks/flop_budget.py --smiles 'CC(=O)NC(C)C(=O)NC' --name alanine_dipeptide
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from student_speed import SMALL, teacher_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import openmm_distill  # noqa: F401  (torch before openmm; sets up the allocator)
from openmm_distill.export.eager import eager_deployed
from openmm_distill.export.student import load_student
from openmm_distill.models import preset_names
from openmm_distill.systems import structure_from_smiles
from openmm_distill.timing import interleaved
from openmm_distill.units import ANGSTROM_TO_NM, MS_PER_S

MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


class MatmulRecorder(TorchDispatchMode):
    """Records every matrix product dispatched while active: (op, arguments as meta tensors, kwargs)."""

    def __init__(self):
        super().__init__()
        self.calls: List[Tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            spec = [torch.empty(a.shape, dtype=a.dtype, device="meta") if isinstance(a, torch.Tensor) else a
                    for a in args]  # shapes only: the replay makes fresh inputs
            self.calls.append((func, spec, dict(kwargs)))
        return func(*args, **kwargs)


def force_call(deployed, positions: torch.Tensor) -> None:
    p = positions.clone().requires_grad_(True)
    deployed(p, None).backward()


def count_flops(deployed, positions: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        force_call(deployed, positions)
    return int(counter.get_total_flops())


def matmul_replay(deployed, positions: torch.Tensor) -> Tuple[Callable[[], None], int]:
    """A function running one force call's matrix products and nothing else, and how many there are."""
    with MatmulRecorder() as recorder:
        force_call(deployed, positions)
    generator = torch.Generator().manual_seed(0)
    prepared = []
    for func, spec, kwargs in recorder.calls:
        args = [torch.randn(a.shape, dtype=a.dtype, generator=generator) if isinstance(a, torch.Tensor) else a
                for a in spec]
        prepared.append((func, args, kwargs))

    def replay():
        for func, args, kwargs in prepared:
            func(*args, **kwargs)

    return replay, len(prepared)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=SMALL[0], help="label of the molecule (default: %(default)s)")
    parser.add_argument("--smiles", default=SMALL[1], help="molecule, as SMILES; geometry from RDKit (seed 1)")
    parser.add_argument("--presets", default=",".join(preset_names()),
                        help="comma-separated shipped students (default: %(default)s)")
    parser.add_argument("--target", type=float, default=20.0, help="speedup over GFN2-xTB asked for (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as student_speed.py)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "flop_budget.json"))
    args = parser.parse_args(argv)
    presets = args.presets.split(",")
    unknown = [p for p in presets if p not in preset_names()]
    if unknown:
        parser.error(f"--presets {','.join(unknown)}: choose from {', '.join(preset_names())}")
    if args.target <= 0:
        parser.error(f"--target {args.target}: must be > 0")
    torch.set_num_threads(args.threads)

    try:
        structure = structure_from_smiles(args.smiles, seed=1)
        students = {preset: load_student(preset) for preset in presets}
        bound = {preset: student.bound_module(structure.atomic_numbers) for preset, student in students.items()}
    except ValueError as exc:  # an unparsable SMILES, an element a student does not support
        parser.error(str(exc))
    z = structure.atomic_numbers
    positions = torch.tensor(structure.positions * ANGSTROM_TO_NM, dtype=torch.float32)  # nm, as OpenMM passes them
    calls: Dict[str, Callable[[], None]] = {"gfn2_xtb": teacher_call("gfn2-xtb", z, structure.positions * ANGSTROM_TO_NM)}
    rows = {}
    for preset, student in students.items():
        deployed = eager_deployed(bound[preset], student.metadata)
        replay, n = matmul_replay(deployed, positions)
        calls[preset] = replay
        rows[preset] = {"flops": count_flops(deployed, positions), "matmuls": n}
    print(f"timing GFN2-xTB and the matrix products of each student on {args.name} ({len(z)} atoms), "
          f"{torch.get_num_threads()} thread(s) ...", flush=True)
    seconds = interleaved(calls, min_time=2.0)

    gfn2_ms = MS_PER_S * seconds["gfn2_xtb"]
    budget_ms = gfn2_ms / args.target
    print(f"\nGFN2-xTB {gfn2_ms:.1f} ms per force call; {args.target:g}x needs a student MD step <= {budget_ms:.2f} ms\n")
    print(f"{'student':>11} {'MFLOP':>7} {'matmuls':>8} {'their ms':>9} {'GFLOP/s':>8} {'% budget':>9} {'best x':>7}")
    for preset, row in rows.items():
        row["matmul_ms"] = MS_PER_S * seconds[preset]
        row["gflops_per_s"] = row["flops"] / seconds[preset] / 1e9
        row["share_of_budget"] = row["matmul_ms"] / budget_ms
        row["best_speedup"] = gfn2_ms / row["matmul_ms"]
        print(f"{preset:>11} {row['flops'] / 1e6:7.1f} {row['matmuls']:8d} {row['matmul_ms']:9.2f} "
              f"{row['gflops_per_s']:8.1f} {100 * row['share_of_budget']:8.0f}% {row['best_speedup']:6.1f}x")
    print("\n'best x': GFN2-xTB time / matrix-product time, the speedup if everything but the matrix products were free")
    result = {"molecule": args.name, "smiles": args.smiles, "atoms": len(z), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "gfn2_xtb_ms": gfn2_ms, "target": args.target, "budget_ms": budget_ms,
              "students": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
